"""Attention at screen resolution: pooled patterns computed block by block, never ``[T, T]``.

At T = 32k one head's pattern is 4 GB in float32, but a view paints at most ~512 x 512 cells.
Pooled views are computed the way flash attention tiles its work, in row chunks: one matmul
gives a chunk's ``[rows, keys]`` scores; when the rows' normalisers (log-sum-exp) are not known
yet the chunk spans every visible key, so the same scores give the normalisers and the pooled
weights ``exp(score - lse)`` (one pass), and the normalisers are kept for later views; when
they are known only the region's keys are computed. Blocks reduce by max (with the argmax
cell) or sum. Only one chunk of scores (:data:`TILE_CELLS`) exists at a time. The arithmetic
is :func:`~llmasos_widgets.tracing._patterns.attention_pattern`'s (scaling, soft-capping,
causal and sliding-window masks, grouped-query kv heads).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from llmasos_widgets.tracing._patterns import AttentionSpec

TILE_CELLS = 2**22
"""Scores computed at once: 16 MB in float32 (a row chunk's scores, or a tile of
:func:`row_statistics` across heads). A pooled view holds two such buffers (scores and the
normaliser's temporary), reused across chunks; wider than this only when one row is."""

REDUCTIONS = ("max", "sum")


@dataclass(frozen=True, kw_only=True, eq=False)
class PooledPattern:
    """One head's attention over a query x key region, pooled into blocks.

    Block ``[r, c]`` covers queries ``row_edges[r]:row_edges[r + 1]`` and keys
    ``col_edges[c]:col_edges[c + 1]``. ``values`` is the largest weight in the block
    (``reduce="max"``, at cell ``(argmax_query, argmax_key)``) or the block's total weight
    (``reduce="sum"``: each full row of blocks then sums to the block height). Blocks with no
    visible cell (above the causal diagonal, outside a sliding window) hold 0 and argmax -1.
    """

    values: np.ndarray
    """float32 ``[rows_out, cols_out]``."""
    row_edges: np.ndarray
    """int64 ``[rows_out + 1]`` query positions of the block edges."""
    col_edges: np.ndarray
    """int64 ``[cols_out + 1]`` key positions of the block edges."""
    reduce: str
    argmax_query: np.ndarray
    """int64 ``[rows_out, cols_out]`` query position of each block's largest weight (-1 when
    the block has no visible cell; -1 everywhere for ``reduce="sum"``)."""
    argmax_key: np.ndarray
    """int64 ``[rows_out, cols_out]`` key position of each block's largest weight."""
    exact: bool
    """True when every block is a single cell (values are then the exact weights)."""

    def __post_init__(self) -> None:
        if self.reduce not in REDUCTIONS:
            raise ValueError(f"reduce must be one of {REDUCTIONS}, got {self.reduce!r}")
        shape = (len(self.row_edges) - 1, len(self.col_edges) - 1)
        for name in ("values", "argmax_query", "argmax_key"):
            array = getattr(self, name)
            if array.shape != shape:
                raise ValueError(f"{name} must have shape {shape}; got {tuple(array.shape)}")
        for name in ("row_edges", "col_edges"):
            edges = getattr(self, name)
            if len(edges) < 2 or np.any(np.diff(edges) <= 0):
                raise ValueError(f"{name} must be at least 2 strictly increasing positions")


def block_edges(start: int, stop: int, most: int) -> np.ndarray:
    """At most ``most`` equal blocks of ``ceil((stop - start) / most)`` positions (the last
    may be shorter), so every tile pools with one reshape."""
    size = -(-(stop - start) // most)
    return np.append(np.arange(start, stop, size, dtype=np.int64), np.int64(stop))


def check_region(region: tuple[int, int] | None, n_tokens: int, name: str) -> tuple[int, int]:
    if region is None:
        return 0, n_tokens
    if len(region) != 2:
        raise ValueError(f"{name} must be a (start, stop) pair, got {region!r}")
    start, stop = int(region[0]), int(region[1])
    if not 0 <= start < stop <= n_tokens:
        raise ValueError(
            f"{name}={region!r} must satisfy 0 <= start < stop <= {n_tokens} (the token count)"
        )
    return start, stop


# ---- scores of one tile ----------------------------------------------------------------------


def _scores(
    q: torch.Tensor, k: torch.Tensor, spec: AttentionSpec, out: torch.Tensor | None = None
) -> torch.Tensor:
    """``[head, R, d] x [head, C, d] -> float32 [head, R, C]``, as attention_pattern computes
    (into ``out``, contiguous ``[head, R, C]``, when given and there is no soft-capping)."""
    # scaling q (R x d values) instead of the scores (R x C) differs by float rounding only
    if out is not None and spec.softcap is None:
        return torch.matmul(q.float() * spec.scaling, k.float().transpose(1, 2), out=out)
    scores = torch.matmul(q.float() * spec.scaling, k.float().transpose(1, 2))
    if spec.softcap is not None:
        scores = torch.tanh(scores / spec.softcap) * spec.softcap
    return scores


def _visible(query_pos: torch.Tensor, key_pos: torch.Tensor, spec: AttentionSpec) -> torch.Tensor:
    """bool ``[R, C]``: causal (and sliding-window) visibility of keys from queries."""
    allowed = key_pos.unsqueeze(0) <= query_pos.unsqueeze(1)
    if spec.sliding_window is not None:
        allowed &= key_pos.unsqueeze(0) > query_pos.unsqueeze(1) - spec.sliding_window
    return allowed


def _all_visible(
    query_pos: torch.Tensor, key_start: int, key_stop: int, spec: AttentionSpec
) -> bool:
    """Whether every key ``key_start:key_stop`` is visible from every query (no mask needed)."""
    if key_stop - 1 > int(query_pos.min()):
        return False
    return spec.sliding_window is None or key_start > int(query_pos.max()) - spec.sliding_window


def _first_key(query_min: int, spec: AttentionSpec) -> int:
    if spec.sliding_window is None:
        return 0
    return max(0, query_min - spec.sliding_window + 1)


def _tile_lengths(
    n_heads: int, n_cols: int, tile_cells: int, n_rows: int | None = None
) -> tuple[int, int]:
    """(rows, keys) of a tile: square-ish, but as wide as the budget allows when few rows are
    asked (a hovered token's row: one tile per layer, not dozens of small ones)."""
    per_head = max(1, tile_cells // max(1, n_heads))
    cols = max(1, math.isqrt(per_head))
    if n_rows is not None:
        cols = max(cols, per_head // max(1, n_rows))
    cols = min(n_cols, cols)
    return max(1, per_head // cols), cols


@dataclass
class TileStats:
    """Largest tile computed (cells across heads), for tests that bound memory."""

    largest: int = 0
    tiles: int = 0
    normalised_rows: int = 0
    """(head, query) rows whose log-sum-exp was computed (0 when every normaliser was known)."""

    def saw(self, tensor: torch.Tensor) -> None:
        self.largest = max(self.largest, tensor.numel())
        self.tiles += 1


# ---- pass 1: row normalisers -----------------------------------------------------------------


class TileBuffers:
    """Scratch memory for :func:`row_statistics`' tiles, reused across tiles, row chunks and
    calls (pass one to every layer's call): a fresh tile-sized tensor per step costs its
    allocation and page faults, about as much as the arithmetic on it."""

    def __init__(self) -> None:
        self._flat: dict[str, torch.Tensor] = {}

    def take(
        self, name: str, shape: tuple[int, ...], device: torch.device, offset: int = 0
    ) -> torch.Tensor:
        """A contiguous float32 ``shape`` view at ``offset`` cells into buffer ``name`` (grown
        when too small; views taken before stay valid)."""
        cells = math.prod(shape)
        flat = self._flat.get(name)
        if flat is None or flat.numel() < offset + cells or flat.device != device:
            flat = torch.empty(offset + cells, device=device)
            self._flat[name] = flat
        return flat[offset : offset + cells].view(shape)


RowChunkReader = Callable[[int, torch.Tensor, torch.Tensor, list[tuple[int, torch.Tensor]]], None]
"""``row_statistics``'s ``on_row_chunk``: ``(start, query_pos, lse, tiles) -> None``."""


def row_statistics(
    queries: torch.Tensor,
    keys: torch.Tensor,
    spec: AttentionSpec,
    heads: torch.Tensor,
    positions: torch.Tensor,
    *,
    mean_score: bool = False,
    tile_cells: int = TILE_CELLS,
    stats: TileStats | None = None,
    on_row_chunk: RowChunkReader | None = None,
    buffers: TileBuffers | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-sum-exp of each query row's visible scores, ``float32 [len(heads), len(positions)]``
    (running max over key tiles, flash-attention style), and with ``mean_score`` the
    attention-weighted mean score of each row (entropy = lse - mean_score).

    ``queries`` ``[head, token, d]``, ``keys`` ``[kv_head, token, d]``, ``heads`` the query
    heads wanted, ``positions`` int64 query positions (any order, repeats allowed).

    ``on_row_chunk``: called once per row chunk, when its log-sum-exp is known, with
    ``(start, query_pos, lse [head, rows], tiles)``: ``tiles`` the chunk's score tiles
    ``(key_start, float32 [head, rows, keys])`` as computed (visible cells untouched,
    invisible ones -inf), so a second reading of the weights ``exp(score - lse)`` (attention
    sinks) costs no second matmul. The chunk's tiles are then held together (one row chunk
    across every visible key) instead of one at a time. ``buffers``: scratch memory to reuse
    (one per call when None)."""
    device = queries.device
    heads = heads.to(device)
    positions = positions.to(device)
    kv_heads = heads // spec.n_kv_groups
    n_heads, n_pos = len(heads), len(positions)
    lse = torch.empty(n_heads, n_pos, dtype=torch.float32, device=device)
    means = torch.empty_like(lse) if mean_score else None
    if n_pos == 0:
        return lse, means
    n_rows, n_cols = _tile_lengths(n_heads, int(positions.max()) + 1, tile_cells, n_pos)
    buffers = TileBuffers() if buffers is None else buffers
    for start in range(0, n_pos, n_rows):
        query_pos = positions[start : start + n_rows]
        q = queries[heads.unsqueeze(1), query_pos.unsqueeze(0)]
        top = torch.full((n_heads, len(query_pos)), -math.inf, device=device)
        total = torch.zeros_like(top)
        weighted = torch.zeros_like(top)
        tiles: list[tuple[int, torch.Tensor]] = []
        kept = 0  # cells of the chunk's tiles held for on_row_chunk
        for key_start in range(
            _first_key(int(query_pos.min()), spec), int(query_pos.max()) + 1, n_cols
        ):
            key_pos = torch.arange(
                key_start, min(key_start + n_cols, int(query_pos.max()) + 1), device=device
            )
            shape = (n_heads, len(query_pos), len(key_pos))
            out = buffers.take("scores", shape, device, kept if on_row_chunk else 0)
            scores = _scores(q, keys[kv_heads, key_start : int(key_pos[-1]) + 1], spec, out)
            if on_row_chunk is not None:
                kept += scores.numel()
            if stats is not None:
                stats.saw(scores)
            masked = not _all_visible(query_pos, int(key_pos[0]), int(key_pos[-1]) + 1, spec)
            # the tile is ours: in-place steps give the same values without a fresh tile-sized
            # allocation (and its page faults) per step
            if masked:
                scores.masked_fill_(~_visible(query_pos, key_pos, spec), -math.inf)
            if on_row_chunk is not None:
                tiles.append((key_start, scores))
            if means is None:  # log-sum-exp only: one fused reduction per tile
                top = torch.logaddexp(top, torch.logsumexp(scores, -1))
                continue
            new_top = torch.maximum(top, scores.amax(-1))
            # rows with nothing visible yet keep -inf; shift by 0 there so exp gives 0, not NaN
            shift = torch.where(torch.isinf(new_top), torch.zeros_like(new_top), new_top)
            rescale = torch.exp(top - shift)
            # head by head: a head's cells stay in cache across the steps (same values as
            # the whole tile at once: elementwise steps and per-row sums)
            exps_sum, weighted_sum = torch.empty_like(top), torch.empty_like(top)
            exps = buffers.take("exps", scores.shape[1:], device)
            finite = buffers.take("finite", scores.shape[1:], device) if masked else exps
            for head in range(n_heads):
                head_scores = scores[head]
                torch.sub(head_scores, shift[head].unsqueeze(-1), out=exps).exp_()
                exps_sum[head] = exps.sum(-1)
                if masked:  # the kept tile stays as computed (-inf where invisible)
                    torch.nan_to_num(head_scores, neginf=0.0, out=finite)
                weighted_sum[head] = exps.mul_(finite if masked else head_scores).sum(-1)
            total = total * rescale + exps_sum
            weighted = weighted * rescale + weighted_sum
            top = new_top
        if stats is not None:
            stats.normalised_rows += n_heads * len(query_pos)
        if means is None:
            lse[:, start : start + len(query_pos)] = top
        else:
            lse[:, start : start + len(query_pos)] = top + torch.log(total)
            means[:, start : start + len(query_pos)] = weighted / total
        if on_row_chunk is not None:
            on_row_chunk(start, query_pos, lse[:, start : start + len(query_pos)], tiles)
    return lse, means


# ---- pass 2: pooled weights ------------------------------------------------------------------


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


def _mask_invisible(scores: torch.Tensor, r0: int, key_start: int, spec: AttentionSpec) -> None:
    """In place: -inf on the cells of ``scores [R, K]`` (queries ``r0:r0+R``, keys
    ``key_start:key_start+K``) that are invisible (after the query, or outside the window).
    Only the columns that may hold such a cell are touched (the diagonal square, the window's
    edge), so a wide row chunk costs one small mask, not a ``[R, K]`` one."""
    n_rows, n_keys = scores.shape
    device = scores.device
    query_pos = torch.arange(r0, r0 + n_rows, device=device).unsqueeze(1)
    lo = max(key_start, r0 + 1)  # keys at or before r0 are visible from every row (causally)
    if lo < key_start + n_keys:
        key_pos = torch.arange(lo, key_start + n_keys, device=device).unsqueeze(0)
        scores[:, lo - key_start :].masked_fill_(key_pos > query_pos, -math.inf)
    if spec.sliding_window is not None:
        # key <= q - window is invisible; the last row reaches furthest
        hi = min(key_start + n_keys, r0 + n_rows - spec.sliding_window)
        if hi > key_start:
            key_pos = torch.arange(key_start, hi, device=device).unsqueeze(0)
            scores[:, : hi - key_start].masked_fill_(
                key_pos <= query_pos - spec.sliding_window, -math.inf
            )


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
        first_visible = _first_key(r0, spec)
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
        if spec.softcap is not None:
            scores.div_(spec.softcap).tanh_().mul_(spec.softcap)
        _mask_invisible(scores, r0, a, spec)
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


def pooled_heads(
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
    tile_cells: int = TILE_CELLS,
    stats: TileStats | None = None,
    normalised: list[torch.Tensor] | None = None,
) -> list[PooledPattern]:
    """Pooled patterns of query ``heads`` over ``rows`` x ``cols``, at most ``shape`` blocks.

    ``lse`` is :func:`row_statistics` of those heads for queries ``rows[0]:rows[1]``
    (``[len(heads), rows]``), or None: each head's normalisers are then computed in the same
    pass (one pass over the rows' visible keys) and appended to ``normalised`` when given."""
    if reduce not in REDUCTIONS:
        raise ValueError(f"reduce must be one of {REDUCTIONS}, got {reduce!r}")
    (q0, q1), (k0, k1) = rows, cols
    row_edges, col_edges = block_edges(q0, q1, shape[0]), block_edges(k0, k1, shape[1])
    exact = bool(row_edges[1] - row_edges[0] == 1 and col_edges[1] - col_edges[0] == 1)
    kv_heads = [int(h) // spec.n_kv_groups for h in heads.tolist()]
    patterns = []
    for i, (head, kv_head) in enumerate(zip(heads.tolist(), kv_heads, strict=True)):
        out, head_lse = _pool_head(
            queries[int(head)],
            keys[kv_head],
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


# ---- normalisers kept per explanation --------------------------------------------------------


@dataclass
class RowNormalisers:
    """Log-sum-exp of every (layer, head, query) computed so far, so zooming and hover flow
    reuse pass 1 (T floats per head: 128 kB per head at T = 32k). Safe to share between
    threads (one lock around reads and writes of the tables)."""

    lse: dict[int, torch.Tensor] = field(default_factory=dict)
    known: dict[int, torch.Tensor] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)

    def store(
        self,
        layer: int,
        shape: tuple[int, int],
        heads: torch.Tensor,
        positions: torch.Tensor,
        lse: torch.Tensor,
    ) -> None:
        """Record ``lse [len(heads), len(positions)]`` of a layer with ``shape`` = (heads, T)."""
        with self.lock:
            if layer not in self.lse:
                self.lse[layer] = torch.zeros(shape, device=lse.device)
                self.known[layer] = torch.zeros(shape, dtype=torch.bool, device=lse.device)
            table, known = self.lse[layer], self.known[layer]
            index = (heads.to(table.device).unsqueeze(1), positions.to(table.device).unsqueeze(0))
            table[index] = lse.to(table.device)
            known[index] = True

    def lookup(self, layer: int, head: int, start: int, stop: int) -> torch.Tensor | None:
        """One head's log-sum-exp of queries ``start:stop`` when every one is known, else None."""
        with self.lock:
            known = self.known.get(layer)
            if known is None or not bool(known[head, start:stop].all()):
                return None
            return self.lse[layer][head, start:stop].clone()

    def get(
        self,
        explanation: Any,
        layer: int,
        heads: torch.Tensor,
        positions: torch.Tensor,
        **kwargs: Any,
    ) -> torch.Tensor:
        """``[len(heads), len(positions)]`` log-sum-exp, computing only what is missing."""
        queries, keys = explanation.queries[layer], explanation.keys[layer]
        shape = (int(queries.shape[0]), int(queries.shape[1]))
        with self.lock:
            known = self.known.get(layer)
            if known is None:
                missing = positions.unique()
            else:
                have = known[heads.to(known.device).unsqueeze(1), positions.to(known.device)]
                missing = positions[~have.all(0).to(positions.device)].unique()
        if len(missing):  # computed outside the lock: another thread may store meanwhile
            lse, _ = row_statistics(
                queries, keys, explanation.specs[layer], heads, missing, **kwargs
            )
            self.store(layer, shape, heads, missing, lse)
        with self.lock:
            table = self.lse[layer]
            return table[heads.to(table.device).unsqueeze(1), positions.to(table.device)]


def pooled_view(
    explanation: Any,
    layer: int,
    heads: list[int],
    *,
    rows: tuple[int, int] | None = None,
    cols: tuple[int, int] | None = None,
    shape: tuple[int, int] = (512, 512),
    reduce: str = "max",
    tile_cells: int = TILE_CELLS,
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
    cache: RowNormalisers = explanation.row_normalisers
    device = queries.device
    table_shape = (int(queries.shape[0]), n_tokens)
    positions = torch.arange(rows[0], rows[1], device=device)
    patterns = []
    for head in heads:
        lse = cache.lookup(layer, head, rows[0], rows[1])
        computed: list[torch.Tensor] = []
        patterns += pooled_heads(
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


# ---- exact weights at a few cells, and the brushed flow ---------------------------------------


def cell_weights(
    queries: torch.Tensor,
    keys: torch.Tensor,
    spec: AttentionSpec,
    lse: torch.Tensor,
    query_pos: torch.Tensor,
    key_pos: torch.Tensor,
) -> torch.Tensor:
    """Exact weights ``float32 [head, len(query_pos), len(key_pos)]`` of all query heads, from
    the rows' log-sum-exp ``lse [head, len(query_pos)]``; invisible cells are 0."""
    device = queries.device
    query_pos, key_pos = query_pos.to(device), key_pos.to(device)
    kv_index = torch.arange(queries.shape[0], device=device) // spec.n_kv_groups
    scores = _scores(queries[:, query_pos], keys[:, key_pos][kv_index], spec)
    weights = torch.exp(scores - lse.to(device).unsqueeze(-1))
    return weights.masked_fill(~_visible(query_pos, key_pos, spec), 0.0)


def paired_weights(
    queries: torch.Tensor,
    keys: torch.Tensor,
    spec: AttentionSpec,
    lse: torch.Tensor,
    query_pos: torch.Tensor,
    key_pos: torch.Tensor,
) -> torch.Tensor:
    """Exact weights ``float32 [head, n]`` of the cells ``(query_pos[i], key_pos[i])``."""
    device = queries.device
    query_pos, key_pos = query_pos.to(device), key_pos.to(device)
    kv_index = torch.arange(queries.shape[0], device=device) // spec.n_kv_groups
    q, k = queries[:, query_pos].float(), keys[:, key_pos][kv_index].float()
    scores = (q * k).sum(-1) * spec.scaling
    if spec.softcap is not None:
        scores = torch.tanh(scores / spec.softcap) * spec.softcap
    visible = key_pos <= query_pos
    if spec.sliding_window is not None:
        visible &= key_pos > query_pos - spec.sliding_window
    return torch.exp(scores - lse.to(device)).masked_fill(~visible, 0.0)


def flow_values(
    explanation: Any,
    focus: list[int] | tuple[int, ...],
    others: list[int] | tuple[int, ...],
    direction: str,
    *,
    tile_cells: int = TILE_CELLS,
) -> np.ndarray:
    """``float32 [layer, head]`` brushed attention flow, blockwise at any T.

    Same values as ``widgets.attention.attention_flow`` on each head's exact pattern:
      from: mean over queries q in focus of sum over keys k in others of A[q, k]
      to:   mean over queries q in others of sum over keys k in focus of A[q, k]
    Empty ``others``: every key but the first and q itself ("from"); every non-focus query
    at or after the first focus token ("to"). Costs the normalisers of the rows read (cached
    on the explanation), then ``rows x len(focus or others)`` scores per head.
    """
    if direction not in ("from", "to"):
        raise ValueError(f"direction must be 'from' or 'to', got {direction!r}")
    n_tokens, n_layers, n_heads = explanation.n_tokens, explanation.n_layers, explanation.n_heads
    for token in (*focus, *others):
        if not 0 <= token < n_tokens:
            raise ValueError(f"token {token} is out of range (valid: 0..{n_tokens - 1})")
    values = np.full((n_layers, n_heads), np.nan, dtype=np.float32)
    if not focus:
        return values
    if direction == "from":
        rows, columns = list(focus), list(others)
    else:
        focus_set = set(focus)
        rows = list(others) or [q for q in range(min(focus), n_tokens) if q not in focus_set]
        columns = list(focus)
        if not rows:
            return values
    all_heads = torch.arange(n_heads)
    chunk = max(1, tile_cells // (n_heads * max(1, len(columns), 2)))
    for layer in range(n_layers):
        queries, keys, spec = (
            explanation.queries[layer],
            explanation.keys[layer],
            explanation.specs[layer],
        )
        total = torch.zeros(n_heads, dtype=torch.float64)
        for start in range(0, len(rows), chunk):
            query_pos = torch.tensor(rows[start : start + chunk], dtype=torch.int64)
            lse = explanation.row_normalisers.get(
                explanation, layer, all_heads, query_pos, tile_cells=tile_cells
            )
            if columns:
                weights = cell_weights(queries, keys, spec, lse, query_pos, torch.tensor(columns))
                total += weights.double().sum(dim=(1, 2)).cpu()
                continue
            # "from" with no others: the row's weight (1) less the first token and the query
            # itself; row 0 attends only to itself and gives 0
            first = paired_weights(queries, keys, spec, lse, query_pos, torch.zeros_like(query_pos))
            own = paired_weights(queries, keys, spec, lse, query_pos, query_pos)
            rest = 1.0 - first.double() - own.double()
            total += torch.where(query_pos > 0, rest.cpu(), torch.zeros(())).sum(1)
        values[layer] = (total / len(rows)).numpy()
    return values
