"""Head summaries at any length, row by row from q/k: no ``[T, T]`` pattern is built.

Each query row's log-sum-exp and attention-weighted mean score come from one tiled pass
(``tracing.row_statistics``); then, per row, entropy = lse - mean score and the
weights on the previous and the first token are single cells ``exp(score - lse)``. The
averages are over query rows 1..T-1 (the definitions in ``_summaries``). On the CPU above
:data:`EXACT_ROWS_CPU` rows the averages are estimated from :data:`SAMPLE_ROWS` rows drawn
with a seed, and a note says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from llmasos_widgets.explanation._row_normalisers import RowNormalisers
from llmasos_widgets.explanation._sinks import (
    AttentionSinks,
    ReceivedAttention,
    received_attention,
    sink_tiles,
)
from llmasos_widgets.tracing import (
    TILE_CELLS,
    AttentionSpec,
    TileBuffers,
    paired_weights,
    row_statistics,
    tile_lengths,
)

ROW_SUMMARIES = ("entropy", "previous_token", "first_token")
EXACT_ROWS_CPU = 4096
"""On the CPU, texts longer than this many tokens get sampled summaries: an exact pass costs
T^2 * d multiply-adds per head (at T = 32k and d = 128, ~1 min per head on 2 cores)."""
SAMPLE_ROWS = 512
FUSED_CELLS = 2**25
"""The sinks share the summaries' scores when one row chunk's tiles (kept until the chunk's
log-sum-exp is known) hold at most this many cells across heads (128 MB in float32: one
layer of 9 heads at T = 4096 holds 25M); beyond, they recompute the scores."""


@dataclass(frozen=True)
class RowSummaries:
    summaries: dict[str, np.ndarray]
    """name -> float32 ``[layer, head]``."""
    notes: dict[str, str]
    """name -> how it was estimated; empty when exact."""
    normalisers: RowNormalisers
    """The rows' log-sum-exp, kept for later pooled views."""
    sinks: AttentionSinks | None = None
    """Attention each key receives from the rows after it (``_sinks.py``), same rows."""


def summary_rows(
    n_tokens: int, *, on_cpu: bool, seed: int, sample_rows: int | None = None
) -> tuple[torch.Tensor, str | None]:
    """Query rows to average over (all of 1..T-1, or a seeded sample) and the note to show."""
    if sample_rows is None:
        sample_rows = SAMPLE_ROWS if on_cpu and n_tokens > EXACT_ROWS_CPU else 0
    if sample_rows <= 0 or sample_rows >= n_tokens - 1:
        return torch.arange(1, n_tokens), None
    generator = np.random.default_rng(seed)
    rows = np.sort(generator.choice(np.arange(1, n_tokens), size=sample_rows, replace=False))
    note = f"estimated from {sample_rows} of {n_tokens} query rows (seed {seed})"
    return torch.from_numpy(rows.astype(np.int64)), note


