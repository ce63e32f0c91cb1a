"""Head summaries on patterns whose answers are known by construction."""

from __future__ import annotations

import math

import pytest
import torch

from llmasos_widgets.explanation import _summaries
from tests import _summary_oracles as oracles


def _previous_token_pattern(n: int) -> torch.Tensor:
    pattern = torch.zeros(1, n, n)
    pattern[0, 0, 0] = 1.0
    pattern[0, torch.arange(1, n), torch.arange(n - 1)] = 1.0
    return pattern


def _uniform_causal(n: int) -> torch.Tensor:
    pattern = torch.tril(torch.ones(n, n))
    return (pattern / pattern.sum(-1, keepdim=True))[None]


def test_previous_token_head_scores_one_and_has_zero_entropy():
    pattern = _previous_token_pattern(8)
    assert oracles.previous_token(pattern).item() == 1.0
    assert oracles.first_token(pattern).item() == pytest.approx(1 / 7)
    assert oracles.entropy(pattern).item() == 0.0


def test_uniform_head_has_log_t_entropy():
    n = 6
    expected = sum(math.log(t + 1) for t in range(1, n)) / (n - 1)
    assert oracles.entropy(_uniform_causal(n)).item() == pytest.approx(expected, rel=1e-6)
    assert oracles.first_token(_uniform_causal(n)).item() == pytest.approx(
        sum(1 / (t + 1) for t in range(1, n)) / (n - 1), rel=1e-6
    )


def test_induction_head_scores_one_on_a_perfect_copy_pattern():
    period, prefix = 5, 1
    n = prefix + 2 * period
    pattern = torch.zeros(2, n, n)
    pattern[:, :, 0] = 1.0  # head 1: attends only to the first token
    for t in range(prefix + period, n):  # head 0: attends to the token after the earlier copy
        pattern[0, t] = 0
        pattern[0, t, t - period + 1] = 1.0
    scores = _summaries.induction(pattern, period)
    assert scores.tolist() == [1.0, 0.0]


def test_induction_needs_two_copies():
    with pytest.raises(ValueError, match="two copies"):
        _summaries.induction(torch.ones(1, 5, 5), period=3)
