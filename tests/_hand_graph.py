"""A hand-filled AttributionGraph for view and export tests, pruned by a line-by-line numpy
transcription of circuit-tracer's ``prune_graph`` (``circuit_tracer/graph.py`` at d797c82:
``normalize_matrix``, ``compute_influence``, ``find_threshold``, iterative pruning), so the
masks the view must reproduce come from circuit-tracer's rule, not from ours.

Two layers, three tokens, four features, six error nodes, two logits (N = 15):

====  ==================  ===========================================
node  what                edges into it (source: weight)
====  ==================  ===========================================
0     L0 #5 @1            token @1: 2.0
1     L1 #2 @2            node 0: 1.5 (attention, @1 -> @2), node 2: 0.1, err L0 @2: 0.05
2     L0 #7 @2            token @2: 0.3
3     L1 #9 @0            token @0: 0.2
13    logit #40 (p=0.7)   node 1: 3.0, token @2: 0.5, node 3: 0.05
14    logit #41 (p=0.3)   node 1: -1.0, err L1 @2: 0.2
====  ==================  ===========================================
"""

from __future__ import annotations

import numpy as np

from llmasos_widgets.graphs import AttributionGraph

N_FEATURES, N_LAYERS, N_POS, N_LOGITS = 4, 2, 3, 2
FEATURES = [(0, 1, 5), (1, 2, 2), (0, 2, 7), (1, 0, 9)]  # (layer, position, latent)


def error_node(layer: int, position: int) -> int:
    return N_FEATURES + layer * N_POS + position


def token_node(position: int) -> int:
    return N_FEATURES + N_LAYERS * N_POS + position


def logit_node(rank: int) -> int:
    return N_FEATURES + N_LAYERS * N_POS + N_POS + rank


def hand_adjacency() -> np.ndarray:
    n = logit_node(N_LOGITS - 1) + 1
    a = np.zeros((n, n), np.float32)
    a[0, token_node(1)] = 2.0
    a[1, 0], a[1, 2], a[1, error_node(0, 2)] = 1.5, 0.1, 0.05
    a[2, token_node(2)] = 0.3
    a[3, token_node(0)] = 0.2
    a[logit_node(0), 1], a[logit_node(0), token_node(2)], a[logit_node(0), 3] = 3.0, 0.5, 0.05
    a[logit_node(1), 1], a[logit_node(1), error_node(1, 2)] = -1.0, 0.2
    return a


def _normalize(matrix: np.ndarray) -> np.ndarray:
    normalized = np.abs(matrix)
    return normalized / np.clip(normalized.sum(axis=1, keepdims=True), 1e-10, None)


def _influence(a: np.ndarray, logit_weights: np.ndarray) -> np.ndarray:
    current = logit_weights @ a
    influence = current.copy()
    while current.any():
        current = current @ a
        influence += current
    return influence


def _find_threshold(scores: np.ndarray, threshold: float) -> float:
    ordered = np.sort(scores)[::-1]
    cumulative = np.cumsum(ordered) / ordered.sum()
    index = min(int(np.searchsorted(cumulative, threshold)), len(cumulative) - 1)
    return float(ordered[index])


def circuit_tracer_prune(
    adjacency: np.ndarray, probabilities: np.ndarray, n_features: int, n_tokens: int,
    node_threshold: float, edge_threshold: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """``(node_influence, node_mask, edge_mask)`` as circuit-tracer's ``prune_graph``."""
    n_logits = len(probabilities)
    logit_weights = np.zeros(adjacency.shape[0])
    logit_weights[-n_logits:] = probabilities
    influence = _influence(_normalize(adjacency.astype(np.float64)), logit_weights)
    node_mask = influence >= _find_threshold(influence, node_threshold)
    node_mask[-n_logits - n_tokens :] = True
    pruned = adjacency.astype(np.float64).copy()
    pruned[~node_mask] = 0
    pruned[:, ~node_mask] = 0
    normalized = _normalize(pruned)
    edge_scores = normalized * (_influence(normalized, logit_weights) + logit_weights)[:, None]
    edge_mask = edge_scores >= _find_threshold(edge_scores.ravel(), edge_threshold)
    inner = slice(0, adjacency.shape[0] - n_logits - n_tokens)
    old = node_mask.copy()
    node_mask[inner] &= edge_mask[:, inner].any(0)
    node_mask[:n_features] &= edge_mask[:n_features].any(1)
    while not (node_mask == old).all():
        old[:] = node_mask
        edge_mask[~node_mask] = False
        edge_mask[:, ~node_mask] = False
        node_mask[inner] &= edge_mask[:, inner].any(0)
        node_mask[:n_features] &= edge_mask[:n_features].any(1)
    return influence, node_mask, edge_mask


def hand_graph(
    node_threshold: float = 0.8,
    edge_threshold: float = 0.98,
    tokens: list[str] | None = None,
    token_ids: list[int] | None = None,
) -> AttributionGraph:
    """The graph of the module docstring, pruned at the given thresholds."""
    adjacency = hand_adjacency()
    probabilities = np.array([0.7, 0.3], np.float32)
    influence, node_mask, edge_mask = circuit_tracer_prune(
        adjacency, probabilities, N_FEATURES, N_POS, node_threshold, edge_threshold
    )
    kinds = [0] * N_FEATURES + [1] * (N_LAYERS * N_POS) + [2] * N_POS + [3] * N_LOGITS
    layers = [f[0] for f in FEATURES] + [layer for layer in range(N_LAYERS) for _ in range(N_POS)]
    positions = [f[1] for f in FEATURES] + list(range(N_POS)) * N_LAYERS + list(range(N_POS))
    return AttributionGraph(
        text="a b c",
        tokens=tokens or ["a", "<b>b</b>", "c"],
        token_ids=token_ids or [3, 4, 5],
        n_layers=N_LAYERS,
        node_kind=np.array(kinds),
        node_layer=np.array(layers + [-1] * N_POS + [N_LAYERS] * N_LOGITS),
        node_position=np.array(positions + [N_POS - 1] * N_LOGITS),
        node_index=np.array(
            [f[2] for f in FEATURES] + [-1] * (N_LAYERS * N_POS + N_POS) + [40, 41]
        ),
        node_value=np.linspace(0.5, 2.0, len(kinds)).astype(np.float32),
        logit_probabilities=probabilities,
        adjacency=adjacency,
        node_influence=influence.astype(np.float32),
        node_mask=node_mask,
        edge_mask=edge_mask,
        node_threshold=node_threshold,
        edge_threshold=edge_threshold,
        model_name="hand-built",
    )
