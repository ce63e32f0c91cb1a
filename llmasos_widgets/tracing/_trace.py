"""``trace(model)``: capture post-RoPE q/k and the residual stream while the fast kernel runs.

Patterns are O(layer·head·T²); queries and keys are O(layer·head·T·d). We keep the latter and
rebuild a head's pattern on demand with :func:`attention_pattern`.

Several forward passes inside one trace (``generate``, a saliency loop) are each recorded as
one :class:`ForwardCapture` in ``Trace.forwards``, in call order; ``Trace.queries`` and friends
read the *first* one (the prompt, for ``generate``). Captures are detached clones on the
device of their layer, so the model's own forward stays differentiable and caches that update
in place (``StaticCache``) cannot change them afterwards.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

import torch

from llmasos_widgets._hooks import borrowed_hooks
from llmasos_widgets.tracing._interface import capturing_attention
from llmasos_widgets.tracing._patterns import AttentionSpec, attention_pattern
from llmasos_widgets.tracing._support import UnsupportedArchitectureError, check_supported


class ForwardCapture:
    """What one forward pass of the traced model left behind.

    Attributes:
        attention_mask: ``bool [batch, key]`` padding mask the model was called with
            (``True`` = real token), or ``None`` when it got none (no padding).
        custom_mask: ``True`` when the model got a mask other than 2-D padding (e.g. 4-D);
            patterns then need an explicit ``attention_mask=`` to be rebuilt.
    """

    def __init__(self, n_layers: int, attention_mask: object) -> None:
        self.n_layers = n_layers
        self.custom_mask = attention_mask is not None and not (
            isinstance(attention_mask, torch.Tensor) and attention_mask.dim() == 2
        )
        self.attention_mask: torch.Tensor | None = (
            attention_mask.detach().to(torch.bool, copy=True)
            if isinstance(attention_mask, torch.Tensor) and attention_mask.dim() == 2
            else None
        )
        self.queries_by_layer: dict[int, torch.Tensor] = {}
        self.keys_by_layer: dict[int, torch.Tensor] = {}
        self.spec_by_layer: dict[int, AttentionSpec] = {}
        self.residual_by_index: dict[int, torch.Tensor] = {}

    @property
    def queries(self) -> tuple[torch.Tensor, ...]:
        """Per layer, ``[batch, head, query, d]`` post-RoPE queries."""
        return _complete(self.queries_by_layer, self.n_layers, "queries", "qk")

    @property
    def keys(self) -> tuple[torch.Tensor, ...]:
        """Per layer, ``[batch, kv_head, key, d]`` post-RoPE keys, not repeated for GQA."""
        return _complete(self.keys_by_layer, self.n_layers, "keys", "qk")

    @property
    def spec(self) -> tuple[AttentionSpec, ...]:
        """Per layer, the :class:`AttentionSpec` the model's attention call used."""
        return _complete(self.spec_by_layer, self.n_layers, "attention specs", "qk")

    @property
    def residual(self) -> tuple[torch.Tensor, ...]:
        """``[batch, token, hidden]`` for i = 0 .. L: i = 0 is what layer 0 receives (the
        embeddings; Gemma 2 scales them by sqrt(hidden) first), i = l + 1 the output of layer l;
        the last is before the final norm (HF's ``hidden_states[-1]`` is after it)."""
        return _complete(self.residual_by_index, self.n_layers + 1, "residual stream", "residual")


def _complete(found: Mapping[int, Any], expected: int, what: str, flag: str) -> tuple[Any, ...]:
    if not found:
        raise RuntimeError(f"no {what} captured: was this trace opened with {flag}=False?")
    missing = [i for i in range(expected) if i not in found]
    if missing:
        raise RuntimeError(
            f"{what} incomplete (missing {missing}): the forward pass did not finish"
        )
    return tuple(found[i] for i in range(expected))


