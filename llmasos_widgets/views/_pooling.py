"""Attention at screen resolution: one head's pooled pattern computed in row chunks from
q/k, never ``[T, T]``.

At T = 32k one head's pattern is 4 GB in float32, but a view paints at most ~512 x 512 cells.
One matmul gives a row chunk's ``[rows, keys]`` scores; when the rows' normalisers
(log-sum-exp) are not known yet the chunk spans every visible key, so the same scores give the
normalisers and the pooled weights ``exp(score - lse)`` (one pass), and the normalisers are
returned for later views; when they are known only the region's keys are computed. Blocks
reduce by max (with the argmax cell) or sum. Only one chunk of scores
(:data:`VIEW_TILE_CELLS`) exists at a time. The arithmetic is ``llmasos_widgets.tracing``'s.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from llmasos_widgets.tracing import (
    TILE_CELLS,
    AttentionSpec,
    TileStats,
    first_visible_key,
    kv_head,
    mask_invisible_,
    soft_cap_,
)
from llmasos_widgets.views._pooled_pattern import REDUCTIONS, PooledPattern, block_edges

VIEW_TILE_CELLS = TILE_CELLS // 2
"""Cells in one row chunk of a view's scores. Half the tracing tile: a view makes several
passes over each chunk (mask, normalisers, block max), and with 8 MB chunks instead of 16 a
cold view at T = 8192 took 6-30% less time in each of 10 paired runs (AMD EPYC, 2 threads,
head dims 16 and 64); quarter-size chunks were not faster than half (more Python per chunk)."""


def _tiles(start: int, stop: int, block: int, most: int) -> Iterator[tuple[int, int, int, int]]:
    """``(tile_start, tile_stop, first_block, pool)`` covering ``start:stop``: whole blocks per
    tile when a block fits in ``most`` positions (pool = block), else pieces of one block
    (pool = the piece's length, reduced into that block and combined across pieces)."""
    if block <= most:
        step = (most // block) * block
        for tile_start in range(start, stop, step):
            yield tile_start, min(tile_start + step, stop), (tile_start - start) // block, block
        return
    for block_start in range(start, stop, block):
        block_stop = min(block_start + block, stop)
        for piece in range(block_start, block_stop, most):
            piece_stop = min(piece + most, block_stop)
            yield piece, piece_stop, (block_start - start) // block, piece_stop - piece


def _pad_rows_cols(scores: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """``scores`` grown to ``[rows, cols]`` with -inf (only a region's ragged last blocks)."""
    if scores.shape == (rows, cols):
        return scores
    out = scores.new_full((rows, cols), -math.inf)
    out[: scores.shape[0], : scores.shape[1]] = scores
    return out


@dataclass
class _Pooled:
    """One head's pooled accumulators ``[rows_out, cols_out]``."""

    values: torch.Tensor
    arg_query: torch.Tensor
    arg_key: torch.Tensor


def _pool_chunk(
    out: _Pooled,
    scores: torch.Tensor,
    row_lse: torch.Tensor,
    *,
    r0: int,
    row_first: int,
    row_pool: int,
    c0: int,
    col_first: int,
    col_pool: int,
    is_max: bool,
) -> None:
    """Reduce ``scores [n_r * row_pool, n_c * col_pool]`` (queries from ``r0``, keys from
    ``c0``, -inf where invisible) into blocks ``[row_first:, col_first:]`` of ``out``."""
    n_r, n_c = scores.shape[0] // row_pool, scores.shape[1] // col_pool
    by_col = scores.reshape(n_r * row_pool, n_c, col_pool)
    target = (slice(row_first, row_first + n_r), slice(col_first, col_first + n_c))
    if not is_max:
        weights = torch.exp(by_col - row_lse.view(-1, 1, 1)).sum(-1)
        out.values[target] += weights.reshape(n_r, row_pool, n_c).sum(1)
        return
    # exp is monotone: the largest weight of a row in a block is exp(its largest score - lse),
    # so exp runs on one value per row and block, not on every cell
    top_score = _block_max(scores, col_pool)
    weights = torch.exp(top_score - row_lse.view(-1, 1))
    weights = weights.masked_fill_(torch.isneginf(top_score), -1.0)
    best, row_offset = weights.reshape(n_r, row_pool, n_c).max(1)  # first row on ties
    device = scores.device
    # the winning row's cells of each block, then the first key holding its max
    winner = row_offset + torch.arange(n_r, device=device).unsqueeze(1) * row_pool
    flat = (winner * n_c + torch.arange(n_c, device=device)).reshape(-1)
    cells = by_col.reshape(-1, col_pool).index_select(0, flat)
    col_offset = cells.argmax(-1).reshape(n_r, n_c)
    better = best > out.values[target]  # ties keep the earlier cell
    out.values[target] = torch.where(better, best, out.values[target])
    row_base = torch.arange(n_r, device=device).unsqueeze(1) * row_pool + r0
    col_base = torch.arange(n_c, device=device).unsqueeze(0) * col_pool + c0
    out.arg_query[target] = torch.where(better, row_base + row_offset, out.arg_query[target])
    out.arg_key[target] = torch.where(better, col_base + col_offset, out.arg_key[target])


def _block_max(scores: torch.Tensor, width: int) -> torch.Tensor:
    """``[R, n * width] -> [R, n]``: the max of each run of ``width`` columns. max_pool1d is
    several times faster than a reduction over a short last dimension (measured on the CPU:
    2.2 vs 11 ms for 4M cells in runs of 16); long runs reduce well either way."""
    if width == 1:
        return scores
    if width < 32:
        return torch.nn.functional.max_pool1d(scores.unsqueeze(0), width, width).squeeze(0)
    return scores.reshape(scores.shape[0], -1, width).amax(-1)


UNSHIFTED_SCORES = 60.0
"""Rows whose largest score lies in [-60, 60] sum exp(score) unshifted: no term overflows
(e^60 x 2^20 keys < float32's max) and the largest is a normal float, so the sum is as exact
as the shifted one -- and the pass that subtracts each row's max (a quarter of a view's time
on the CPU) is skipped."""


def _row_logsumexp(scores: torch.Tensor, scratch: torch.Tensor) -> torch.Tensor:
    """Log-sum-exp of each row (every row holds a finite score: a query sees itself), through
    ``scratch`` (as many cells, reused across chunks: fresh 16 MB temporaries cost page
    faults that took as long as the exp itself)."""
    top = scores.amax(-1, keepdim=True)
    out = scratch.view(scores.shape)
    if float(top.min()) >= -UNSHIFTED_SCORES and float(top.max()) <= UNSHIFTED_SCORES:
        return torch.exp(scores, out=out).sum(-1).log_()
    shifted = torch.sub(scores, top, out=out)
    return shifted.exp_().sum(-1).log_() + top.squeeze(-1)


def _pool_head(
    q: torch.Tensor,
    k: torch.Tensor,
    spec: AttentionSpec,
    lse: torch.Tensor | None,
    *,
    row_edges: np.ndarray,
    col_edges: np.ndarray,
    is_max: bool,
    tile_cells: int,
    stats: TileStats | None,
) -> tuple[_Pooled, torch.Tensor]:
    """One query head ``q [T, d]`` against its kv head ``k [T, d]``.

    With ``lse`` (``[rows]``, the region's row normalisers) only the region's visible scores
    are computed: cost ~ the region's area. Without it each row chunk's scores span every
    visible key, its log-sum-exp is taken from them and the same scores are pooled: one pass
    (returned so the caller can keep them). Row chunks are ``[R, keys]`` with
    ``R * keys <= tile_cells`` (one large matmul each, not small tiles)."""
    q0, q1, k0, k1 = int(row_edges[0]), int(row_edges[-1]), int(col_edges[0]), int(col_edges[-1])
    row_block, col_block = int(row_edges[1] - q0), int(col_edges[1] - k0)
    n_out = (len(row_edges) - 1, len(col_edges) - 1)
    device, n_tokens = q.device, k.shape[0]
    out = _Pooled(
        values=torch.full(n_out, -1.0 if is_max else 0.0, device=device),
        arg_query=torch.full(n_out, -1, dtype=torch.int64, device=device),
        arg_key=torch.full(n_out, -1, dtype=torch.int64, device=device),
    )
    fused = lse is None
    row_lse_all = torch.empty(q1 - q0, device=device) if lse is None else lse.to(device)
    widest = (q1 if fused else min(k1, q1) - k0) + col_block
    # at least 4 chunks: a chunk computes its whole causal triangle's width, so one chunk of
    # every row would compute (and mask) twice the visible cells
    most_rows = max(1, min(tile_cells // max(1, widest), -(-(q1 - q0) // 4)))
    keys = k.float()
    # one buffer for every chunk's scores (and one for the normaliser's temporary)
    most_cells = min(q1 - q0, most_rows) * widest
    buffer = torch.empty(most_cells, device=device)
    scratch = torch.empty(most_cells, device=device) if fused else buffer
    for r0, r1, row_first, row_pool in _tiles(q0, q1, row_block, most_rows):
        first_visible = first_visible_key(r0, spec)
        pool_lo = k0 + max(0, first_visible - k0) // col_block * col_block  # block-aligned
        pool_data_hi = min(k1, r1)  # no key after the chunk's last query is visible
        has_pooled = pool_lo < pool_data_hi
        if not fused and not has_pooled:
            continue  # every cell of this chunk is masked
        n_c = -(-(pool_data_hi - pool_lo) // col_block) if has_pooled else 0
        pool_hi = pool_lo + n_c * col_block
        if fused:
            a, b = min(first_visible, pool_lo), min(max(r1, pool_hi), n_tokens)
        else:
            a, b = pool_lo, min(pool_hi, n_tokens)
        # scaling q (R x d values) instead of the scores (R x K) differs by float rounding only
        scores = buffer[: (r1 - r0) * (b - a)].view(r1 - r0, b - a)
        torch.mm(q[r0:r1].float() * spec.scaling, keys[a:b].T, out=scores)
        if stats is not None:
            stats.saw(scores)
        soft_cap_(scores, spec)
        mask_invisible_(scores, r0, a, spec)
        if fused:
            row_lse = _row_logsumexp(scores, scratch[: scores.numel()])
            row_lse_all[r0 - q0 : r1 - q0] = row_lse
            if stats is not None:
                stats.normalised_rows += r1 - r0
            if not has_pooled:
                continue
        else:
            row_lse = row_lse_all[r0 - q0 : r1 - q0]
        if k1 < pool_hi <= b:  # visible keys past the region in its ragged last block
            scores[:, k1 - a : pool_hi - a] = -math.inf
        pooled = scores[:, pool_lo - a : min(pool_hi, b) - a]
        n_r = -(-(r1 - r0) // row_pool)
        pooled = _pad_rows_cols(pooled, n_r * row_pool, n_c * col_block)
        if n_r * row_pool > r1 - r0:
            row_lse = torch.cat([row_lse, row_lse.new_zeros(n_r * row_pool - (r1 - r0))])
        _pool_chunk(
            out,
            pooled,
            row_lse,
            r0=r0,
            row_first=row_first,
            row_pool=row_pool,
            c0=pool_lo,
            col_first=(pool_lo - k0) // col_block,
            col_pool=col_block,
            is_max=is_max,
        )
    if is_max:
        out.values.clamp_(min=0.0)
    return out, row_lse_all


def pooled_patterns_from_qk(
    queries: torch.Tensor,
    keys: torch.Tensor,
    spec: AttentionSpec,
    heads: torch.Tensor,
    lse: torch.Tensor | None,
    *,
    rows: tuple[int, int],
    cols: tuple[int, int],
    shape: tuple[int, int],
    reduce: str = "max",
    tile_cells: int = VIEW_TILE_CELLS,
    stats: TileStats | None = None,
    normalised: list[torch.Tensor] | None = None,
) -> list[PooledPattern]:
    """Pooled patterns of query ``heads`` over ``rows`` x ``cols``, at most ``shape`` blocks.

    ``lse`` is ``tracing.row_statistics`` of those heads for queries ``rows[0]:rows[1]``
    (``[len(heads), rows]``), or None: each head's normalisers are then computed in the same
    pass (one pass over the rows' visible keys) and appended to ``normalised`` when given."""
    if reduce not in REDUCTIONS:
        raise ValueError(f"reduce must be one of {REDUCTIONS}, got {reduce!r}")
    (q0, q1), (k0, k1) = rows, cols
    row_edges, col_edges = block_edges(q0, q1, shape[0]), block_edges(k0, k1, shape[1])
    exact = bool(row_edges[1] - row_edges[0] == 1 and col_edges[1] - col_edges[0] == 1)
    patterns = []
    for i, head in enumerate(heads.tolist()):
        out, head_lse = _pool_head(
            queries[int(head)],
            keys[kv_head(int(head), spec)],
            spec,
            None if lse is None else lse[i],
            row_edges=row_edges,
            col_edges=col_edges,
            is_max=reduce == "max",
            tile_cells=tile_cells,
            stats=stats,
        )
        if lse is None and normalised is not None:
            normalised.append(head_lse)
        patterns.append(
            PooledPattern(
                values=out.values.cpu().numpy(),
                row_edges=row_edges,
                col_edges=col_edges,
                reduce=reduce,
                argmax_query=out.arg_query.cpu().numpy(),
                argmax_key=out.arg_key.cpu().numpy(),
                exact=exact,
            )
        )
    return patterns
