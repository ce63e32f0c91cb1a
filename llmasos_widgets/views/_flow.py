"""The hover "flow": how much each head moves attention between brushed tokens and the
others, computed block by block from q/k at any length (the one Python implementation; the
browser's ``attentionFlow`` in ``js/src/lib/pattern.ts`` applies the same definition to the
patterns it holds, checked against this one by ``js/test/pattern.test.ts``)."""

from __future__ import annotations

import numpy as np
import torch

from llmasos_widgets.explanation import Explanation
from llmasos_widgets.tracing import TILE_CELLS, cell_weights, paired_weights


def flow_values(
    explanation: Explanation,
    focus: list[int] | tuple[int, ...],
    others: list[int] | tuple[int, ...],
    direction: str,
    *,
    tile_cells: int = TILE_CELLS,
) -> np.ndarray:
    """``float32 [layer, head]`` brushed attention flow, blockwise at any T.

    With ``A`` a head's exact pattern:
      from: mean over queries q in focus of sum over keys k in others of A[q, k]
      to:   mean over queries q in others of sum over keys k in focus of A[q, k]
    Empty ``others``: every key but the first and q itself ("from"); every non-focus query
    at or after the first focus token ("to"). Costs the normalisers of the rows read (cached
    on the explanation), then ``rows x len(focus or others)`` scores per head.
    """
    if direction not in ("from", "to"):
        raise ValueError(f"direction must be 'from' or 'to', got {direction!r}")
    n_tokens, n_layers, n_heads = explanation.n_tokens, explanation.n_layers, explanation.n_heads
    for token in (*focus, *others):
        if not 0 <= token < n_tokens:
            raise ValueError(f"token {token} is out of range (valid: 0..{n_tokens - 1})")
    values = np.full((n_layers, n_heads), np.nan, dtype=np.float32)
    if not focus:
        return values
    if direction == "from":
        rows, columns = list(focus), list(others)
    else:
        focus_set = set(focus)
        rows = list(others) or [q for q in range(min(focus), n_tokens) if q not in focus_set]
        columns = list(focus)
        if not rows:
            return values
    all_heads = torch.arange(n_heads)
    chunk = max(1, tile_cells // (n_heads * max(1, len(columns), 2)))
    for layer in range(n_layers):
        queries, keys, spec = (
            explanation.queries[layer],
            explanation.keys[layer],
            explanation.specs[layer],
        )
        total = torch.zeros(n_heads, dtype=torch.float64)
        for start in range(0, len(rows), chunk):
            query_pos = torch.tensor(rows[start : start + chunk], dtype=torch.int64)
            lse = explanation.row_normalisers.get(
                explanation, layer, all_heads, query_pos, tile_cells=tile_cells
            )
            if columns:
                weights = cell_weights(queries, keys, spec, lse, query_pos, torch.tensor(columns))
                total += weights.double().sum(dim=(1, 2)).cpu()
                continue
            # "from" with no others: the row's weight (1) less the first token and the query
            # itself; row 0 attends only to itself and gives 0
            first = paired_weights(queries, keys, spec, lse, query_pos, torch.zeros_like(query_pos))
            own = paired_weights(queries, keys, spec, lse, query_pos, query_pos)
            rest = 1.0 - first.double() - own.double()
            total += torch.where(query_pos > 0, rest.cpu(), torch.zeros(())).sum(1)
        values[layer] = (total / len(rows)).numpy()
    return values
