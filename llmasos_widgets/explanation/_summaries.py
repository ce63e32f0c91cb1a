"""Per-head summaries of attention patterns: small ``[layer, head]`` maps a person can scan.

``explain`` computes entropy, previous-token and first-token attention row by row from q/k
(``_row_summaries.py``; their pattern-based definitions, the tests' oracles, are in
``tests/_summary_oracles.py``) and the induction score here, on one layer's patterns
``[head, query, key]`` (rows sum to 1, causal) -> ``[head]``.
"""

from __future__ import annotations

import torch

SUMMARY_NAMES = ("entropy", "previous_token", "first_token", "induction")


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
