"""Borrowing the model's entry in transformers' ``AttentionInterface`` to see ``q`` and ``k``.

Every LLaMA-family attention layer in transformers 5 calls
``ALL_ATTENTION_FUNCTIONS.get_interface(config._attn_implementation, eager_attention_forward)``
with post-RoPE queries ``[batch, head, query, d]``, un-repeated keys ``[batch, kv_head, key, d]``
and ``scaling``/``softcap``/``sliding_window`` keyword arguments. For the duration of a trace we
put a :class:`_CaptureAttention` under the model's *own* implementation name -- a new name would
have no mask function and silently drop padding -- which records ``q``/``k`` and then calls the
original function unchanged, so the logits stay bitwise identical.

The registry is process-global, so the wrapper captures only calls whose ``module`` argument is
one of the traced model's attention modules (keyed by identity); any other model running
meanwhile passes straight through. Traces may nest (same or different models): wrappers chain,
and each is unlinked from wherever it sits in the chain when its trace exits.
"""

from __future__ import annotations

import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch

# (attention module, layer index, query, key, call kwargs) -> None
CaptureFn = Callable[[torch.nn.Module, int, torch.Tensor, torch.Tensor, Mapping[str, Any]], None]

# install/uninstall rewrite a shared registry entry and its chain of wrappers
_REGISTRY_LOCK = threading.Lock()
_MISSING = object()


class _CaptureAttention:
    """Stands in for one registry entry; records the traced model's calls, forwards all."""

    def __init__(
        self,
        inner: Callable[..., Any],
        layer_of_module: Mapping[int, int],
        on_capture: CaptureFn,
        previous_local: object,
    ) -> None:
        self.inner = inner
        self.layer_of_module = layer_of_module  # id(attention module) -> layer index
        self.on_capture = on_capture
        self.previous_local = previous_local  # what the registry's local entry held before us

    def __call__(
        self,
        module: torch.nn.Module,
        query: torch.Tensor,
        key: torch.Tensor,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        layer = self.layer_of_module.get(id(module))
        if layer is not None:
            self.on_capture(module, layer, query, key, kwargs)
        return self.inner(module, query, key, *args, **kwargs)


def attention_registry(attention_module: torch.nn.Module) -> Any:
    """The ``AttentionInterface`` instance the module's own modeling file dispatches through."""
    from transformers.modeling_utils import AttentionInterface

    modeling = sys.modules[type(attention_module).__module__]
    registry = getattr(modeling, "ALL_ATTENTION_FUNCTIONS", None)
    if not isinstance(registry, AttentionInterface):
        raise RuntimeError(
            f"{type(attention_module).__name__} does not dispatch through transformers' "
            "AttentionInterface; this transformers version is not supported by trace()"
        )
    return registry


def _original_function(registry: Any, name: str, attention_module: torch.nn.Module) -> Any:
    if name in registry:
        return registry[name]
    if name == "eager":
        # "eager" is not registered: each modeling file passes its own eager function as default
        modeling = sys.modules[type(attention_module).__module__]
        eager = getattr(modeling, "eager_attention_forward", None)
        if callable(eager):
            return eager
    raise RuntimeError(
        f"attention implementation {name!r} of {type(attention_module).__name__} was not found "
        "in transformers' AttentionInterface; trace() cannot observe it"
    )


@contextmanager
def capturing_attention(
    attention_modules: list[torch.nn.Module], on_capture: CaptureFn
) -> Iterator[None]:
    """Route calls of ``attention_modules[l]`` through ``on_capture(module, l, q, k, kwargs)``.

    The registry entry is restored in ``finally``, after an exception as after a normal exit.
    """
    first = attention_modules[0]
    config: Any = first.config
    name: str = config._attn_implementation
    registry = attention_registry(first)
    if any(attention_registry(m) is not registry for m in attention_modules):
        raise RuntimeError("attention layers of one model dispatch through different registries")
    layer_of_module = {id(module): layer for layer, module in enumerate(attention_modules)}
    with _REGISTRY_LOCK:
        wrapper = _CaptureAttention(
            _original_function(registry, name, first),
            layer_of_module,
            on_capture,
            registry._local_mapping.get(name, _MISSING),
        )
        registry[name] = wrapper  # __setitem__ writes the instance-local mapping only
    try:
        yield
    finally:
        with _REGISTRY_LOCK:
            _unlink(registry, name, wrapper)


def _unlink(registry: Any, name: str, wrapper: _CaptureAttention) -> None:
    current = registry._local_mapping.get(name, _MISSING)
    if current is wrapper:
        if wrapper.previous_local is _MISSING:
            del registry[name]
        else:
            registry[name] = wrapper.previous_local
        return
    # a trace entered after ours is still active: splice ours out of the chain below it
    outer = current
    while isinstance(outer, _CaptureAttention):
        if outer.inner is wrapper:
            outer.inner = wrapper.inner
            outer.previous_local = wrapper.previous_local
            return
        outer = outer.inner
    # someone else replaced the entry while we were active: theirs wins; never raise in finally
    warnings.warn(
        f"transformers' AttentionInterface entry {name!r} was replaced during trace() by other "
        "code; it was left as that code set it",
        RuntimeWarning,
        stacklevel=4,
    )