def row_summaries(
    queries: tuple[torch.Tensor, ...],
    keys: tuple[torch.Tensor, ...],
    specs: tuple[AttentionSpec, ...],
    devices: tuple[torch.device, ...] | None = None,
    *,
    seed: int = 0,
    sample_rows: int | None = None,
    tile_cells: int = TILE_CELLS,
    on_layer: Callable[[int], None] | None = None,
) -> RowSummaries:
    """Entropy, previous-token and first-token scores of every head, each layer computed on
    ``devices[layer]`` (where the model ran it) when given. ``sample_rows``: None = exact
    unless on the CPU above :data:`EXACT_ROWS_CPU` tokens; 0 = exact; n = n sampled rows.
    ``on_layer(layer)`` is called as each layer is done (explain's progress)."""
    n_layers, (n_heads, n_tokens, _) = len(queries), queries[0].shape
    out = {name: np.zeros((n_layers, n_heads), np.float32) for name in ROW_SUMMARIES}
    normalisers = RowNormalisers()
    if n_tokens < 2:  # one token attends only to itself: nothing to summarise
        return RowSummaries(out, {}, normalisers)
    on_cpu = all(
        (queries[i].device if devices is None else devices[i]).type == "cpu"
        for i in range(n_layers)
    )
    rows, note = summary_rows(n_tokens, on_cpu=on_cpu, seed=seed, sample_rows=sample_rows)
    heads = torch.arange(n_heads)
    received = np.full((n_layers, n_heads, n_tokens), np.nan, np.float32)
    uniform = np.full((n_layers, n_tokens), np.nan, np.float32)
    # the uniform shares depend on the rows and the window only: once per window (and device)
    shared_uniform: dict[tuple[int | None, str], tuple[torch.Tensor, torch.Tensor]] = {}
    buffers = TileBuffers()  # the tiles' memory, reused by every layer
    for layer in range(n_layers):
        device = queries[layer].device if devices is None else devices[layer]
        layer_queries, layer_keys = queries[layer].to(device), keys[layer].to(device)
        spec = specs[layer]
        rows_here = rows.to(device)
        # the sinks read the weights of the summaries' own score tiles (one matmul per tile)
        # when the two passes tile alike and a row chunk's tiles fit in FUSED_CELLS; else
        # they recompute the scores against the known lse (same values either way)
        uniform_key = (spec.sliding_window, str(device))
        sink_rows, key_tile = sink_tiles(n_heads, n_tokens, len(rows), tile_cells)
        fused = (sink_rows, key_tile) == tile_lengths(
            n_heads, int(rows.max()) + 1, tile_cells, len(rows)
        ) and n_heads * min(sink_rows, len(rows)) * n_tokens <= FUSED_CELLS
        accumulator = ReceivedAttention(
            n_heads,
            n_tokens,
            spec,
            rows_here,
            device,
            key_tile=key_tile,
            uniform_and_count=shared_uniform.get(uniform_key),
            queries=layer_queries,
            keys=layer_keys,
        )
        lse, mean_score = row_statistics(
            layer_queries,
            layer_keys,
            spec,
            heads,
            rows,
            mean_score=True,
            tile_cells=tile_cells,
            on_row_chunk=accumulator.add_chunk if fused else None,
            buffers=buffers,
        )
        assert mean_score is not None
        if fused:
            got, base, shared_uniform[uniform_key] = accumulator.result()
        else:
            got, base = received_attention(
                layer_queries, layer_keys, spec, lse, rows_here, tile_cells=tile_cells
            )
        previous = paired_weights(layer_queries, layer_keys, spec, lse, rows_here, rows_here - 1)
        first = paired_weights(
            layer_queries, layer_keys, spec, lse, rows_here, torch.zeros_like(rows_here)
        )
        out["entropy"][layer] = (lse - mean_score).mean(-1).cpu().numpy()
        out["previous_token"][layer] = previous.mean(-1).cpu().numpy()
        out["first_token"][layer] = first.mean(-1).cpu().numpy()
        received[layer], uniform[layer] = got.cpu().numpy(), base.cpu().numpy()
        normalisers.store(layer, (n_heads, n_tokens), heads, rows, lse.to(queries[layer].device))
        if note is None:  # row 0 (left out of the averages) completes the layer's normalisers
            first_row = torch.zeros(1, dtype=torch.int64)
            lse_0, _ = row_statistics(
                layer_queries, layer_keys, spec, heads, first_row, tile_cells=tile_cells
            )
            normalisers.store(
                layer, (n_heads, n_tokens), heads, first_row, lse_0.to(queries[layer].device)
            )
        if on_layer is not None:
            on_layer(layer)
    notes = dict.fromkeys(ROW_SUMMARIES, note) if note else {}
    sinks = AttentionSinks(received=received, uniform=uniform, note=note or "")
    return RowSummaries(out, notes, normalisers, sinks)
