"""Head summaries by their definitions on whole patterns: the oracles that
``explanation/_row_summaries.py`` (which computes them row by row from q/k) is tested against.

Each function takes one layer's patterns ``[head, query, key]`` (rows sum to 1, causal) and
returns ``[head]``. Row 0 is left out of every average: the first token can only attend to
itself, so it says nothing about a head.
"""

from __future__ import annotations

import torch


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
