"""Head summaries row by row (issue 11): exact against the pattern-based definitions, and the
seeded row-sample estimate within its statistical error of the exact value."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llmasos_widgets.explanation._row_summaries import (
    EXACT_ROWS_CPU,
    SAMPLE_ROWS,
    row_summaries,
    summary_rows,
)
from llmasos_widgets.tracing import AttentionSpec, attention_pattern
from tests import _summary_oracles as oracles

SPECS = (
    AttentionSpec(scaling=0.3, n_kv_groups=2),
    AttentionSpec(scaling=0.3, sliding_window=6, n_kv_groups=2),
    AttentionSpec(scaling=0.5, softcap=2.0, n_kv_groups=2),
)


def layers(n_tokens: int, seed: int):
    generator = torch.Generator().manual_seed(seed)
    queries = [torch.randn(4, n_tokens, 8, generator=generator) for _ in SPECS]
    keys = [torch.randn(2, n_tokens, 8, generator=generator) for _ in SPECS]
    return tuple(queries), tuple(keys)


def exact_by_pattern(queries, keys, name: str) -> np.ndarray:
    fn = {
        "entropy": oracles.entropy,
        "previous_token": oracles.previous_token,
        "first_token": oracles.first_token,
    }[name]
    return np.stack(
        [
            fn(attention_pattern(q, k, spec)).numpy()
            for q, k, spec in zip(queries, keys, SPECS, strict=True)
        ]
    )


def test_row_summaries_equal_the_pattern_definitions() -> None:
    queries, keys = layers(40, seed=0)
    result = row_summaries(queries, keys, SPECS, sample_rows=0)
    assert result.notes == {}
    for name, values in result.summaries.items():
        np.testing.assert_allclose(values, exact_by_pattern(queries, keys, name), atol=2e-6)


def test_sampled_summaries_are_within_their_standard_error_and_say_so() -> None:
    n_tokens, n_sampled = 1024, 256
    queries, keys = layers(n_tokens, seed=1)
    sampled = row_summaries(queries, keys, SPECS, sample_rows=n_sampled, seed=3)
    note = f"estimated from {n_sampled} of {n_tokens} query rows (seed 3)"
    assert sampled.notes == dict.fromkeys(("entropy", "previous_token", "first_token"), note)
    exact = row_summaries(queries, keys, SPECS, sample_rows=0).summaries
    for name in ("entropy", "previous_token", "first_token"):
        # per-row values of every head, to bound the sample mean's error by 4 standard errors
        per_row = []
        for q, k, spec in zip(queries, keys, SPECS, strict=True):
            pattern = attention_pattern(q, k, spec)[:, 1:]
            if name == "entropy":
                rows = -(pattern * pattern.clamp_min(1e-30).log()).sum(-1)
            elif name == "previous_token":
                rows = attention_pattern(q, k, spec).diagonal(offset=-1, dim1=1, dim2=2)
            else:
                rows = pattern[:, :, 0]
            per_row.append(rows.std(-1).numpy())
        bound = 4 * np.stack(per_row) / np.sqrt(n_sampled)
        error = np.abs(sampled.summaries[name] - exact[name])
        assert np.all(error <= bound), (name, float((error / bound).max()))
        assert np.any(error > 0)  # it is an estimate, not the exact value
    again = row_summaries(queries, keys, SPECS, sample_rows=n_sampled, seed=3)
    for name, values in again.summaries.items():  # the seed fixes the rows
        np.testing.assert_array_equal(values, sampled.summaries[name])


@pytest.mark.parametrize(
    ("n_tokens", "on_cpu", "sampled"),
    [(EXACT_ROWS_CPU, True, False), (EXACT_ROWS_CPU + 1, True, True), (40000, False, False)],
)
def test_summaries_are_sampled_only_on_the_cpu_above_the_threshold(n_tokens, on_cpu, sampled):
    rows, note = summary_rows(n_tokens, on_cpu=on_cpu, seed=0)
    if sampled:
        assert len(rows) == SAMPLE_ROWS and len(set(rows.tolist())) == SAMPLE_ROWS
        assert int(rows.min()) >= 1 and int(rows.max()) < n_tokens
        assert note == f"estimated from {SAMPLE_ROWS} of {n_tokens} query rows (seed 0)"
    else:
        assert rows.tolist() == list(range(1, n_tokens)) and note is None
