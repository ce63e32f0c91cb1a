"""Attribution graphs over transcoder features (issue "Attribution graphs").

* :func:`attribution_graph`: one prompt's graph in the local replacement model (every MLP
  replaced by its transcoder, attention patterns and norm scales frozen from the real run).
* :class:`AttributionGraph`: its nodes (features, error nodes, tokens, logits), direct
  edges, influence and pruning masks, in circuit-tracer's layout.
* :func:`edge_heads` / :class:`EdgeHeads`: the part of one edge each attention head carries.
* :func:`to_neuronpedia_json`: the graph as the JSON Neuronpedia's graph viewer reads.
* :class:`FeatureCards`: a feature node's activation on every token and its logit effects.
* :func:`graph_scores` / :class:`GraphScores`: how much of the prompt the features explain
  (circuit-tracer's replacement and completeness scores; the rest runs through error nodes).
"""

from llmasos_widgets.graphs._attribute import attribution_graph
from llmasos_widgets.graphs._edge_heads import EdgeHeads, edge_heads
from llmasos_widgets.graphs._graph import NODE_KINDS, AttributionGraph
from llmasos_widgets.graphs._neuronpedia import node_ids, to_neuronpedia_json
from llmasos_widgets.graphs._node_card import FeatureCards, node_summary, transcoders_by_layer
from llmasos_widgets.graphs._pruning import cumulative_influence
from llmasos_widgets.graphs._scores import GraphScores, graph_scores

__all__ = [
    "NODE_KINDS",
    "AttributionGraph",
    "EdgeHeads",
    "FeatureCards",
    "GraphScores",
    "attribution_graph",
    "cumulative_influence",
    "edge_heads",
    "graph_scores",
    "node_ids",
    "node_summary",
    "to_neuronpedia_json",
    "transcoders_by_layer",
]
