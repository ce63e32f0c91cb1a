"""Attention at screen resolution: pooled patterns computed block by block, never ``[T, T]``.

At T = 32k one head's pattern is 4 GB in float32, but a view paints at most ~512 x 512 cells.
Pooled views are computed the way flash attention tiles its work: first each query row's
normaliser (running max + log-sum-exp over key tiles), then, tile by tile, the weights
``exp(score - lse)`` reduced into ``[rows_out, cols_out]`` blocks by max (with the argmax cell)
or sum. Only one tile of scores (:data:`TILE_CELLS` across the heads of a call) exists at a
time. The arithmetic is :func:`~llmasos_widgets.tracing._patterns.attention_pattern`'s
(scaling, soft-capping, causal and sliding-window masks, grouped-query kv heads).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from llmasos_widgets.tracing._patterns import AttentionSpec

TILE_CELLS = 2**22
"""Scores computed at once (all heads of a call together): 16 MB in float32. A tile's
temporaries (scores, mask, weights, the pooled copy) are a few times this."""

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


def _scores(q: torch.Tensor, k: torch.Tensor, spec: AttentionSpec) -> torch.Tensor:
    """``[head, R, d] x [head, C, d] -> float32 [head, R, C]``, as attention_pattern computes."""
    # scaling q (R x d values) instead of the scores (R x C) differs by float rounding only
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


def _tile_lengths(n_heads: int, n_cols: int, tile_cells: int) -> tuple[int, int]:
    per_head = max(1, tile_cells // max(1, n_heads))
    cols = min(n_cols, max(1, math.isqrt(per_head)))
    return max(1, per_head // cols), cols


@dataclass
class TileStats:
    """Largest tile computed (cells across heads), for tests that bound memory."""

    largest: int = 0
    tiles: int = 0

    def saw(self, tensor: torch.Tensor) -> None:
        self.largest = max(self.largest, tensor.numel())
        self.tiles += 1


# ---- pass 1: row normalisers -----------------------------------------------------------------


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
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-sum-exp of each query row's visible scores, ``float32 [len(heads), len(positions)]``
    (running max over key tiles, flash-attention style), and with ``mean_score`` the
    attention-weighted mean score of each row (entropy = lse - mean_score).

    ``queries`` ``[head, token, d]``, ``keys`` ``[kv_head, token, d]``, ``heads`` the query
    heads wanted, ``positions`` int64 query positions (any order, repeats allowed)."""
    device = queries.device
    heads = heads.to(device)
    positions = positions.to(device)
    kv_heads = heads // spec.n_kv_groups
    n_heads, n_pos = len(heads), len(positions)
    lse = torch.empty(n_heads, n_pos, dtype=torch.float32, device=device)
    means = torch.empty_like(lse) if mean_score else None
    if n_pos == 0:
        return lse, means
    n_rows, n_cols = _tile_lengths(n_heads, int(positions.max()) + 1, tile_cells)
    for start in range(0, n_pos, n_rows):
        query_pos = positions[start : start + n_rows]
        q = queries[heads.unsqueeze(1), query_pos.unsqueeze(0)]
        top = torch.full((n_heads, len(query_pos)), -math.inf, device=device)
        total = torch.zeros_like(top)
        weighted = torch.zeros_like(top)
        for key_start in range(
            _first_key(int(query_pos.min()), spec), int(query_pos.max()) + 1, n_cols
        ):
            key_pos = torch.arange(
                key_start, min(key_start + n_cols, int(query_pos.max()) + 1), device=device
            )
            scores = _scores(q, keys[kv_heads, key_start : int(key_pos[-1]) + 1], spec)
            if stats is not None:
                stats.saw(scores)
            masked = not _all_visible(query_pos, int(key_pos[0]), int(key_pos[-1]) + 1, spec)
            if masked:
                scores = scores.masked_fill(~_visible(query_pos, key_pos, spec), -math.inf)
            if means is None:  # log-sum-exp only: one fused reduction per tile
                top = torch.logaddexp(top, torch.logsumexp(scores, -1))
                continue
            new_top = torch.maximum(top, scores.amax(-1))
            # rows with nothing visible yet keep -inf; shift by 0 there so exp gives 0, not NaN
            shift = torch.where(torch.isinf(new_top), torch.zeros_like(new_top), new_top)
            rescale = torch.exp(top - shift)
            exps = torch.exp(scores - shift.unsqueeze(-1))
            total = total * rescale + exps.sum(-1)
            if means is not None:
                finite = torch.nan_to_num(scores, neginf=0.0) if masked else scores
                weighted = weighted * rescale + (exps * finite).sum(-1)
            top = new_top
        if means is None:
            lse[:, start : start + len(query_pos)] = top
            continue
        lse[:, start : start + len(query_pos)] = top + torch.log(total)
        if means is not None:
            means[:, start : start + len(query_pos)] = weighted / total
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


