"""What the GraphWidget's browser half gets from an :class:`AttributionGraph`, and the pruning
rule its slider applies there (mirrored in ``js/src/lib/graph_view.ts::visibleAt``).

The browser gets the nodes pruning kept and the kept edges between them (never ``[N, N]``):

* ``nodes``: float32 ``[n, 8]``, one row per kept node in graph order, columns
  :data:`NODE_COLUMNS`; graph indices, layers, positions and ids are exact in float32 below
  2**24;
* ``edges``: float32 ``[m, 3]``: source row, target row (rows of ``nodes``) and the edge's
  weight ``adjacency[target, source]``, weakest first (the strongest are drawn on top).

The slider re-prunes without the kernel, as Neuronpedia's viewer does on circuit-tracer's
scores: at threshold ``t`` a feature or error node stays while the influence share of the nodes
ranked above it (``rank_start``) is below ``t`` (circuit-tracer's ``find_threshold`` keeps the
node that crosses ``t``); tokens and logits always stay; an edge stays while both its ends
do; then, as ``prune_graph`` does, feature and error nodes left without an outgoing edge and
features without an incoming one go, until nothing changes. At the graph's own
``node_threshold`` this gives the kernel's ``node_mask`` and ``edge_mask`` back.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from llmasos_widgets.graphs import NODE_KINDS, AttributionGraph, cumulative_influence

NODE_COLUMNS = ("node", "kind", "layer", "position", "index", "value", "influence", "rank_start")
"""Columns of the ``nodes`` table: graph index, kind (index into ``NODE_KINDS``), layer (-1 for
tokens, ``n_layers`` for logits), position, latent or vocabulary id, value, influence, and the
influence share of every node ranked above this one."""

_EXACT_IN_FLOAT32 = 2**24
_ALWAYS_SHOWN = (NODE_KINDS.index("token"), NODE_KINDS.index("logit"))


def node_table(graph: AttributionGraph) -> np.ndarray:
    """float32 ``[n, 8]``: the kept nodes' :data:`NODE_COLUMNS`."""
    if graph.n_nodes >= _EXACT_IN_FLOAT32 or int(np.abs(graph.node_index).max(initial=0)) >= (
        _EXACT_IN_FLOAT32
    ):
        raise ValueError(f"the graph view shows graphs of under {_EXACT_IN_FLOAT32} nodes and ids")
    kept = np.flatnonzero(graph.node_mask)
    influence = np.asarray(graph.node_influence, dtype=np.float64)
    total = influence.sum()
    share = influence / (total if total > 0 else 1.0)
    rank_start = cumulative_influence(influence) - share
    columns = (
        kept,
        graph.node_kind[kept],
        graph.node_layer[kept],
        graph.node_position[kept],
        graph.node_index[kept],
        graph.node_value[kept],
        influence[kept],
        np.clip(rank_start[kept], 0.0, None),
    )
    return np.stack([np.asarray(c, dtype=np.float32) for c in columns], axis=1)


def edge_table(graph: AttributionGraph) -> np.ndarray:
    """float32 ``[m, 3]``: (source row, target row, weight) of the kept edges, weakest first."""
    kept = np.flatnonzero(graph.node_mask)
    row = np.full(graph.n_nodes, -1)
    row[kept] = np.arange(len(kept))
    mask = graph.edge_mask & graph.node_mask[:, None] & graph.node_mask[None, :]
    targets, sources = np.nonzero(mask & (graph.adjacency != 0))
    weights = graph.adjacency[targets, sources]
    order = np.argsort(np.abs(weights), kind="stable")
    table = np.stack([row[sources][order], row[targets][order], weights[order]], axis=1)
    return table.astype(np.float32).reshape(-1, 3)


def visible_at(nodes: np.ndarray, edges: np.ndarray, threshold: float) -> tuple[Any, Any]:
    """Boolean masks over the rows of ``nodes`` and ``edges`` shown at slider value
    ``threshold`` (the rule in the module docstring; the browser runs the same)."""
    kind = nodes[:, 1].astype(int)
    shown = np.isin(kind, _ALWAYS_SHOWN) | (nodes[:, 7] < threshold)
    source, target = edges[:, 0].astype(int), edges[:, 1].astype(int)
    prunable = ~np.isin(kind, _ALWAYS_SHOWN)
    is_feature = kind == NODE_KINDS.index("feature")
    while True:
        edge_shown = shown[source] & shown[target]
        has_out = np.zeros(len(nodes), bool)
        has_in = np.zeros(len(nodes), bool)
        has_out[source[edge_shown]] = True
        has_in[target[edge_shown]] = True
        now = shown & ~(prunable & ~has_out) & ~(is_feature & ~has_in)
        if (now == shown).all():
            return shown, edge_shown
        shown = now
