"""Which token positions an intervention (``steer``, ``ablate_features``) rewrites.

Two ways of counting, told apart by sign:

- **From the start** -- an int ``>= 0``, a list of them, a slice with no negative bound: token
  positions in the whole sequence, read from the ``position_ids`` the model gives its layers.
  They keep counting through a cached ``generate``: a prompt of ``n`` tokens holds positions
  ``0 .. n-1``, the first new token is position ``n`` (it enters the model in the second
  forward, so it changes the second new token onward, never the first).
- **From the end** -- ``"last"``, a negative int, a slice with a negative bound: counted, as in
  Python, from the end of the tokens *of each forward*. In one forward over a text
  (``model(ids)``, ``explain``) that is the text's end. In a cached ``generate`` each forward
  after the first holds only the newest token, so ``"last"`` (``-1``) rewrites the prompt's
  last token and then every new token as it enters: the same as ``slice(n - 1, None)``;
  ``-2`` reaches only the prompt's second-to-last token.

A token is rewritten only in the forward that computes it: cached tokens are never computed
again. ``ExplainableModel.generate`` explains prompt and completion in one more forward after
generating, so there the two countings part: positions from the start mean what they meant
while generating, ``"last"`` only the final token.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

Positions = int | str | slice | Sequence[int] | None
"""``None`` (every position), an int, a list of ints, a slice, or ``"last"``."""

PositionMask = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor | None]
"""``(hidden [batch, token, d], position_ids [batch or 1, token] or None)`` -> a bool mask
``[batch or 1, token]`` of the positions to rewrite, or ``None`` for all of them."""


def position_mask(positions: Positions) -> PositionMask:
    """The mask function for ``positions``, checked now so a bad value fails before any
    forward runs."""
    if positions is None:
        return lambda _hidden, _ids: None
    if isinstance(positions, str):
        if positions != "last":
            raise ValueError(
                f'positions must be an int, a list of ints, a slice or "last", got {positions!r}'
            )
        positions = -1
    if isinstance(positions, slice):
        return _slice_mask(positions)
    chosen = [positions] if isinstance(positions, int) else positions
    if isinstance(chosen, (bytes, bytearray)) or not isinstance(chosen, Sequence):
        raise TypeError(
            f'positions must be an int, a list of ints, a slice or "last", got {positions!r}'
        )
    if not chosen:
        raise ValueError("positions is empty: name at least one position, or None for all")
    for position in chosen:
        if isinstance(position, bool) or not isinstance(position, int):
            raise TypeError(f"positions must be ints, got {position!r}")
    from_start = sorted({p for p in chosen if p >= 0})
    from_end = sorted({p for p in chosen if p < 0})

    def mask(hidden: torch.Tensor, position_ids: torch.Tensor | None) -> torch.Tensor:
        length = hidden.shape[-2]
        columns = torch.zeros(1, length, dtype=torch.bool, device=hidden.device)
        for p in from_end:
            if p >= -length:
                columns[0, p] = True
        if not from_start:
            return columns
        ids = _position_ids(position_ids, hidden.device)
        wanted = torch.tensor(from_start, device=ids.device)
        return columns | torch.isin(ids, wanted)

    return mask


def _slice_mask(positions: slice) -> PositionMask:
    bounds = (positions.start, positions.stop, positions.step)
    for bound in bounds:
        if bound is not None and (isinstance(bound, bool) or not isinstance(bound, int)):
            raise TypeError(f"positions slice bounds must be ints or None, got {positions!r}")
    if positions.step is not None and positions.step < 1:
        raise ValueError(f"positions slice step must be positive, got {positions!r}")
    step = positions.step or 1
    if any(b is not None and b < 0 for b in bounds[:2]):

        def from_end(hidden: torch.Tensor, _ids: torch.Tensor | None) -> torch.Tensor:
            length = hidden.shape[-2]
            columns = torch.zeros(1, length, dtype=torch.bool, device=hidden.device)
            columns[0, positions] = True
            return columns

        return from_end
    start = positions.start or 0

    def from_start(hidden: torch.Tensor, position_ids: torch.Tensor | None) -> torch.Tensor:
        ids = _position_ids(position_ids, hidden.device)
        inside = (ids >= start) & ((ids - start) % step == 0)
        return inside if positions.stop is None else inside & (ids < positions.stop)

    return from_start


def _position_ids(position_ids: torch.Tensor | None, device: torch.device) -> torch.Tensor:
    if position_ids is None:
        raise ValueError(
            "this model gives its layers no position_ids, so positions counted from the start "
            'cannot be found; use "last" or negative positions'
        )
    return position_ids.to(device)
