"""Attribution graphs over transcoder features (issue "Attribution graphs").

* :class:`AttributionGraph`: one prompt's nodes (features, error nodes, tokens, logits),
  direct edges, influence and pruning masks, in circuit-tracer's layout.
"""

from llmasos_widgets.graphs._graph import NODE_KINDS, AttributionGraph

__all__ = ["NODE_KINDS", "AttributionGraph"]
