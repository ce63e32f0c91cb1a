"""Per-head summaries of attention patterns: small ``[layer, head]`` maps a person can scan.

Each function takes one layer's patterns ``[head, query, key]`` (rows sum to 1, causal) and
returns ``[head]``. Row 0 is left out of every average: the first token can only attend to
itself, so it says nothing about a head.
"""

from __future__ import annotations

import torch

SUMMARY_NAMES = ("entropy", "previous_token", "first_token", "induction")


def entropy(patterns: torch.Tensor) -> torch.Tensor:
    """Mean attention entropy in nats over query rows 1..T-1 (low = focused head)."""
    rows = patterns[:, 1:, :].float()
    logs = torch.where(rows > 0, rows.clamp_min(1e-30).log(), torch.zeros_like(rows))
    return -(rows * logs).sum(-1).mean(-1)


def previous_token(patterns: torch.Tensor) -> torch.Tensor:
    """Mean attention from token t to token t-1."""
    return patterns.diagonal(offset=-1, dim1=1, dim2=2).float().mean(-1)


def first_token(patterns: torch.Tensor) -> torch.Tensor:
    """Mean attention from tokens 1..T-1 to token 0 (the "attention sink")."""
    return patterns[:, 1:, 0].float().mean(-1)


def induction(patterns: torch.Tensor, period: int) -> torch.Tensor:
    """Mean attention from each token of the second copy of a repeated sequence to the token
    that followed its earlier occurrence, ``t - period + 1`` (copy-from-context heads score high).

    ``patterns`` must come from a sequence whose last ``2 * period`` tokens are one random
    sequence of length ``period`` written twice.
    """
    length = patterns.shape[-1]
    if length < 2 * period or period < 2:
        raise ValueError(f"induction needs two copies of a period >= 2; got T={length}, {period=}")
    queries = torch.arange(length - period, length, device=patterns.device)
    return patterns[:, queries, queries - period + 1].float().mean(-1)
