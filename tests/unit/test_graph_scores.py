"""graph_scores on a graph worked out on paper (circuit-tracer's compute_graph_scores).

Nodes [f, e, t, logit] (feature, error, token, logit; logit weight 1). Edges: logit <- f 3,
logit <- e -1, f <- t 2. Normalised rows: logit: f 0.75, e 0.25; f: t 1.
Influence: f 0.75, e 0.25, t 0.75 (through f), logit 0.
* replacement = t / (t + e) = 0.75 / 1.0 = 0.75;
* completeness: non-error input fractions f 1, e 1, t 1, logit 0.75, weighted by influence +
  logit weight (0.75, 0.25, 0.75, 1): (0.75 + 0.25 + 0.75 + 0.75) / 2.75 = 10/11.
"""

from __future__ import annotations

import numpy as np
import pytest

from llmasos_widgets.graphs import AttributionGraph, graph_scores


def _graph(error_weight: float) -> AttributionGraph:
    adjacency = np.zeros((4, 4), dtype=np.float32)
    adjacency[3, 0], adjacency[3, 1], adjacency[0, 2] = 3.0, error_weight, 2.0
    return AttributionGraph(
        text="t", tokens=["t"], token_ids=[5], n_layers=1,
        node_kind=np.array([0, 1, 2, 3]), node_layer=np.array([0, 0, -1, 1]),
        node_position=np.zeros(4, dtype=np.int64), node_index=np.array([7, -1, -1, 9]),
        node_value=np.ones(4, dtype=np.float32), logit_probabilities=np.array([1.0]),
        adjacency=adjacency, node_influence=np.zeros(4), node_mask=np.ones(4, dtype=bool),
        edge_mask=adjacency != 0, node_threshold=0.8, edge_threshold=0.98,
    )  # fmt: skip


def test_scores_of_a_graph_worked_out_on_paper():
    scores = graph_scores(_graph(-1.0))
    assert scores.replacement == pytest.approx(0.75)
    assert scores.unexplained == pytest.approx(0.25)
    assert scores.completeness == pytest.approx(10 / 11)


def test_a_graph_without_error_edges_is_fully_explained():
    scores = graph_scores(_graph(0.0))
    assert scores.replacement == 1.0 and scores.completeness == 1.0


def test_only_graphs_are_scored():
    with pytest.raises(TypeError, match="AttributionGraph"):
        graph_scores(np.zeros((4, 4)))
