"""Attention sinks (issue 20): the received-attention pass against dense patterns, and the
detection rule on hand-built patterns whose sinks are known."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from llmasos_widgets.explanation._row_summaries import row_summaries, summary_rows
from llmasos_widgets.explanation._sinks import (
    SINK_HEAD_SHARE,
    SINK_MIN_QUERIES,
    SINK_THRESHOLD,
    AttentionSinks,
    received_attention,
)
from llmasos_widgets.tracing import AttentionSpec, attention_pattern, row_statistics

SPECS = (
    AttentionSpec(scaling=0.3, n_kv_groups=2),
    AttentionSpec(scaling=0.3, sliding_window=6, n_kv_groups=2),
    AttentionSpec(scaling=0.5, softcap=2.0, n_kv_groups=2),
)


def dense_received(pattern: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The definition, on a whole ``[head, T, T]`` pattern."""
    n_heads, n_tokens, _ = pattern.shape
    received = np.full((n_heads, n_tokens), np.nan)
    uniform = np.full(n_tokens, np.nan)
    visible = pattern[0] > 0  # every key visible from a row has a positive weight
    for j in range(n_tokens):
        after = [i for i in rows if i > j and visible[i, j]]
        if after:
            received[:, j] = pattern[:, after, j].mean(1)
            uniform[j] = np.mean([1.0 / visible[i].sum() for i in after])
    return received, uniform


@pytest.mark.parametrize("spec", SPECS, ids=["plain", "window", "softcap"])
@pytest.mark.parametrize("sampled", [False, True])
def test_received_attention_matches_the_dense_definition(spec: AttentionSpec, sampled: bool):
    generator = torch.Generator().manual_seed(3)
    n_tokens = 23
    queries = torch.randn(4, n_tokens, 8, generator=generator)
    keys = torch.randn(2, n_tokens, 8, generator=generator)
    rows, _ = summary_rows(n_tokens, on_cpu=True, seed=1, sample_rows=9 if sampled else 0)
    lse, _ = row_statistics(queries, keys, spec, torch.arange(4), rows)
    # a tiny tile budget: many row chunks and key tiles
    got, base = received_attention(queries, keys, spec, lse, rows, tile_cells=40)
    want, want_base = dense_received(attention_pattern(queries, keys, spec).numpy(), rows.numpy())
    np.testing.assert_allclose(got.numpy(), want, atol=1e-5)
    np.testing.assert_allclose(base.numpy(), want_base, atol=1e-6)


def sink_layer(n_tokens: int, sink: int, *, strength: float = 12.0) -> tuple[torch.Tensor, ...]:
    """Queries and keys of a head whose queries after ``sink`` all attend to it (a known
    pattern): every query is e0, key ``sink`` is ``strength`` * e0, the others are 0."""
    queries = torch.zeros(2, n_tokens, 4)
    queries[..., 0] = 1.0
    keys = torch.zeros(1, n_tokens, 4)
    keys[0, sink, 0] = strength
    return queries, keys


def test_a_hand_built_sink_is_found():
    """Both heads of both layers put ~all of every later row on position 2: one sink there,
    shared by every head; nothing else is one."""
    n_tokens = 9
    spec = AttentionSpec(scaling=1.0, n_kv_groups=2)
    q, k = sink_layer(n_tokens, sink=2)
    result = row_summaries((q, q), (k, k), (spec, spec), sample_rows=0)
    sinks = result.sinks
    assert sinks is not None
    assert sinks.positions == (2,)
    assert sinks.head_share[2] == 1.0
    assert sinks.mass[2] > 0.99
    # rows 1 and 2 see no key 2 / only themselves: key 2's mass is the mean over rows 3..8
    dense = attention_pattern(q, k, spec).numpy()
    np.testing.assert_allclose(sinks.received[0, :, 2], dense[:, 3:, 2].mean(1), atol=1e-6)


def test_position_zero_received_is_the_first_token_summary():
    """Key 0's received weight is the first_token head summary (same rows, same weights)."""
    generator = torch.Generator().manual_seed(0)
    queries = tuple(torch.randn(4, 17, 8, generator=generator) for _ in SPECS)
    keys = tuple(torch.randn(2, 17, 8, generator=generator) for _ in SPECS)
    result = row_summaries(queries, keys, SPECS, sample_rows=0)
    assert result.sinks is not None
    for layer, spec in enumerate(SPECS):
        if spec.sliding_window is None:  # a window hides key 0 from far rows
            np.testing.assert_allclose(
                result.sinks.received[layer, :, 0],
                result.summaries["first_token"][layer],
                atol=1e-6,
            )


@pytest.mark.parametrize("n_tokens", [3, 5, 12, 40])
def test_uniform_attention_has_no_sink(n_tokens: int):
    """All scores equal: every row spreads evenly, so no key exceeds its uniform share, even
    on a short text where the first token's raw mean weight is above the threshold."""
    spec = AttentionSpec(scaling=1.0, n_kv_groups=1)
    queries = torch.zeros(2, n_tokens, 4)
    keys = torch.ones(2, n_tokens, 4)
    result = row_summaries((queries,), (keys,), (spec,), sample_rows=0)
    assert result.sinks is not None
    assert result.sinks.positions == ()
    assert not result.sinks.sinking.any()
    if n_tokens == 5:  # the raw mean of 1/2, 1/3, 1/4, 1/5 is 0.32: why the excess
        assert result.sinks.received[0, 0, 0] > SINK_THRESHOLD


def test_the_rule_on_known_received_weights():
    """Two layers x two heads: key 0 taken by 3 of 4 heads (a sink), key 1 by exactly half
    (not more than half: no sink), key 3 by all but followed by one query only."""
    received = np.zeros((2, 2, 5), np.float32)
    uniform = np.full((2, 5), 0.1, np.float32)
    received[0, 0, 0] = received[0, 1, 0] = received[1, 0, 0] = 0.9
    received[0, 0, 1] = received[1, 1, 1] = 0.9
    received[:, :, 3] = 0.95
    received[:, :, 4] = np.nan  # no query after the last token
    sinks = AttentionSinks(received=received, uniform=uniform)
    assert (sinks.threshold, sinks.min_share, sinks.min_queries) == (
        SINK_THRESHOLD,
        SINK_HEAD_SHARE,
        SINK_MIN_QUERIES,
    )
    np.testing.assert_allclose(sinks.head_share, [0.75, 0.5, 0.0, 1.0, 0.0])
    assert sinks.positions == (0,)
    assert sinks.with_rule(min_queries=1).positions == (0, 3)
    assert sinks.with_rule(min_share=0.4).positions == (0, 1)
    assert sinks.with_rule(threshold=0.85).positions == ()  # 0.9 - 0.1 = 0.8 is not > 0.85
    assert math.isnan(float(sinks.mass[4]))
    summary = sinks.summary()
    assert summary["positions"] == [0]
    assert summary["head_share"] == [0.75]
    assert summary["mass"] == [pytest.approx(0.675)]
    assert "more than 50% of all heads" in summary["rule"]
    with pytest.raises(ValueError, match="received must be"):
        AttentionSinks(received=received[0], uniform=uniform)
