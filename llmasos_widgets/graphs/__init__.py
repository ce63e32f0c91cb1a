"""Attribution graphs over transcoder features (issue "Attribution graphs").

* :class:`AttributionGraph`: one prompt's nodes (features, error nodes, tokens, logits),
  direct edges, influence and pruning masks, in circuit-tracer's layout.
* :func:`to_neuronpedia_json`: the graph as the JSON Neuronpedia's graph viewer reads.
* :class:`FeatureCards`: a feature node's activation on every token and its logit effects.
"""

from llmasos_widgets.graphs._graph import NODE_KINDS, AttributionGraph
from llmasos_widgets.graphs._neuronpedia import (
    cumulative_influence,
    node_ids,
    to_neuronpedia_json,
)
from llmasos_widgets.graphs._node_card import FeatureCards, node_summary, transcoders_by_layer

__all__ = [
    "NODE_KINDS",
    "AttributionGraph",
    "FeatureCards",
    "cumulative_influence",
    "node_ids",
    "node_summary",
    "to_neuronpedia_json",
    "transcoders_by_layer",
]
