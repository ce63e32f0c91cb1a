"""Attribution graphs over transcoder features (issue "Attribution graphs").

* :func:`attribution_graph`: one prompt's graph in the local replacement model (every MLP
  replaced by its transcoder, attention patterns and norm scales frozen from the real run).
* :class:`AttributionGraph`: its nodes (features, error nodes, tokens, logits), direct
  edges, influence and pruning masks, in circuit-tracer's layout.
* :func:`edge_heads` / :class:`EdgeHeads`: the part of one edge each attention head carries.
"""

from llmasos_widgets.graphs._attribute import attribution_graph
from llmasos_widgets.graphs._edge_heads import EdgeHeads, edge_heads
from llmasos_widgets.graphs._graph import NODE_KINDS, AttributionGraph

__all__ = ["NODE_KINDS", "AttributionGraph", "EdgeHeads", "attribution_graph", "edge_heads"]
