"""How much of one prompt a graph explains: circuit-tracer's replacement and completeness scores.

Every path to the logits starts at a source node, an input token or an error node (neither has
incoming edges), so with circuit-tracer's normalised influence the sources' influences share
out the logits' whole (normalised) input. The share that starts at error nodes is what the
transcoders leave unexplained for this prompt (``circuit_tracer/graph.py``,
``compute_graph_scores``):

* ``replacement = token influence / (token influence + error influence)``;
* ``completeness``: over every node weighted by its influence (plus its logit weight), the
  fraction of its normalised input that comes from non-error nodes: partial credit for nodes
  mostly explained by features.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from llmasos_widgets.graphs._graph import AttributionGraph
from llmasos_widgets.graphs._pruning import influence, normalized


@dataclass(frozen=True)
class GraphScores:
    """Scores in 0..1; 1 = the features explain everything (module docstring)."""

    replacement: float
    completeness: float

    @property
    def unexplained(self) -> float:
        """The share of the tokens-to-logits influence that runs through error nodes."""
        return 1.0 - self.replacement


def graph_scores(graph: AttributionGraph) -> GraphScores:
    """``graph``'s replacement and completeness scores, from its full adjacency (before
    pruning), as circuit-tracer's ``compute_graph_scores`` computes them."""
    if not isinstance(graph, AttributionGraph):
        raise TypeError(f"graph must be an AttributionGraph, got {type(graph).__name__}")
    matrix = normalized(torch.from_numpy(np.asarray(graph.adjacency, dtype=np.float64)))
    weights = torch.from_numpy(graph.logit_weights.astype(np.float64))
    flow = influence(matrix, weights)
    tokens = flow[torch.from_numpy(graph.nodes_of("token"))].sum()
    errors = torch.from_numpy(graph.nodes_of("error"))
    error_flow = flow[errors].sum()
    sources = float(tokens + error_flow)
    replacement = float(tokens) / sources if sources > 0 else 1.0
    non_error = 1.0 - matrix[:, errors].sum(dim=1)
    reach = flow + weights
    completeness = float((non_error * reach).sum() / reach.sum().clamp(min=1e-30))
    return GraphScores(replacement=replacement, completeness=completeness)
