"""The single place where hooks are borrowed from a user's model and given back.

Hooks are global state on someone else's model, so every registration goes through
:class:`borrowed_hooks`, which owns the ``RemovableHandle``s and removes all of them in
``finally`` -- after a normal exit and after an exception alike.

A model with hooks on it computes for the one caller that put them there, so borrowing is
serialised across threads: JupyterLab delivers widget messages on a kernel subshell thread,
and a click that traces the model while a cell traces it would otherwise fire each other's
hooks (seen as an attribution-graph edge failing with an ``IndexError`` mid-forward).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch.utils.hooks import RemovableHandle


class HookSet:
    """Registers forward (pre-)hooks and remembers their handles for removal."""

    def __init__(self) -> None:
        self._handles: list[RemovableHandle] = []

    def forward(self, module: torch.nn.Module, fn: Callable[..., Any], **kwargs: Any) -> None:
        """``module.register_forward_hook(fn, **kwargs)``, removed when the context exits."""
        self._handles.append(module.register_forward_hook(fn, **kwargs))

    def forward_pre(self, module: torch.nn.Module, fn: Callable[..., Any], **kwargs: Any) -> None:
        """``module.register_forward_pre_hook(fn, **kwargs)``, removed when the context exits."""
        self._handles.append(module.register_forward_pre_hook(fn, **kwargs))

    def remove_all(self) -> None:
        while self._handles:
            self._handles.pop().remove()


# Re-entrant: a traced computation may borrow again inside its own block (same thread).
_BORROWING = threading.RLock()


@contextmanager
def borrowed_hooks() -> Iterator[HookSet]:
    """Yield a :class:`HookSet`; every hook registered on it is removed on exit. One thread at
    a time holds borrowed hooks; another waits until they are given back."""
    with _BORROWING:
        hooks = HookSet()
        try:
            yield hooks
        finally:
            hooks.remove_all()


def count_hooks(model: torch.nn.Module) -> int:
    """Number of forward/backward hooks on ``model`` and its submodules (for tests)."""
    total = 0
    for module in model.modules():
        for name in (
            "_forward_hooks",
            "_forward_pre_hooks",
            "_backward_hooks",
            "_backward_pre_hooks",
        ):
            total += len(getattr(module, name, {}))
    return total
