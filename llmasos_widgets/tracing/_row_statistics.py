"""Each query row's log-sum-exp (and mean score) over its visible keys, tile by tile.

Computed the way flash attention tiles its work, so no ``[T, T]`` pattern exists: ``explain``
derives the head summaries and the attention sinks from these tiles, and the pooled views
(``llmasos_widgets.views``) divide by these normalisers. The arithmetic is
:mod:`~llmasos_widgets.tracing._attention_arithmetic`'s.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from llmasos_widgets.tracing._attention_arithmetic import (
    AttentionSpec,
    all_visible,
    first_visible_key,
    kv_head,
    scaled_scores,
    visible,
)

TILE_CELLS = 2**22
"""Scores computed at once: 16 MB in float32 (a row chunk's scores, or a tile of
:func:`row_statistics` across heads). A pooled view holds two such buffers (scores and the
normaliser's temporary), reused across chunks; wider than this only when one row is."""


def tile_lengths(
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
    kv_heads = kv_head(heads, spec)
    n_heads, n_pos = len(heads), len(positions)
    lse = torch.empty(n_heads, n_pos, dtype=torch.float32, device=device)
    means = torch.empty_like(lse) if mean_score else None
    if n_pos == 0:
        return lse, means
    n_rows, n_cols = tile_lengths(n_heads, int(positions.max()) + 1, tile_cells, n_pos)
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
            first_visible_key(int(query_pos.min()), spec), int(query_pos.max()) + 1, n_cols
        ):
            key_pos = torch.arange(
                key_start, min(key_start + n_cols, int(query_pos.max()) + 1), device=device
            )
            shape = (n_heads, len(query_pos), len(key_pos))
            out = buffers.take("scores", shape, device, kept if on_row_chunk else 0)
            scores = scaled_scores(q, keys[kv_heads, key_start : int(key_pos[-1]) + 1], spec, out)
            if on_row_chunk is not None:
                kept += scores.numel()
            if stats is not None:
                stats.saw(scores)
            masked = not all_visible(query_pos, int(key_pos[0]), int(key_pos[-1]) + 1, spec)
            # the tile is ours: in-place steps give the same values without a fresh tile-sized
            # allocation (and its page faults) per step
            if masked:
                scores.masked_fill_(
                    ~visible(query_pos.unsqueeze(1), key_pos.unsqueeze(0), spec), -math.inf
                )
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