def _pad_to(tensor: torch.Tensor, dim: int, multiple: int, fill: float) -> torch.Tensor:
    missing = -tensor.shape[dim] % multiple
    if missing == 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor, tensor.new_full(shape, fill)], dim=dim)


def pooled_heads(
    queries: torch.Tensor,
    keys: torch.Tensor,
    spec: AttentionSpec,
    heads: torch.Tensor,
    lse: torch.Tensor,
    *,
    rows: tuple[int, int],
    cols: tuple[int, int],
    shape: tuple[int, int],
    reduce: str = "max",
    tile_cells: int = TILE_CELLS,
    stats: TileStats | None = None,
) -> list[PooledPattern]:
    """Pooled patterns of query ``heads`` over ``rows`` x ``cols``, at most ``shape`` blocks.

    ``lse`` is :func:`row_statistics` of those heads for queries ``rows[0]:rows[1]``."""
    if reduce not in REDUCTIONS:
        raise ValueError(f"reduce must be one of {REDUCTIONS}, got {reduce!r}")
    (q0, q1), (k0, k1) = rows, cols
    row_edges, col_edges = block_edges(q0, q1, shape[0]), block_edges(k0, k1, shape[1])
    row_block, col_block = int(row_edges[1] - row_edges[0]), int(col_edges[1] - col_edges[0])
    n_out = (len(row_edges) - 1, len(col_edges) - 1)
    device = queries.device
    heads = heads.to(device)
    kv_heads = heads // spec.n_kv_groups
    n_heads = len(heads)
    is_max = reduce == "max"
    values = torch.full((n_heads, *n_out), -1.0 if is_max else 0.0, device=device)
    arg_query = torch.full((n_heads, *n_out), -1, dtype=torch.int64, device=device)
    arg_key = torch.full_like(arg_query, -1)
    most_rows, most_cols = _tile_lengths(n_heads, k1 - k0, tile_cells)
    for r0, r1, row_first, row_pool in _tiles(q0, q1, row_block, most_rows):
        q = queries[heads, r0:r1]
        query_pos = torch.arange(r0, r1, device=device)
        # padded rows (a short last block) get scores -inf, hence weight 0
        row_lse = _pad_to(lse[:, r0 - q0 : r1 - q0], 1, row_pool, 0.0).unsqueeze(-1)
        key_stop = min(k1, r1)  # causal: no key after the tile's last query is visible
        key_start = max(k0, _first_key(r0, spec))
        for c0, c1, col_first, col_pool in _tiles(k0, k1, col_block, most_cols):
            if c0 >= key_stop or c1 <= key_start:
                continue  # every cell of this tile is masked
            scores = _scores(q, keys[kv_heads, c0:c1], spec)
            if stats is not None:
                stats.saw(scores)
            if not _all_visible(query_pos, c0, c1, spec):
                visible = _visible(query_pos, torch.arange(c0, c1, device=device), spec)
                scores = scores.masked_fill(~visible, -math.inf)
            scores = _pad_to(_pad_to(scores, 1, row_pool, -math.inf), 2, col_pool, -math.inf)
            n_r, n_c = scores.shape[1] // row_pool, scores.shape[2] // col_pool
            by_col = scores.reshape(n_heads, n_r * row_pool, n_c, col_pool)
            out = (
                slice(None),
                slice(row_first, row_first + n_r),
                slice(col_first, col_first + n_c),
            )
            if not is_max:
                weights = torch.exp(by_col - row_lse.unsqueeze(-1)).sum(-1)
                values[out] += weights.reshape(n_heads, n_r, row_pool, n_c).sum(2)
                continue
            # exp is monotone: the largest weight of a row in a block is exp(its largest score
            # - lse), so exp runs on one value per row and block, not on every cell
            top_score, col_offset = by_col.max(-1)
            weights = torch.exp(top_score - row_lse).masked_fill(torch.isneginf(top_score), -1.0)
            best, row_offset = weights.reshape(n_heads, n_r, row_pool, n_c).max(2)
            col_offset = col_offset.reshape(n_heads, n_r, row_pool, n_c)
            col_offset = col_offset.gather(2, row_offset.unsqueeze(2)).squeeze(2)
            better = best > values[out]
            values[out] = torch.where(better, best, values[out])
            row_base = torch.arange(n_r, device=device).unsqueeze(1) * row_pool + r0
            col_base = torch.arange(n_c, device=device).unsqueeze(0) * col_pool + c0
            arg_query[out] = torch.where(better, row_base + row_offset, arg_query[out])
            arg_key[out] = torch.where(better, col_base + col_offset, arg_key[out])
    values = values.clamp_min(0.0)
    exact = row_block == 1 and col_block == 1
    return [
        PooledPattern(
            values=values[i].cpu().numpy(),
            row_edges=row_edges,
            col_edges=col_edges,
            reduce=reduce,
            argmax_query=arg_query[i].cpu().numpy(),
            argmax_key=arg_key[i].cpu().numpy(),
            exact=exact,
        )
        for i in range(n_heads)
    ]


