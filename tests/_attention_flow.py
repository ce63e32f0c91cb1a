"""The hover flow's definition on one head's exact pattern: the oracle that
``llmasos_widgets.views.flow_values`` (blockwise, from q/k) is tested against."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def attention_flow(
    pattern: np.ndarray, focus: Sequence[int], others: Sequence[int], direction: str
) -> float:
    """How much one head moves attention between ``focus`` tokens and ``others``:
      from: mean over queries q in focus of sum over keys k in others of A[q, k]
      to:   mean over queries q in others of sum over keys k in focus of A[q, k]
    Empty ``others`` means every token except the first (the usual attention sink) and q
    itself ("from"), or every non-focus query at or after the first focus token ("to").
    """
    n = pattern.shape[0]
    if not focus:
        return float("nan")
    if direction == "from":
        rows = pattern[list(focus)].astype(np.float64)
        if others:
            return float(rows[:, list(others)].sum(axis=1).mean())
        totals = rows[:, 1:].sum(axis=1) - np.where(
            np.asarray(focus) > 0, rows[np.arange(len(focus)), list(focus)], 0.0
        )
        return float(totals.mean())
    if direction != "to":
        raise ValueError(f"direction must be 'from' or 'to', got {direction!r}")
    focus_set = set(focus)
    queries = list(others) or [q for q in range(min(focus), n) if q not in focus_set]
    if not queries:
        return float("nan")
    return float(pattern[np.ix_(queries, list(focus))].astype(np.float64).sum(axis=1).mean())
