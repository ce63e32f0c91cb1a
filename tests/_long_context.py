"""A long synthetic Explanation with planted attention, for the long-context browser test and
bench (the bundled model reads 128 tokens): seeded random post-RoPE q/k, plus for each planted
``(layer, head, query, key)`` a query and key aligned so that the query puts almost all of its
weight (~0.999) on that key, however far back it is."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from llmasos_widgets.explanation import Explanation
from llmasos_widgets.explanation._lens import LensRows
from llmasos_widgets.tracing import AttentionSpec

PLANTED_SCORE = 8.0
"""Length of the planted query and key along dimension 0 (score = 8 * 8 / sqrt(d))."""


def planted_explanation(
    n_tokens: int,
    n_layers: int,
    n_heads: int,
    *,
    dim: int = 16,
    planted: Sequence[tuple[int, int, int, int]] = (),
    summary_notes: dict[str, str] | None = None,
    seed: int = 0,
    share_layers: bool = False,
) -> Explanation:
    """``n_layers`` x ``n_heads`` heads over tokens ``w0 .. w{T-1}`` (see the module doc).

    ``share_layers``: every layer holds layer 0's q/k tensors (benchmarks at 32 layers: a
    view costs the same in any layer, and memory stays that of one layer)."""
    generator = torch.Generator().manual_seed(seed)
    shape = (n_heads, n_tokens, dim)
    distinct = 1 if share_layers else n_layers
    queries = [torch.randn(shape, generator=generator) * 0.5 for _ in range(distinct)]
    keys = [torch.randn(shape, generator=generator) * 0.5 for _ in range(distinct)]
    for layer, head, query, key in planted:
        if not 0 <= key <= query < n_tokens:
            raise ValueError(f"planted cell ({query}, {key}) must satisfy 0 <= key <= query < T")
        queries[layer][head, query] = 0.0
        queries[layer][head, query, 0] = PLANTED_SCORE
        keys[layer][head, key] = 0.0
        keys[layer][head, key, 0] = PLANTED_SCORE
    queries, keys = queries * (n_layers // distinct), keys * (n_layers // distinct)
    rng = np.random.default_rng(seed)
    summaries = {
        name: rng.random((n_layers, n_heads), dtype=np.float32)
        for name in ("entropy", "previous_token", "first_token")
    }
    return Explanation(
        model_name="planted-long-context",
        tokens=tuple(f"▁w{i}" for i in range(n_tokens)),
        token_ids=np.arange(n_tokens, dtype=np.int64),
        queries=tuple(queries),
        keys=tuple(keys),
        specs=tuple(AttentionSpec(scaling=dim**-0.5) for _ in range(n_layers)),
        head_summaries=summaries,
        top_token_ids=np.zeros((n_tokens, 1), np.int64),
        top_probs=np.zeros((n_tokens, 1), np.float32),
        top_tokens=tuple(("w",) for _ in range(n_tokens)),
        logit_lens=LensRows.of_arrays(
            np.zeros((n_layers + 1, n_tokens), np.int64),
            np.zeros((n_layers + 1, n_tokens), np.float32),
            tuple(tuple("w" for _ in range(n_tokens)) for _ in range(n_layers + 1)),
        ),
        summary_notes=dict(summary_notes or {}),
    )
