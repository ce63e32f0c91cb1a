"""The single place where hooks are borrowed from a user's model and given back.

Hooks are global state on someone else's model, so every registration goes through
:class:`borrowed_hooks`, which owns the ``RemovableHandle``s and removes all of them in
``finally`` -- after a normal exit and after an exception alike.
"""

from __future__ import annotations

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


@contextmanager
def borrowed_hooks() -> Iterator[HookSet]:
    """Yield a :class:`HookSet`; every hook registered on it is removed on exit."""
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
