"""attention_pattern: hand-computed answers, masking rules and a row-sum property."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from llmasos_widgets.tracing import AttentionSpec, attention_pattern

ONE_HEAD = AttentionSpec(scaling=1.0)


def _qk(*rows: float) -> torch.Tensor:
    """One head, d = 1: ``[1, len(rows), 1]``."""
    return torch.tensor(rows, dtype=torch.float32).reshape(1, -1, 1)


def test_hand_computed_causal_softmax() -> None:
    pattern = attention_pattern(_qk(1.0, 2.0), _qk(0.0, 1.0), ONE_HEAD)
    # row 0 sees only key 0; row 1 scores [0, 2]
    expected = torch.tensor([[[1.0, 0.0], [1 / (1 + math.e**2), math.e**2 / (1 + math.e**2)]]])
    torch.testing.assert_close(pattern, expected)


def test_scaling_and_softcap_by_hand() -> None:
    q, k = _qk(1.0, 2.0), _qk(0.0, 1.0)
    scaled = attention_pattern(q, k, AttentionSpec(scaling=0.5))
    torch.testing.assert_close(scaled[0, 1, 1], torch.tensor(math.e / (1 + math.e)))
    capped = attention_pattern(q, k, AttentionSpec(scaling=1.0, softcap=1.0))
    top = math.exp(math.tanh(2.0))
    torch.testing.assert_close(capped[0, 1, 1], torch.tensor(top / (1 + top)))


def test_sliding_window_keeps_the_last_w_keys() -> None:
    q = k = torch.zeros(1, 5, 1)  # equal scores: uniform over the visible keys
    pattern = attention_pattern(q, k, AttentionSpec(scaling=1.0, sliding_window=2))
    expected = torch.tensor(
        [
            [1, 0, 0, 0, 0],
            [0.5, 0.5, 0, 0, 0],
            [0, 0.5, 0.5, 0, 0],
            [0, 0, 0.5, 0.5, 0],
            [0, 0, 0, 0.5, 0.5],
        ]
    )
    torch.testing.assert_close(pattern[0], expected)
    assert torch.equal(
        attention_pattern(q, k, AttentionSpec(scaling=1.0, sliding_window=1))[0], torch.eye(5)
    )


def test_query_head_h_reads_kv_head_h_over_groups() -> None:
    generator = torch.Generator().manual_seed(0)
    q = torch.randn(4, 6, 8, generator=generator)
    k = torch.randn(2, 6, 8, generator=generator)
    grouped = attention_pattern(q, k, AttentionSpec(scaling=0.3, n_kv_groups=2))
    for head in range(4):
        alone = attention_pattern(
            q[head : head + 1], k[head // 2 : head // 2 + 1], AttentionSpec(scaling=0.3)
        )
        torch.testing.assert_close(grouped[head], alone[0], atol=1e-6, rtol=0)
    # heads 0 and 2 read different kv heads, so they must differ
    assert not torch.allclose(grouped[0], grouped[2])


def test_left_padding_zeroes_padded_rows_and_columns() -> None:
    generator = torch.Generator().manual_seed(1)
    q, k = torch.randn(2, 5, 4, generator=generator), torch.randn(2, 5, 4, generator=generator)
    mask = torch.tensor([False, False, True, True, True])
    pattern = attention_pattern(q, k, AttentionSpec(scaling=0.5), key_padding_mask=mask)
    assert torch.all(pattern[:, :2] == 0)
    assert torch.all(pattern[:, :, :2] == 0)
    # the real tokens see exactly what an unpadded run of them sees
    unpadded = attention_pattern(q[:, 2:], k[:, 2:], AttentionSpec(scaling=0.5))
    torch.testing.assert_close(pattern[:, 2:, 2:], unpadded)
    integer_mask = attention_pattern(q, k, AttentionSpec(scaling=0.5), key_padding_mask=mask.long())
    assert torch.equal(integer_mask, pattern)


def test_decode_step_queries_align_to_the_end() -> None:
    generator = torch.Generator().manual_seed(2)
    q, k = torch.randn(2, 7, 4, generator=generator), torch.randn(2, 7, 4, generator=generator)
    spec = AttentionSpec(scaling=0.5, sliding_window=3)
    full = attention_pattern(q, k, spec)
    torch.testing.assert_close(attention_pattern(q[:, -2:], k, spec), full[:, -2:])


def test_bf16_captures_are_computed_in_float32() -> None:
    generator = torch.Generator().manual_seed(3)
    q, k = torch.randn(2, 6, 8, generator=generator), torch.randn(2, 6, 8, generator=generator)
    q16, k16 = q.bfloat16(), k.bfloat16()
    pattern = attention_pattern(q16, k16, AttentionSpec(scaling=0.35))
    assert pattern.dtype == torch.float32
    assert torch.equal(
        pattern, attention_pattern(q16.float(), k16.float(), AttentionSpec(scaling=0.35))
    )


@pytest.mark.parametrize(
    ("q_shape", "k_shape", "spec", "message"),
    [
        ((1, 4, 5, 8), (1, 2, 5, 8), AttentionSpec(scaling=1.0), "index one batch element"),
        ((4, 5, 8), (2, 5, 4), AttentionSpec(scaling=1.0, n_kv_groups=2), "head dims"),
        ((4, 5, 8), (2, 5, 8), AttentionSpec(scaling=1.0), "n_kv_groups=1"),
        ((2, 6, 8), (2, 5, 8), AttentionSpec(scaling=1.0), "more queries"),
    ],
)
def test_shape_errors_say_what_is_wrong(
    q_shape: tuple[int, ...], k_shape: tuple[int, ...], spec: AttentionSpec, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        attention_pattern(torch.zeros(q_shape), torch.zeros(k_shape), spec)


def test_bad_padding_mask_and_spec_rejected() -> None:
    q = torch.zeros(1, 3, 2)
    with pytest.raises(ValueError, match="one per key"):
        attention_pattern(q, q, ONE_HEAD, key_padding_mask=torch.ones(4, dtype=torch.bool))
    with pytest.raises(ValueError, match="0/1"):
        attention_pattern(q, q, ONE_HEAD, key_padding_mask=torch.tensor([0.5, 1.0, 1.0]))
    for bad in (
        {"scaling": 0.0},
        {"scaling": 1.0, "softcap": -1.0},
        {"scaling": 1.0, "sliding_window": 0},
        {"scaling": 1.0, "n_kv_groups": 0},
    ):
        with pytest.raises(ValueError):
            AttentionSpec(**bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        AttentionSpec(1.0)  # type: ignore[misc]  # keyword-only


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    n_kv_heads=st.integers(1, 3),
    n_groups=st.integers(1, 3),
    n_keys=st.integers(1, 9),
    n_pad=st.integers(0, 4),
    window=st.one_of(st.none(), st.integers(1, 5)),
    softcap=st.one_of(st.none(), st.floats(0.5, 30.0)),
    scale=st.floats(0.01, 20.0),
    seed=st.integers(0, 2**16),
)
def test_valid_rows_sum_to_one_and_masked_entries_are_zero(
    n_kv_heads: int,
    n_groups: int,
    n_keys: int,
    n_pad: int,
    window: int | None,
    softcap: float | None,
    scale: float,
    seed: int,
) -> None:
    generator = torch.Generator().manual_seed(seed)
    n_heads = n_kv_heads * n_groups
    q = torch.randn(n_heads, n_keys, 4, generator=generator) * scale
    k = torch.randn(n_kv_heads, n_keys, 4, generator=generator)
    mask = torch.arange(n_keys) >= min(n_pad, n_keys - 1)  # left padding, >= 1 real token
    spec = AttentionSpec(scaling=0.5, softcap=softcap, sliding_window=window, n_kv_groups=n_groups)
    pattern = attention_pattern(q, k, spec, key_padding_mask=mask)

    assert pattern.shape == (n_heads, n_keys, n_keys)
    assert torch.all(torch.isfinite(pattern)) and torch.all(pattern >= 0)
    torch.testing.assert_close(pattern[:, mask].sum(-1), torch.ones(n_heads, int(mask.sum())))
    assert torch.all(pattern[:, ~mask] == 0)
    assert torch.all(pattern[:, :, ~mask] == 0)
    assert torch.all(pattern.triu(diagonal=1) == 0), "no query attends to a later key"
    if window is not None:
        assert torch.all(pattern.tril(diagonal=-window) == 0), "nothing beyond the window"
