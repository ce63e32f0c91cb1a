"""Influence and pruning of an attribution graph, as circuit-tracer's ``graph.py`` does it.

* Normalise: each row of ``|adjacency|`` scaled to sum to 1 (a target's inputs as fractions).
* Node influence: with ``w`` the logit nodes' weights, ``w A + w A^2 + ...`` over the
  normalised matrix ``A`` (a DAG, so the series ends): how much of the logits flows through
  each node along every path.
* Node step: sort nodes by influence, keep those whose *cumulative* fraction of the total is
  within ``node_threshold`` (the first node to reach it included); tokens and logits always.
* Edge step: on the graph restricted to kept nodes, an edge's score is its normalised weight
  times its target's influence (plus the target's own logit weight); keep the edges with the
  largest scores up to ``edge_threshold`` of the total score (scores of zero never).
* Clean-up, repeated until nothing changes: a feature or error node with no kept outgoing edge
  goes, a feature with no kept incoming edge goes, and so do their edges.

:func:`masks_from_scores` is the part after the scores: the graph keeps ``node_cumulative``
and ``edge_scores``, so a view can re-prune at other thresholds without the kernel by
porting this one function (float64 sums over the stored values, compared as below). Edge
scores are computed after the node step at the graph's own ``node_threshold``; at another
node threshold the stored edge scores are not recomputed (:meth:`AttributionGraph.pruned`
recomputes them exactly). Ties are broken by node order (circuit-tracer keeps all nodes
tied with the last one kept); otherwise the masks are circuit-tracer's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

MAX_PATH_LENGTH = 1000
"""Longest path the influence series follows before it gives up (a graph with a cycle)."""


def _check_threshold(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number from 0 to 1, got {value!r}")
    return float(value)


def normalized(adjacency: torch.Tensor) -> torch.Tensor:
    """``|adjacency|`` with each row scaled to sum to 1 (all-zero rows stay zero)."""
    absolute = adjacency.abs()
    return absolute / absolute.sum(dim=1, keepdim=True).clamp(min=1e-10)


def influence(matrix: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``weights A + weights A^2 + ...`` for a nilpotent (DAG) ``A``."""
    step = weights @ matrix
    total = step.clone()
    for _ in range(MAX_PATH_LENGTH):
        if not bool(step.any()):
            return total
        step = step @ matrix
        total += step
    raise RuntimeError(f"influence did not converge in {MAX_PATH_LENGTH} steps: is it a DAG?")


def edge_scores_of(pruned: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``[N, N]``: each edge's normalised weight times its target's influence (+ weight)."""
    matrix = normalized(pruned)
    return matrix * (influence(matrix, weights) + weights)[:, None]


def cumulative_influence(scores: np.ndarray) -> np.ndarray:
    """float64 ``[N]``: for each entry, the fraction of the total held by it and every entry
    ranked above it (descending, ties by index): circuit-tracer's cumulative score, which
    pruning at ``t`` cuts at the first entry reaching ``t``. 0 for entries of score 0 (the
    node step never keeps them; circuit-tracer ranks them last, at 1.0) and everywhere when
    the total is zero."""
    flat = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-flat, kind="stable")
    running = np.cumsum(flat[order])
    total = running[-1] if running.size else 0.0
    result = np.zeros_like(flat)
    if total > 0:
        result[order] = running / total
    result[flat <= 0] = 0.0
    return result


def _cut(fractions_sorted: np.ndarray, threshold: float) -> int:
    """Index of the first entry whose cumulative fraction reaches ``threshold`` (clamped)."""
    return min(int(np.searchsorted(fractions_sorted, threshold, side="left")),
               len(fractions_sorted) - 1)  # fmt: skip


def node_step(node_cumulative: np.ndarray, threshold: float) -> np.ndarray:
    """Nodes within ``threshold`` of the cumulative influence (the first to reach it kept)."""
    fractions = np.asarray(node_cumulative, dtype=np.float64)
    if fractions.size == 0 or fractions.max() <= 0:
        return np.zeros(fractions.shape, dtype=bool)
    ranked = np.sort(fractions[fractions > 0])
    return (fractions > 0) & (fractions <= ranked[_cut(ranked, threshold)])


def edge_step(edge_scores: np.ndarray, threshold: float) -> np.ndarray:
    """Edges whose scores, largest first, make up ``threshold`` of the total (scores > 0)."""
    scores = np.asarray(edge_scores, dtype=np.float64)
    positive = np.sort(scores[scores > 0])[::-1]
    if positive.size == 0:
        return np.zeros(scores.shape, dtype=bool)
    running = np.cumsum(positive)
    smallest_kept = positive[_cut(running / running[-1], threshold)]
    return scores >= smallest_kept


def masks_from_scores(
    node_cumulative: np.ndarray,
    edge_scores: np.ndarray,
    node_kind: np.ndarray,
    node_threshold: float,
    edge_threshold: float,
) -> tuple[np.ndarray, np.ndarray]:
    """``(node_mask [N], edge_mask [N, N])`` from stored scores (module docstring).

    ``node_kind`` indexes ``("feature", "error", "token", "logit")``.
    """
    node_threshold = _check_threshold("node_threshold", node_threshold)
    edge_threshold = _check_threshold("edge_threshold", edge_threshold)
    kind = np.asarray(node_kind)
    always = kind >= 2  # tokens and logits
    needs_outgoing, is_feature = kind <= 1, kind == 0
    node_mask = node_step(node_cumulative, node_threshold) | always
    edge_mask = edge_step(edge_scores, edge_threshold)
    while True:
        edge_mask &= node_mask[:, None] & node_mask[None, :]
        keep = node_mask.copy()
        keep[needs_outgoing] &= edge_mask[:, needs_outgoing].any(0)
        keep[is_feature] &= edge_mask[is_feature].any(1)
        if np.array_equal(keep, node_mask):
            return node_mask, edge_mask
        node_mask = keep


@dataclass(frozen=True)
class Pruning:
    """What :func:`prune` computes; every array is numpy."""

    node_influence: np.ndarray
    """float32 ``[N]``."""
    node_cumulative: np.ndarray
    """float64 ``[N]``: each node's cumulative influence fraction (:func:`cumulative_influence`)."""
    edge_scores: np.ndarray
    """float32 ``[N, N]``: edge scores after the node step."""
    node_mask: np.ndarray
    edge_mask: np.ndarray


def prune(
    adjacency: np.ndarray,
    logit_weights: np.ndarray,
    node_kind: np.ndarray,
    node_threshold: float,
    edge_threshold: float,
) -> Pruning:
    """Influence, scores and masks of a graph (module docstring); ``logit_weights`` ``[N]``
    is zero except on logit nodes."""
    node_threshold = _check_threshold("node_threshold", node_threshold)
    edge_threshold = _check_threshold("edge_threshold", edge_threshold)
    matrix = torch.from_numpy(np.ascontiguousarray(adjacency, dtype=np.float32))
    weights = torch.from_numpy(np.asarray(logit_weights, dtype=np.float32))
    node_influence = influence(normalized(matrix), weights).numpy()
    node_cumulative = cumulative_influence(node_influence)
    kept = torch.from_numpy(node_step(node_cumulative, node_threshold) | (node_kind >= 2))
    pruned = matrix * (kept[:, None] & kept[None, :])
    edge_scores = edge_scores_of(pruned, weights).numpy().astype(np.float32)
    node_mask, edge_mask = masks_from_scores(
        node_cumulative, edge_scores, node_kind, node_threshold, edge_threshold
    )
    return Pruning(node_influence, node_cumulative, edge_scores, node_mask, edge_mask)
