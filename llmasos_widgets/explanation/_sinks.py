"""Attention sinks: key positions that most heads attend to whatever the query.

Pretrained models park attention on a few positions, usually the first token (Xiao et al.
2023, "Efficient streaming language models with attention sinks"; Gu et al. 2024, "When
attention sink emerges"). A sink's attention weight is large but carries little: reading it
as "this token matters" misleads, so the views mark sinks instead of hiding them.

The rule (``find_sinks``), per head ``(layer, head)`` and key position ``j``:

* ``received[j]`` = mean over the query rows ``i > j`` (of the rows the head summaries
  average over: all of ``1..T-1``, or their seeded sample at long T on the CPU) of
  ``A[i, j]``;
* ``uniform[j]`` = the same mean of ``1 / (keys visible from i)``: what ``j`` would get if
  every query spread its attention evenly;
* the head *sinks into* ``j`` when ``received[j] - uniform[j] > threshold``
  (:data:`SINK_THRESHOLD` = 0.2). Measured above the uniform share, so uniform attention on a
  short text never makes its first token a sink (Gu et al.'s metric, the raw mean above 0.3,
  does at T <= 5). On SmolLM2-135M-Instruct 0.3 leaves position 0 at 51% of heads on a
  112-token paragraph, 0.2 at 61% (and 76-83% on short texts): 0.2 keeps a margin.

Position ``j`` is a sink when more than ``min_share`` (:data:`SINK_HEAD_SHARE` = 0.5) of all
``layer x head`` heads sink into it and at least ``min_queries`` (:data:`SINK_MIN_QUERIES`)
query positions follow it.

``received`` is computed row chunk by row chunk from q/k with each row's log-sum-exp, in the
same pass as the head summaries (``_row_summaries.row_summaries``): no ``[T, T]`` pattern.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from llmasos_widgets.tracing import (
    TILE_CELLS,
    AttentionSpec,
    first_visible_key,
    kv_head,
    scaled_scores,
    visible,
)

SINK_THRESHOLD = 0.2
"""A head sinks into key ``j`` when its mean weight on ``j`` exceeds the uniform share by this."""
SINK_HEAD_SHARE = 0.5
"""``j`` is a sink when more than this fraction of all heads sink into it."""
SINK_MIN_QUERIES = 2
"""...and at least this many query positions follow ``j`` (the last tokens are never sinks)."""


def sink_tiles(n_heads: int, n_tokens: int, n_rows: int, tile_cells: int) -> tuple[int, int]:
    """(rows, keys) of :func:`received_attention`'s tiles for ``n_rows`` query rows."""
    per_head = max(1, tile_cells // max(1, n_heads))
    key_tile = max(1, min(n_tokens, max(math.isqrt(per_head), per_head // max(1, n_rows))))
    return max(1, per_head // key_tile), key_tile


class ReceivedAttention:
    """Accumulates one layer's received weights a row chunk at a time (see
    :func:`received_attention`); the chunk's scores come from its own matmul or from
    ``row_statistics``'s tiles of the same rows (``add_chunk`` is its ``on_row_chunk``).

    ``uniform_and_count``: the layer's uniform shares and counts (``result()[2]``), which
    depend on the rows and the sliding window only: pass them to reuse them across layers.
    ``queries``/``keys``: the layer's, to score a tile afresh where the given one is wider."""

    def __init__(
        self,
        n_heads: int,
        n_tokens: int,
        spec: AttentionSpec,
        rows: torch.Tensor,
        device: torch.device,
        *,
        key_tile: int,
        uniform_and_count: tuple[torch.Tensor, torch.Tensor] | None = None,
        queries: torch.Tensor | None = None,
        keys: torch.Tensor | None = None,
    ) -> None:
        self.spec, self.rows, self.key_tile = spec, rows, key_tile
        self.queries, self.keys = queries, keys
        self.kv_index = kv_head(torch.arange(n_heads, device=device), spec)
        self.total = torch.zeros(n_heads, n_tokens, dtype=torch.float64, device=device)
        self.uniform_and_count = uniform_and_count
        if uniform_and_count is None:
            self.uniform = torch.zeros(n_tokens, dtype=torch.float64, device=device)
            self.count = torch.zeros(n_tokens, dtype=torch.float64, device=device)

    def add_chunk(
        self,
        start: int,
        query_pos: torch.Tensor,
        row_lse: torch.Tensor,
        tiles: Iterable[tuple[int, torch.Tensor]],
    ) -> None:
        """Rows ``query_pos`` (sorted, ``rows[start:]``) with their ``lse [head, rows]`` and
        score tiles ``(key_start, [head, rows, >= keys])`` from the first key on, in order."""
        spec, device = self.spec, row_lse.device
        row_lse = row_lse.unsqueeze(-1)
        last = int(query_pos[-1])
        share = None
        if self.uniform_and_count is None:
            visible_keys = query_pos + 1
            if spec.sliding_window is not None:
                visible_keys = visible_keys.clamp(max=spec.sliding_window)
            share = 1.0 / visible_keys.double()
        for key_start, scores in tiles:
            if key_start >= last:
                break
            key_stop = min(key_start + self.key_tile, last)  # keys strictly before the last row
            key_pos = torch.arange(key_start, key_stop, device=device)
            # weights: exp(score - lse), 0 where the key is not before the row
            if scores.shape[-1] != key_stop - key_start:
                # the row chunk's last tile, one key (the last row's own) wider: a matmul
                # of another width may round differently, so score the narrower tile afresh
                if self.queries is None or self.keys is None:
                    raise ValueError("tiles wider than the sink tiles need queries and keys")
                scores = scaled_scores(
                    self.queries[:, query_pos],
                    self.keys[self.kv_index, key_start:key_stop],
                    spec,
                )
            key_pos, row_pos = key_pos.unsqueeze(0), query_pos.unsqueeze(1)
            after = visible(row_pos, key_pos, spec) & (key_pos < row_pos)  # rows after the key
            before = None if bool(after.all()) else ~after
            # head by head (a head's cells stay in cache; the same values as the whole tile)
            for head in range(scores.shape[0]):
                weights = scores[head].sub_(row_lse[head]).exp_()  # the tile is ours
                if before is not None:
                    weights.masked_fill_(before, 0.0)
                self.total[head, key_start:key_stop] += weights.sum(0)
            if share is not None:
                afterf = after.to(torch.float64)
                self.uniform[key_start:key_stop] += share @ afterf
                self.count[key_start:key_stop] += afterf.sum(0)

    def result(self) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """``(received [head, T], uniform [T])`` float32, and the ``uniform_and_count`` sums."""
        total = self.total
        uniform, count = (
            (self.uniform, self.count) if self.uniform_and_count is None else self.uniform_and_count
        )
        safe = count.clamp(min=1.0)
        received = torch.where(count > 0, total / safe, torch.full_like(total, math.nan))
        baseline = torch.where(count > 0, uniform / safe, torch.full_like(uniform, math.nan))
        return received.float(), baseline.float(), (uniform, count)


def received_attention(
    queries: torch.Tensor,
    keys: torch.Tensor,
    spec: AttentionSpec,
    lse: torch.Tensor,
    rows: torch.Tensor,
    *,
    tile_cells: int = TILE_CELLS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One layer's ``(received [head, T], uniform [T])`` (float32, NaN where no row of
    ``rows`` follows the key), from post-RoPE ``queries [head, T, d]``, ``keys
    [kv_head, T, d]`` and the rows' log-sum-exp ``lse [head, len(rows)]``.

    ``rows``: sorted int64 query positions (>= 1). Rows are taken a chunk at a time against
    the keys before them, in tiles of at most ``tile_cells`` scores across heads. (The head
    summaries get the same values from their own pass's tiles: ``ReceivedAttention``.)"""
    device = queries.device
    n_heads, n_tokens = int(queries.shape[0]), int(queries.shape[1])
    rows = rows.to(device)
    lse = lse.to(device)
    kv_index = kv_head(torch.arange(n_heads, device=device), spec)
    row_tile, key_tile = sink_tiles(n_heads, n_tokens, len(rows), tile_cells)
    accumulator = ReceivedAttention(n_heads, n_tokens, spec, rows, device, key_tile=key_tile)
    for start in range(0, len(rows), row_tile):
        query_pos = rows[start : start + row_tile]
        q = queries[:, query_pos]
        last = int(query_pos[-1])
        first_key = first_visible_key(int(query_pos[0]), spec)
        tiles = (  # one tile at a time
            (first, scaled_scores(q, keys[kv_index, first : min(first + key_tile, last)], spec))
            for first in range(first_key, last, key_tile)
        )
        accumulator.add_chunk(start, query_pos, lse[:, start : start + row_tile], tiles)
    received, baseline, _ = accumulator.result()
    return received, baseline


@dataclass(frozen=True, kw_only=True, eq=False)
class AttentionSinks:
    """Where the heads of one explanation park their attention (see the module's rule)."""

    received: np.ndarray
    """float32 ``[layer, head, token]``: mean weight each key receives from the query rows
    after it (NaN where none follows)."""
    uniform: np.ndarray
    """float32 ``[layer, token]``: the same mean under uniform attention."""
    threshold: float = SINK_THRESHOLD
    min_share: float = SINK_HEAD_SHARE
    min_queries: int = SINK_MIN_QUERIES
    note: str = ""
    """How ``received`` was estimated ("" when exact over every query row)."""

    def __post_init__(self) -> None:
        if self.received.ndim != 3 or self.uniform.shape != (
            self.received.shape[0],
            self.received.shape[2],
        ):
            raise ValueError(
                f"received must be [layer, head, token] and uniform [layer, token]; got "
                f"{self.received.shape} and {self.uniform.shape}"
            )
        if not 0.0 <= self.min_share < 1.0:
            raise ValueError(f"min_share must be in [0, 1), got {self.min_share}")

    @property
    def sinking(self) -> np.ndarray:
        """bool ``[layer, head, token]``: the heads that sink into each key."""
        excess = self.received - self.uniform[:, None, :]
        with np.errstate(invalid="ignore"):
            return np.nan_to_num(excess, nan=-np.inf) > self.threshold

    @property
    def head_share(self) -> np.ndarray:
        """float32 ``[token]``: fraction of all heads that sink into each key."""
        layers, heads, _ = self.received.shape
        return (self.sinking.sum((0, 1)) / max(1, layers * heads)).astype(np.float32)

    @property
    def mass(self) -> np.ndarray:
        """float32 ``[token]``: each key's received weight averaged over every head."""
        # an all-NaN key (no query follows it) warns in nanmean, and is NaN as it should be
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean(self.received, axis=(0, 1)).astype(np.float32)

    @property
    def positions(self) -> tuple[int, ...]:
        """The sink positions, ascending."""
        n_tokens = self.received.shape[2]
        share = self.head_share
        followed = np.arange(n_tokens) <= n_tokens - 1 - self.min_queries
        return tuple(int(j) for j in np.flatnonzero((share > self.min_share) & followed))

    def with_rule(
        self,
        threshold: float | None = None,
        min_share: float | None = None,
        min_queries: int | None = None,
    ) -> AttentionSinks:
        """The same measurements under another rule (no recomputation)."""
        return AttentionSinks(
            received=self.received,
            uniform=self.uniform,
            threshold=self.threshold if threshold is None else float(threshold),
            min_share=self.min_share if min_share is None else float(min_share),
            min_queries=self.min_queries if min_queries is None else int(min_queries),
            note=self.note,
        )

    def rule(self) -> str:
        """The rule in words (tooltips, legends, the report)."""
        return (
            f"a head sinks into a key when the mean weight the queries after it give it exceeds "
            f"the uniform share by more than {self.threshold:g}; a sink is a key that more than "
            f"{self.min_share:.0%} of all heads sink into"
        )

    def summary(self) -> dict[str, Any]:
        """JSON for the views: ``positions``, per-position ``head_share`` and ``mass``, rule."""
        share, mass = self.head_share, self.mass
        positions = list(self.positions)
        return {
            "positions": positions,
            "head_share": [float(share[j]) for j in positions],
            "mass": [float(mass[j]) for j in positions],
            "threshold": float(self.threshold),
            "min_share": float(self.min_share),
            "rule": self.rule(),
            "note": self.note,
        }

    def metadata(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "min_share": self.min_share,
            "min_queries": self.min_queries,
            "note": self.note,
        }

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"received": self.received, "uniform": self.uniform}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> AttentionSinks:
        return cls(
            received=arrays["received"],
            uniform=arrays["uniform"],
            threshold=float(meta.get("threshold", SINK_THRESHOLD)),
            min_share=float(meta.get("min_share", SINK_HEAD_SHARE)),
            min_queries=int(meta.get("min_queries", SINK_MIN_QUERIES)),
            note=str(meta.get("note", "")),
        )


def sinks_of_explanation(explanation: Any, *, seed: int = 0) -> AttentionSinks:
    """Sinks of an Explanation that has none stored (a file saved before sinks were detected,
    or one built by hand): computed from its queries/keys, with the summaries' row rule."""
    from llmasos_widgets.explanation._row_summaries import summary_rows

    n_tokens = int(explanation.n_tokens)
    n_layers, n_heads = int(explanation.n_layers), int(explanation.n_heads)
    received = np.full((n_layers, n_heads, n_tokens), np.nan, np.float32)
    uniform = np.full((n_layers, n_tokens), np.nan, np.float32)
    if n_tokens < 2:
        return AttentionSinks(received=received, uniform=uniform)
    on_cpu = all(q.device.type == "cpu" for q in explanation.queries)
    rows, note = summary_rows(n_tokens, on_cpu=on_cpu, seed=seed)
    heads = torch.arange(n_heads)
    for layer in range(n_layers):
        lse = explanation.row_normalisers.get(explanation, layer, heads, rows)
        got, base = received_attention(
            explanation.queries[layer], explanation.keys[layer], explanation.specs[layer], lse, rows
        )
        received[layer], uniform[layer] = got.cpu().numpy(), base.cpu().numpy()
    return AttentionSinks(received=received, uniform=uniform, note=note or "")


def measure_sinks(explainable: Any, ids: torch.Tensor, *, seed: int = 0) -> AttentionSinks:
    """Sinks of a model on token ids ``[1, token]`` without a whole ``explain`` (the
    SaliencyWidget's text): one traced forward pass, then the summaries' row pass."""
    from llmasos_widgets._gather import execution_device
    from llmasos_widgets.explanation._row_summaries import row_summaries
    from llmasos_widgets.tracing import decoder_layers, trace

    hf_model = explainable.hf_model
    devices = tuple(execution_device(layer) for layer in decoder_layers(hf_model))
    with torch.no_grad(), trace(hf_model, residual=False) as captured:
        hf_model(input_ids=ids, use_cache=False, logits_to_keep=1)
    n_layers = len(captured.queries)
    result = row_summaries(
        tuple(captured.queries[layer][0] for layer in range(n_layers)),
        tuple(captured.keys[layer][0] for layer in range(n_layers)),
        tuple(captured.spec[layer] for layer in range(n_layers)),
        devices,
        seed=seed,
    )
    if result.sinks is not None:
        return result.sinks
    n_heads, n_tokens = int(captured.queries[0].shape[1]), int(ids.shape[-1])
    return AttentionSinks(
        received=np.full((n_layers, n_heads, n_tokens), np.nan, np.float32),
        uniform=np.full((n_layers, n_tokens), np.nan, np.float32),
    )
