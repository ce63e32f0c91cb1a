"""Pooled views of an Explanation's heads, with the row normalisers kept between views (a zoom
costs the region's visible scores only)."""

from __future__ import annotations

import torch

from llmasos_widgets.explanation import Explanation
from llmasos_widgets.tracing import TileStats
from llmasos_widgets.views._pooled_pattern import REDUCTIONS, PooledPattern, check_region
from llmasos_widgets.views._pooling import VIEW_TILE_CELLS, pooled_patterns_from_qk


def pooled_view(
    explanation: Explanation,
    layer: int,
    heads: list[int],
    *,
    rows: tuple[int, int] | None = None,
    cols: tuple[int, int] | None = None,
    shape: tuple[int, int] = (512, 512),
    reduce: str = "max",
    tile_cells: int = VIEW_TILE_CELLS,
    stats: TileStats | None = None,
) -> list[PooledPattern]:
    """Pooled patterns of ``heads`` of ``layer`` of an Explanation (see
    ``Explanation.pooled_attention``).

    A head whose row normalisers are known (an earlier view of these rows, explain's exact
    summaries, a loaded file) costs the region's visible scores only; otherwise one pass over
    the rows' visible keys gives the normalisers and the pooled values together, and the
    normalisers are kept on the explanation for the next view (a zoom)."""
    n_tokens = int(explanation.n_tokens)
    rows, cols = check_region(rows, n_tokens, "rows"), check_region(cols, n_tokens, "cols")
    if len(shape) != 2 or any(int(side) < 1 for side in shape):
        raise ValueError(f"shape must be (rows_out, cols_out) >= 1, got {shape!r}")
    if reduce not in REDUCTIONS:
        raise ValueError(f"reduce must be one of {REDUCTIONS}, got {reduce!r}")
    queries, keys = explanation.queries[layer], explanation.keys[layer]
    cache = explanation.row_normalisers
    device = queries.device
    table_shape = (int(queries.shape[0]), n_tokens)
    positions = torch.arange(rows[0], rows[1], device=device)
    patterns = []
    for head in heads:
        lse = cache.lookup(layer, head, rows[0], rows[1])
        computed: list[torch.Tensor] = []
        patterns += pooled_patterns_from_qk(
            queries,
            keys,
            explanation.specs[layer],
            torch.tensor([head], dtype=torch.int64),
            None if lse is None else lse.unsqueeze(0),
            rows=rows,
            cols=cols,
            shape=(int(shape[0]), int(shape[1])),
            reduce=reduce,
            tile_cells=tile_cells,
            stats=stats,
            normalised=computed,
        )
        if computed:
            head_index = torch.tensor([head], dtype=torch.int64, device=device)
            cache.store(layer, table_shape, head_index, positions, computed[0].unsqueeze(0))
    return patterns
