"""Shared plumbing of the interventions: inputs, heads, forward passes on token batches.

Every forward here runs under ``torch.no_grad()`` and :func:`eval_mode` (dropout off, each
module's flag restored afterwards); hooks are registered by the caller on a
:func:`~llmasos_widgets._hooks.borrowed_hooks` set through the capture layer
(``tracing/_anatomy.py``), so nothing outlives the call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from llmasos_widgets.tracing import Anatomy

Head = tuple[int, int]


def as_texts(texts: str | Sequence[str], what: str = "texts") -> list[str]:
    """``texts`` as a non-empty list of strings (one string is one text)."""
    if isinstance(texts, str):
        return [texts]
    if not isinstance(texts, Sequence) or isinstance(texts, bytes):
        raise TypeError(f"{what} must be a str or a list of str, got {type(texts).__name__}")
    out = list(texts)
    if not out:
        raise ValueError(f"{what} is empty: pass at least one text")
    bad = [t for t in out if not isinstance(t, str)]
    if bad:
        raise TypeError(f"{what} must hold str, got {type(bad[0]).__name__}")
    return out


def check_heads(parts: Anatomy, heads: Sequence[Head], *, allow_empty: bool = False) -> list[Head]:
    """``heads`` as sorted unique ``(layer, head)`` pairs, each in range; errors name the bad
    entry and the model's limits."""
    if isinstance(heads, tuple) and len(heads) == 2 and all(isinstance(x, int) for x in heads):
        raise TypeError(f"heads must be a list of (layer, head) pairs; did you mean [{heads}]?")
    out: list[Head] = []
    n_layers, n_heads = parts.n_layers, parts.n_heads()
    for entry in heads:
        if (
            not isinstance(entry, Sequence)
            or len(entry) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in entry)
        ):
            raise TypeError(f"each head must be a (layer, head) pair of ints, got {entry!r}")
        layer, head = int(entry[0]), int(entry[1])
        if not 0 <= layer < n_layers or not 0 <= head < n_heads:
            raise ValueError(
                f"head {(layer, head)} does not exist: this model has layers 0..{n_layers - 1} "
                f"and heads 0..{n_heads - 1} per layer"
            )
        if (layer, head) in out:
            raise ValueError(f"head {(layer, head)} is listed twice")
        out.append((layer, head))
    if not out and not allow_empty:
        raise ValueError("heads is empty: name at least one (layer, head) to ablate")
    return sorted(out)


def group_by_length(ids: Sequence[torch.Tensor]) -> dict[int, list[int]]:
    """Indices of ``ids`` (each ``[1, token]``) grouped by token length, so each group runs as
    one batch without padding (padding would shift nothing here, but costs a mask per row)."""
    groups: dict[int, list[int]] = {}
    for index, row in enumerate(ids):
        groups.setdefault(int(row.shape[-1]), []).append(index)
    return groups


def chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    if size < 1:
        raise ValueError(f"batch_size must be at least 1, got {size}")
    return [items[start : start + size] for start in range(0, len(items), size)]


def forward_logits(hf_model: Any, input_ids: torch.Tensor, *, keep: int) -> torch.Tensor:
    """Logits ``[batch, keep, vocab]`` of the last ``keep`` positions (no cache, no grad)."""
    out = hf_model(input_ids=input_ids, use_cache=False, logits_to_keep=keep)
    return out.logits[:, -keep:]
