"""Influence and pruning of attribution graphs (graphs/_pruning.py) on graphs small enough to
work out on paper, and the influence series against its closed form."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llmasos_widgets.graphs._pruning import (
    cumulative_influence,
    influence,
    masks_from_scores,
    normalized,
    prune,
)

# nodes: feature f0, feature f1, error e0, token t0, logit
KINDS = np.array([0, 0, 1, 2, 3])
CHAIN = np.zeros((5, 5), dtype=np.float32)
CHAIN[4, 0], CHAIN[4, 1] = 3.0, -1.0  # logit <- f0 (3), f1 (-1)
CHAIN[0, 3] = 2.0  # f0 <- t0
CHAIN[1, 2] = 0.5  # f1 <- e0
WEIGHTS = np.array([0, 0, 0, 0, 1], dtype=np.float32)


def test_influence_on_paper() -> None:
    """Normalised rows: logit 3/4 f0 + 1/4 f1; f0 all t0; f1 all e0. Influence = w A + w A^2."""
    result = prune(CHAIN, WEIGHTS, KINDS, node_threshold=0.8, edge_threshold=1.0)
    np.testing.assert_allclose(result.node_influence, [0.75, 0.25, 0.25, 0.75, 0.0])
    # sorted: f0 .75, t0 .75 (tie: index order), f1 .25, e0 .25 over a total of 2
    np.testing.assert_allclose(result.node_cumulative, [0.375, 0.875, 1.0, 0.75, 0.0])


def test_node_step_keeps_the_first_node_past_the_threshold_then_cleans_up() -> None:
    """At 0.8: f0, t0 and f1 (the first to reach 0.8) survive the node step; e0 does not, so
    f1 loses its only incoming edge and goes in the clean-up."""
    result = prune(CHAIN, WEIGHTS, KINDS, node_threshold=0.8, edge_threshold=1.0)
    assert result.node_mask.tolist() == [True, False, False, True, True]
    kept_edges = {(int(t), int(s)) for t, s in zip(*np.nonzero(result.edge_mask), strict=True)}
    assert kept_edges == {(4, 0), (0, 3)}
    everything = prune(CHAIN, WEIGHTS, KINDS, node_threshold=1.0, edge_threshold=1.0)
    assert everything.node_mask.all()


def test_edge_scores_on_paper() -> None:
    """Edge score = normalised weight x (target influence + its logit weight)."""
    result = prune(CHAIN, WEIGHTS, KINDS, node_threshold=1.0, edge_threshold=1.0)
    expected = np.zeros((5, 5))
    expected[4, 0], expected[4, 1] = 0.75, 0.25
    expected[0, 3], expected[1, 2] = 0.75, 0.25
    np.testing.assert_allclose(result.edge_scores, expected)
    # keep 0.6 of 2.0 total: the two 0.75 edges (1.5 / 2 = 0.75 >= 0.6) and no more
    tight = prune(CHAIN, WEIGHTS, KINDS, node_threshold=1.0, edge_threshold=0.6)
    assert {tuple(e) for e in np.argwhere(tight.edge_mask)} == {(4, 0), (0, 3)}


def test_influence_series_equals_the_closed_form() -> None:
    """For a random DAG, w(A + A^2 + ...) = w((I - A)^-1 - I)."""
    rng = np.random.default_rng(0)
    n = 12
    adjacency = np.tril(rng.normal(size=(n, n)), k=-1) * (rng.random((n, n)) < 0.5)
    matrix = normalized(torch.from_numpy(adjacency))
    weights = torch.from_numpy(rng.random(n))
    series = influence(matrix, weights).numpy()
    closed = weights.numpy() @ (np.linalg.inv(np.eye(n) - matrix.numpy()) - np.eye(n))
    np.testing.assert_allclose(series, closed, rtol=1e-10, atol=1e-12)


def test_cumulative_influence_of_zero_scores_are_zero() -> None:
    assert cumulative_influence(np.array([0.0, 2.0, 0.0, 2.0])).tolist() == [0, 0.5, 0, 1.0]
    assert cumulative_influence(np.zeros(3)).tolist() == [0, 0, 0]


def test_thresholds_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError, match="node_threshold must be a number from 0 to 1"):
        prune(CHAIN, WEIGHTS, KINDS, node_threshold=1.2, edge_threshold=0.9)
    with pytest.raises(ValueError, match="edge_threshold"):
        masks_from_scores(np.zeros(5), np.zeros((5, 5)), KINDS, 0.5, -0.1)