# ---- normalisers kept per explanation --------------------------------------------------------


@dataclass
class RowNormalisers:
    """Log-sum-exp of every (layer, head, query) computed so far, so zooming and hover flow
    reuse pass 1 (T floats per head: 128 kB per head at T = 32k)."""

    lse: dict[int, torch.Tensor] = field(default_factory=dict)
    known: dict[int, torch.Tensor] = field(default_factory=dict)

    def store(
        self,
        layer: int,
        shape: tuple[int, int],
        heads: torch.Tensor,
        positions: torch.Tensor,
        lse: torch.Tensor,
    ) -> None:
        """Record ``lse [len(heads), len(positions)]`` of a layer with ``shape`` = (heads, T)."""
        if layer not in self.lse:
            self.lse[layer] = torch.zeros(shape, device=lse.device)
            self.known[layer] = torch.zeros(shape, dtype=torch.bool, device=lse.device)
        table, known = self.lse[layer], self.known[layer]
        index = (heads.to(table.device).unsqueeze(1), positions.to(table.device).unsqueeze(0))
        table[index] = lse.to(table.device)
        known[index] = True

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
        known = self.known.get(layer)
        if known is None:
            missing = positions.unique()
        else:
            have = known[heads.to(known.device).unsqueeze(1), positions.to(known.device)]
            missing = positions[~have.all(0).to(positions.device)].unique()
        if len(missing):
            lse, _ = row_statistics(
                queries, keys, explanation.specs[layer], heads, missing, **kwargs
            )
            self.store(layer, shape, heads, missing, lse)
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
    ``Explanation.pooled_attention``); normalisers are reused across calls."""
    n_tokens = int(explanation.n_tokens)
    rows, cols = check_region(rows, n_tokens, "rows"), check_region(cols, n_tokens, "cols")
    if len(shape) != 2 or any(int(side) < 1 for side in shape):
        raise ValueError(f"shape must be (rows_out, cols_out) >= 1, got {shape!r}")
    if reduce not in REDUCTIONS:
        raise ValueError(f"reduce must be one of {REDUCTIONS}, got {reduce!r}")
    queries = explanation.queries[layer]
    head_index = torch.tensor(heads, dtype=torch.int64, device=queries.device)
    positions = torch.arange(rows[0], rows[1], device=queries.device)
    lse = explanation.row_normalisers.get(
        explanation, layer, head_index, positions, tile_cells=tile_cells, stats=stats
    )
    return pooled_heads(
        queries,
        explanation.keys[layer],
        explanation.specs[layer],
        head_index,
        lse,
        rows=rows,
        cols=cols,
        shape=(int(shape[0]), int(shape[1])),
        reduce=reduce,
        tile_cells=tile_cells,
        stats=stats,
    )


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