class Trace:
    """Captures of a :func:`trace` block; the first forward pass is exposed directly.

    Attributes:
        layer_names: module path of each layer's attention (``"model.layers.3.self_attn"``).
        forwards: one :class:`ForwardCapture` per forward pass, in call order.
    """

    def __init__(self, layer_names: tuple[str, ...]) -> None:
        self.layer_names = layer_names
        self.forwards: list[ForwardCapture] = []

    @property
    def n_layers(self) -> int:
        return len(self.layer_names)

    def _forward(self, index: int) -> ForwardCapture:
        if not self.forwards:
            raise RuntimeError("no forward pass ran inside this trace; call the model in the block")
        if not -len(self.forwards) <= index < len(self.forwards):
            raise IndexError(f"forward={index} but {len(self.forwards)} forward passes ran")
        return self.forwards[index]

    @property
    def queries(self) -> tuple[torch.Tensor, ...]:
        """``queries[l]``: ``[batch, head, query, d]`` post-RoPE, detached."""
        return self._forward(0).queries

    @property
    def keys(self) -> tuple[torch.Tensor, ...]:
        """``keys[l]``: ``[batch, kv_head, key, d]`` post-RoPE, un-repeated, detached."""
        return self._forward(0).keys

    @property
    def spec(self) -> tuple[AttentionSpec, ...]:
        """``spec[l]``: the :class:`AttentionSpec` layer ``l`` was called with."""
        return self._forward(0).spec

    @property
    def residual(self) -> tuple[torch.Tensor, ...]:
        """``residual[i]``: ``[batch, token, hidden]``, i = 0 .. L (before the final norm)."""
        return self._forward(0).residual

    def attention(
        self,
        layer: int,
        *,
        batch: int = 0,
        heads: int | Sequence[int] | None = None,
        attention_mask: torch.Tensor | None = None,
        forward: int = 0,
    ) -> torch.Tensor:
        """Exact pattern of ``layer`` for one batch element: ``float32 [head, query, key]``.

        Args:
            heads: query heads to return, in the given order (``None`` = all).
            attention_mask: ``[key]`` or ``[batch, key]`` padding mask; by default the 2-D
                mask the model was called with. Padded query rows come back as zeros.
            forward: which forward pass inside the trace (default: the first).
        """
        capture = self._forward(forward)
        if not 0 <= layer < self.n_layers:
            raise IndexError(f"layer={layer} out of range; the model has {self.n_layers} layers")
        q, k, spec = capture.queries[layer], capture.keys[layer], capture.spec[layer]
        if not 0 <= batch < q.shape[0]:
            raise IndexError(f"batch={batch} out of range; {q.shape[0]} sequences were traced")
        q, k = q[batch], k[batch]
        if heads is not None:
            chosen = [heads] if isinstance(heads, int) else list(heads)
            bad = [h for h in chosen if not 0 <= h < q.shape[0]]
            if bad or not chosen:
                raise IndexError(f"heads={heads!r}: heads must be in 0..{q.shape[0] - 1}")
            # pair each chosen query head with its own kv head, then treat them as plain MHA
            q = q[chosen]
            k = k[[h // spec.n_kv_groups for h in chosen]]
            spec = AttentionSpec(
                scaling=spec.scaling,
                softcap=spec.softcap,
                sliding_window=spec.sliding_window,
                n_kv_groups=1,
            )
        return attention_pattern(
            q, k, spec, key_padding_mask=self._padding(capture, batch, attention_mask)
        )

    @staticmethod
    def _padding(
        capture: ForwardCapture, batch: int, attention_mask: torch.Tensor | None
    ) -> torch.Tensor | None:
        if attention_mask is None:
            if capture.custom_mask:
                raise ValueError(
                    "the model was called with a custom (non 2-D) attention mask; pass the "
                    "padding mask to attention(..., attention_mask=[key] or [batch, key])"
                )
            attention_mask = capture.attention_mask
        if attention_mask is None:
            return None
        if attention_mask.dim() == 2:
            return attention_mask[batch]
        if attention_mask.dim() == 1:
            return attention_mask
        raise ValueError(
            f"attention_mask must be [key] or [batch, key], got shape {tuple(attention_mask.shape)}"
        )


class _Recorder:
    """Receives hook and attention-interface callbacks and files them into a :class:`Trace`."""

    def __init__(self, result: Trace, forward_signature: inspect.Signature) -> None:
        self.result = result
        self.forward_signature = forward_signature
        # None outside the base model's forward, so gradient-checkpoint recomputation
        # during backward is not recorded as a new pass
        self.current: ForwardCapture | None = None

    def begin_forward(
        self, _module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        bound = self.forward_signature.bind_partial(*args, **kwargs).arguments
        self.current = ForwardCapture(self.result.n_layers, bound.get("attention_mask"))
        self.result.forwards.append(self.current)

    def end_forward(self, _module: torch.nn.Module, _args: Any, _output: Any) -> None:
        self.current = None

    def capture_qk(
        self,
        _module: torch.nn.Module,
        layer: int,
        query: torch.Tensor,
        key: torch.Tensor,
        kwargs: Mapping[str, Any],
    ) -> None:
        if self.current is None:
            return
        n_heads, n_kv_heads = query.shape[1], key.shape[1]
        scaling = kwargs.get("scaling")
        self.current.queries_by_layer[layer] = query.detach().clone()
        self.current.keys_by_layer[layer] = key.detach().clone()
        self.current.spec_by_layer[layer] = AttentionSpec(
            scaling=float(scaling) if scaling is not None else query.shape[-1] ** -0.5,
            softcap=_optional_float(kwargs.get("softcap")),
            sliding_window=_optional_int(kwargs.get("sliding_window")),
            n_kv_groups=n_heads // n_kv_heads,
        )

    def capture_input(
        self, _module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        if self.current is not None:
            hidden = args[0] if args else kwargs["hidden_states"]
            self.current.residual_by_index[0] = hidden.detach().clone()

    def output_capturer(self, layer: int) -> Any:
        def capture_output(_module: torch.nn.Module, _args: Any, output: Any) -> None:
            if self.current is not None:
                # decoder layers return a tensor in most 5.x models, a tuple in some
                hidden = output[0] if isinstance(output, tuple) else output
                self.current.residual_by_index[layer + 1] = hidden.detach().clone()

        return capture_output


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _decoder_layers(model: torch.nn.Module) -> tuple[torch.nn.Module, list[torch.nn.Module]]:
    base = getattr(model, "base_model", model)
    layers = getattr(base, "layers", None)
    if not isinstance(layers, torch.nn.ModuleList) or not all(
        hasattr(layer, "self_attn") for layer in layers
    ):
        raise UnsupportedArchitectureError(
            f"{type(model).__name__} has no decoder `layers` with `self_attn` where the "
            "LLaMA family keeps them"
        )
    return base, list(layers)


def _attention_modules(layers: list[torch.nn.Module]) -> list[torch.nn.Module]:
    return [layer.get_submodule("self_attn") for layer in layers]


@contextmanager
def trace(model: torch.nn.Module, *, residual: bool = True, qk: bool = True) -> Iterator[Trace]:
    """Capture post-RoPE queries/keys and the residual stream of ``model``'s forward passes.

    Nothing about the forward changes: the model's attention kernel runs as configured and the
    logits are bitwise those without the trace. Every hook and the borrowed attention-registry
    entry are given back when the block exits, also on an exception. Traces may nest (each
    records independently); other models running meanwhile are not recorded. Run a traced
    model from one thread at a time; ``torch.compile``-d models are not supported.

    Args:
        model: a transformers ``PreTrainedModel`` of a supported architecture
            (:data:`SUPPORTED_ARCHITECTURES`).
        residual: capture the residual stream (``Trace.residual``).
        qk: capture queries, keys and attention specs (``Trace.queries``/``keys``/``spec``).
    """
    check_supported(model)
    if not (residual or qk):
        raise ValueError("nothing to capture: set residual=True and/or qk=True")
    base, layers = _decoder_layers(model)
    names = {id(module): name for name, module in model.named_modules()}
    result = Trace(tuple(names[id(module)] for module in _attention_modules(layers)))
    recorder = _Recorder(result, inspect.signature(base.forward))
    with ExitStack() as stack:
        hooks = stack.enter_context(borrowed_hooks())
        hooks.forward_pre(base, recorder.begin_forward, with_kwargs=True)
        hooks.forward(base, recorder.end_forward, always_call=True)  # also when it raises
        if residual:
            hooks.forward_pre(layers[0], recorder.capture_input, with_kwargs=True)
            for index, layer in enumerate(layers):
                hooks.forward(layer, recorder.output_capturer(index))
        if qk:
            stack.enter_context(
                capturing_attention(_attention_modules(layers), recorder.capture_qk)
            )
        yield result
