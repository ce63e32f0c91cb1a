"""``PooledPattern``: one head's attention over a region, pooled into blocks, and the
blocks' edges."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

REDUCTIONS = ("max", "sum")


@dataclass(frozen=True, kw_only=True, eq=False)
class PooledPattern:
    """One head's attention over a query x key region, pooled into blocks.

    Block ``[r, c]`` covers queries ``row_edges[r]:row_edges[r + 1]`` and keys
    ``col_edges[c]:col_edges[c + 1]``. ``values`` is the largest weight in the block
    (``reduce="max"``, at cell ``(argmax_query, argmax_key)``) or the block's total weight
    (``reduce="sum"``: each full row of blocks then sums to the block height). Blocks with no
    visible cell (above the causal diagonal, outside a sliding window) hold 0 and argmax -1.
    """

    values: np.ndarray
    """float32 ``[rows_out, cols_out]``."""
    row_edges: np.ndarray
    """int64 ``[rows_out + 1]`` query positions of the block edges."""
    col_edges: np.ndarray
    """int64 ``[cols_out + 1]`` key positions of the block edges."""
    reduce: str
    argmax_query: np.ndarray
    """int64 ``[rows_out, cols_out]`` query position of each block's largest weight (-1 when
    the block has no visible cell; -1 everywhere for ``reduce="sum"``)."""
    argmax_key: np.ndarray
    """int64 ``[rows_out, cols_out]`` key position of each block's largest weight."""
    exact: bool
    """True when every block is a single cell (values are then the exact weights)."""

    def __post_init__(self) -> None:
        if self.reduce not in REDUCTIONS:
            raise ValueError(f"reduce must be one of {REDUCTIONS}, got {self.reduce!r}")
        shape = (len(self.row_edges) - 1, len(self.col_edges) - 1)
        for name in ("values", "argmax_query", "argmax_key"):
            array = getattr(self, name)
            if array.shape != shape:
                raise ValueError(f"{name} must have shape {shape}; got {tuple(array.shape)}")
        for name in ("row_edges", "col_edges"):
            edges = getattr(self, name)
            if len(edges) < 2 or np.any(np.diff(edges) <= 0):
                raise ValueError(f"{name} must be at least 2 strictly increasing positions")


def block_edges(start: int, stop: int, most: int) -> np.ndarray:
    """At most ``most`` equal blocks of ``ceil((stop - start) / most)`` positions (the last
    may be shorter), so every tile pools with one reshape."""
    size = -(-(stop - start) // most)
    return np.append(np.arange(start, stop, size, dtype=np.int64), np.int64(stop))


def check_region(region: tuple[int, int] | None, n_tokens: int, name: str) -> tuple[int, int]:
    if region is None:
        return 0, n_tokens
    if len(region) != 2:
        raise ValueError(f"{name} must be a (start, stop) pair, got {region!r}")
    start, stop = int(region[0]), int(region[1])
    if not 0 <= start < stop <= n_tokens:
        raise ValueError(
            f"{name}={region!r} must satisfy 0 <= start < stop <= {n_tokens} (the token count)"
        )
    return start, stop
