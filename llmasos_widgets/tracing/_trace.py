"""``trace(model)``: capture post-RoPE q/k and the residual stream while the fast kernel runs.

Patterns are O(layer·head·T²); queries and keys are O(layer·head·T·d). We keep the latter and
rebuild a head's pattern on demand with :func:`attention_pattern`.

Several forward passes inside one trace (``generate``, a saliency loop) are each recorded as
one :class:`ForwardCapture` in ``Trace.forwards``, in call order; ``Trace.queries`` and friends
read the *first* one (the prompt, for ``generate``). Captures are detached clones on the
device of their layer (or in host memory with ``offload=True``), so the model's own forward
stays differentiable and caches that update in place (``StaticCache``) cannot change them.

A decode step with a key/value cache sees every earlier key again. Cloning them at each step
would keep O(n²) keys for n generated tokens, so a step that continues the previous forward
stores only the keys of its *new* positions; :meth:`Trace.attention` rebuilds the key axis by
concatenating the earlier steps' keys (``Trace.key_positions`` gives its absolute positions).
A sliding-window cache, which holds only the last window, is handled the same way.
"""

from __future__ import annotations

import contextvars
import inspect
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

import torch

from llmasos_widgets._hooks import borrowed_hooks
from llmasos_widgets.models import check_supported
from llmasos_widgets.tracing._anatomy import Anatomy, anatomy, eval_mode
from llmasos_widgets.tracing._attention_arithmetic import (
    AttentionSpec,
    attention_pattern,
    kv_head,
)

# The recorders of the traces opened in this thread / asyncio context. Hooks are global state
# on the model, so a forward pass from another thread reaches them too; they record only when
# their recorder is open *here*. New threads start with an empty context.
_OPEN_RECORDERS: contextvars.ContextVar[frozenset[_Recorder]] = contextvars.ContextVar(
    "llmasos_open_traces", default=frozenset()
)


class ForwardCapture:
    """What one forward pass of the traced model left behind.

    Attributes:
        attention_mask: ``bool [batch, key]`` padding mask the model was called with
            (``True`` = real token), or ``None`` when it got none (no padding).
        custom_mask: ``True`` when the model got a mask other than 2-D padding (e.g. 4-D);
            patterns then need an explicit ``attention_mask=`` to be rebuilt.
        past_length: tokens already in the model's cache when this forward began: query ``i``
            of this forward sits at absolute position ``past_length + i``.
    """

    def __init__(self, n_layers: int, attention_mask: object, past_length: int = 0) -> None:
        self.n_layers = n_layers
        self.past_length = past_length
        # set when the forward finished but some attention layer bypassed the capture
        self.qk_error: str | None = None
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
        self.key_start_by_layer: dict[int, int] = {}
        # layers whose stored keys continue the previous forward's (only new positions kept)
        self.continues_layers: set[int] = set()
        # the model's key at position key_start - 1, to check the earlier steps' keys against
        self.anchor_by_layer: dict[int, torch.Tensor] = {}
        self.spec_by_layer: dict[int, AttentionSpec] = {}
        self.residual_by_index: dict[int, torch.Tensor] = {}

    @property
    def queries(self) -> tuple[torch.Tensor, ...]:
        """Per layer, ``[batch, head, query, d]`` post-RoPE queries."""
        return self._qk(self.queries_by_layer, "queries")

    @property
    def keys(self) -> tuple[torch.Tensor, ...]:
        """Per layer, ``[batch, kv_head, key, d]`` post-RoPE keys *stored by this forward*, not
        repeated for GQA, at the absolute positions :attr:`key_positions`. A decode step that
        continues the previous forward stores only its new positions; see
        :meth:`Trace.attended_keys` for every key it attended to."""
        return self._qk(self.keys_by_layer, "keys")

    @property
    def key_positions(self) -> tuple[range, ...]:
        """Per layer, the absolute token positions of :attr:`keys` along their key axis."""
        starts = self._qk(self.key_start_by_layer, "keys")
        return tuple(range(start, self.end) for start in starts)

    @property
    def query_positions(self) -> range:
        """Absolute token positions of this forward's queries (and residual stream)."""
        return range(self.past_length, self.end)

    @property
    def end(self) -> int:
        """One past the last absolute position this forward computed."""
        if not self.queries_by_layer:
            hidden = next(iter(self.residual_by_index.values()), None)
            if hidden is None:
                raise RuntimeError("nothing was captured in this forward pass")
            return self.past_length + int(hidden.shape[1])
        return self.past_length + int(next(iter(self.queries_by_layer.values())).shape[2])

    @property
    def spec(self) -> tuple[AttentionSpec, ...]:
        """Per layer, the :class:`AttentionSpec` the model's attention call used."""
        return self._qk(self.spec_by_layer, "attention specs")

    @property
    def residual(self) -> tuple[torch.Tensor, ...]:
        """``[batch, token, hidden]`` for i = 0 .. L: i = 0 is what layer 0 receives (the
        embeddings; Gemma 2 scales them by sqrt(hidden) first), i = l + 1 the output of layer l;
        the last is before the final norm (HF's ``hidden_states[-1]`` is after it)."""
        return _complete(self.residual_by_index, self.n_layers + 1, "residual stream", "residual")

    def _qk(self, found: Mapping[int, Any], what: str) -> tuple[Any, ...]:
        if self.qk_error is not None:
            raise RuntimeError(self.qk_error)
        return _complete(found, self.n_layers, what, "qk")


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

        The query axis is ``forwards[forward].query_positions``; the key axis holds every key
        that forward attended to, at the absolute positions :meth:`key_positions` (for a
        decode step inside a trace around ``generate``: ``0 .. step position``).

        Args:
            heads: query heads to return, in the given order (``None`` = all).
            attention_mask: ``[key]`` or ``[batch, key]`` padding mask; by default the 2-D
                mask the model was called with. Padded query rows come back as zeros.
            forward: which forward pass inside the trace (default: the first).
        """
        capture = self._forward(forward)
        self._check_layer(layer)
        q, spec = capture.queries[layer], capture.spec[layer]
        if not 0 <= batch < q.shape[0]:
            raise IndexError(f"batch={batch} out of range; {q.shape[0]} sequences were traced")
        k, positions = self.attended_keys(layer, forward=forward)
        q, k = q[batch], k[batch]
        if k.device != q.device:  # offloaded earlier steps, or a layer on another device
            k = k.to(q.device)
        if heads is not None:
            chosen = [heads] if isinstance(heads, int) else list(heads)
            bad = [h for h in chosen if not 0 <= h < q.shape[0]]
            if bad or not chosen:
                raise IndexError(f"heads={heads!r}: heads must be in 0..{q.shape[0] - 1}")
            # pair each chosen query head with its own kv head, then treat them as plain MHA
            q = q[chosen]
            k = k[[kv_head(h, spec) for h in chosen]]
            spec = AttentionSpec(
                scaling=spec.scaling,
                softcap=spec.softcap,
                sliding_window=spec.sliding_window,
                n_kv_groups=1,
            )
        padding = self._padding(capture, batch, attention_mask)
        if padding is not None and padding.shape[0] == positions.stop:
            padding = padding[positions.start :]  # the mask covers every position from 0
        return attention_pattern(q, k, spec, key_padding_mask=padding)

    def key_positions(self, layer: int, *, forward: int = 0) -> range:
        """Absolute token positions of the key axis of ``attention(layer, forward=forward)``.

        ``range(0, n)`` whenever the trace saw every earlier forward of the sequence (e.g. it
        was opened before ``generate``); it starts later when the forward continued a cache
        filled outside the trace and that cache held only the last window.
        """
        return self.attended_keys(layer, forward=forward)[1]

    def attended_keys(self, layer: int, *, forward: int = 0) -> tuple[torch.Tensor, range]:
        """Every key forward ``forward`` attended to in ``layer``: ``[batch, kv_head, key, d]``
        and their absolute positions, rebuilt from the keys each earlier step stored."""
        self._check_layer(layer)
        index = forward % len(self.forwards) if self.forwards else forward
        capture = self._forward(forward)
        pieces = [capture.keys[layer]]
        start = capture.key_positions[layer].start
        chain = [capture]
        while layer in chain[-1].continues_layers:
            index -= 1  # a step stores only new keys when the forward before it ends at `start`
            earlier = self.forwards[index]
            pieces.append(earlier.keys_by_layer[layer])
            start = earlier.key_start_by_layer[layer]
            chain.append(earlier)
        if len(pieces) == 1:
            return pieces[0], range(start, capture.end)
        device = pieces[0].device
        keys = torch.cat([piece.to(device) for piece in reversed(pieces)], dim=2)
        self._check_chain(layer, chain, keys, start, forward)
        return keys, range(start, capture.end)

    @staticmethod
    def _check_chain(
        layer: int, chain: list[ForwardCapture], keys: torch.Tensor, start: int, forward: int
    ) -> None:
        """The model's cache at each step must still have held the earlier steps' keys."""
        steps = [step for step in chain if layer in step.anchor_by_layer]
        if not steps:
            return
        anchors = torch.stack([step.anchor_by_layer[layer].to(keys.device) for step in steps])
        index = torch.tensor([step.key_start_by_layer[layer] - 1 - start for step in steps])
        recorded = keys.index_select(2, index.to(keys.device)).permute(2, 0, 1, 3)
        if not torch.equal(anchors, recorded):
            raise RuntimeError(
                f"forward={forward}: the model's key cache no longer held the keys recorded at "
                "earlier steps (beam search reorders the cache between steps), so this step's "
                "pattern cannot be rebuilt from per-step captures. Trace greedy or sampled "
                "decoding, or one forward over prompt + completion: by causality its rows are "
                "the steps' patterns."
            )

    def _check_layer(self, layer: int) -> None:
        if not 0 <= layer < self.n_layers:
            raise IndexError(f"layer={layer} out of range; the model has {self.n_layers} layers")

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

    def __init__(
        self,
        result: Trace,
        parts: Anatomy,
        *,
        qk: bool,
        offload: bool = False,
    ) -> None:
        self.result = result
        self.parts = parts
        self.forward_signature = inspect.signature(parts.base.forward)
        self.qk = qk
        self.offload = offload
        # devices with non-blocking device -> host copies not yet waited for
        self.pending_copies: set[torch.device] = set()
        # None outside the base model's forward, so gradient-checkpoint recomputation
        # during backward is not recorded as a new pass
        self.current: ForwardCapture | None = None

    def is_open_here(self) -> bool:
        """Whether this trace was opened in the calling thread / context (see _OPEN_RECORDERS)."""
        return self in _OPEN_RECORDERS.get()

    def begin_forward(
        self, _module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        if not self.is_open_here():
            return
        bound = self.forward_signature.bind_partial(*args, **kwargs).arguments
        self.current = ForwardCapture(
            self.result.n_layers, bound.get("attention_mask"), _past_length(bound)
        )
        self.result.forwards.append(self.current)

    def end_forward(self, _module: torch.nn.Module, _args: Any, output: Any) -> None:
        if not self.is_open_here():
            return
        current, self.current = self.current, None
        if current is not None and self.qk and output is not None:  # None: the forward raised
            self._check_attention_seen(current)
        while self.pending_copies:  # host copies must be complete before anyone reads them
            torch.cuda.synchronize(self.pending_copies.pop())

    def _check_attention_seen(self, current: ForwardCapture) -> None:
        """Name the first layer whose attention call did not pass through the capture."""
        missing = [i for i in range(current.n_layers) if i not in current.queries_by_layer]
        if not missing:
            return
        layer = missing[0]
        current.qk_error = (
            f"no queries/keys were captured for decoder layer L{layer} "
            f"({self.parts.attention_path(layer)}{' and others' if len(missing) > 1 else ''}, "
            f"missing layers {missing}): its attention call did not pass through transformers' "
            f"AttentionInterface entry {self.parts.attention_backend!r} "
            f"(config._attn_implementation), which trace() borrows. Load the model with "
            "attn_implementation='eager' or 'sdpa', or check that this transformers version "
            "dispatches attention through ALL_ATTENTION_FUNCTIONS."
        )

    def store(self, tensor: torch.Tensor) -> torch.Tensor:
        """A detached copy that later in-place updates (caches, user code) cannot change."""
        tensor = tensor.detach()
        if not self.offload or tensor.device.type == "cpu":
            return tensor.clone(memory_format=torch.contiguous_format)
        pinned = tensor.device.type == "cuda"
        host = torch.empty(tensor.shape, dtype=tensor.dtype, device="cpu", pin_memory=pinned)
        host.copy_(tensor, non_blocking=pinned)
        if pinned:
            self.pending_copies.add(tensor.device)
        return host

    def capture_qk(
        self,
        _module: torch.nn.Module,
        layer: int,
        query: torch.Tensor,
        key: torch.Tensor,
        kwargs: Mapping[str, Any],
    ) -> None:
        current = self.current
        if current is None or not self.is_open_here():
            return
        current.queries_by_layer[layer] = self.store(query)
        self._store_keys(current, layer, key, n_queries=query.shape[2])
        current.spec_by_layer[layer] = AttentionSpec.of_call(query, key, kwargs)

    def _store_keys(
        self, current: ForwardCapture, layer: int, key: torch.Tensor, *, n_queries: int
    ) -> None:
        """Keep the keys of this forward's new positions only when the previous forward of
        the trace already stored the positions before them; otherwise every visible key."""
        past, n_keys = current.past_length, key.shape[2]
        end = past + n_queries
        # the key axis holds positions 0.. (a full or static cache: index = position) or,
        # for a sliding-window cache, only the last n_keys positions
        first_visible = 0 if n_keys >= end else end - n_keys
        new_at = past - first_visible  # index of the first new key
        previous = self.result.forwards[-2] if len(self.result.forwards) > 1 else None
        continues = (
            past > 0
            and previous is not None
            and layer in previous.keys_by_layer
            and previous.end == past
        )
        if continues:
            current.continues_layers.add(layer)
            current.key_start_by_layer[layer] = past
            current.keys_by_layer[layer] = self.store(key[:, :, new_at : new_at + n_queries])
            if new_at > 0:
                current.anchor_by_layer[layer] = self.store(key[:, :, new_at - 1])
        else:
            current.key_start_by_layer[layer] = first_visible
            current.keys_by_layer[layer] = self.store(key[:, :, : new_at + n_queries])

    def site_capturer(self, site: int) -> Any:
        def capture_site(hidden: torch.Tensor) -> None:
            if self.current is not None and self.is_open_here():
                self.current.residual_by_index[site] = self.store(hidden)

        return capture_site


def _past_length(bound: Mapping[str, Any]) -> int:
    """Tokens already in the cache the base model was called with (0 without one).

    transformers renamed ``past_key_values`` to ``cache`` in 5.2x; both are looked for.
    """
    extra = bound.get("kwargs") or {}
    for name in ("cache", "past_key_values"):
        cache = bound.get(name, extra.get(name))
        if cache is not None and hasattr(cache, "get_seq_length"):
            return int(cache.get_seq_length())
    return 0


@contextmanager
def trace(
    model: torch.nn.Module, *, residual: bool = True, qk: bool = True, offload: bool = False
) -> Iterator[Trace]:
    """Capture post-RoPE queries/keys and the residual stream of ``model``'s forward passes.

    Nothing about the forward changes: the model's attention kernel runs as configured and the
    logits are bitwise those without the trace. Every hook and the borrowed attention-registry
    entry are given back when the block exits, also on an exception. Traces may nest (each
    records independently); other models running meanwhile are not recorded. The model runs
    in eval mode inside the block (no dropout: a model left in training mode gives the same
    captures and logits as in eval mode), and each module's ``training`` flag is restored on
    exit. A trace records only forward passes run by the thread (or asyncio context) that
    opened it: another thread calling the same model meanwhile is not recorded (it runs in
    eval mode too while the block is open; overlapping traces restore the flags when the
    last one exits). ``torch.compile``-d models are not supported.

    Args:
        model: a transformers ``PreTrainedModel`` of a supported architecture
            (:data:`SUPPORTED_ARCHITECTURES`).
        residual: capture the residual stream (``Trace.residual``).
        qk: capture queries, keys and attention specs (``Trace.queries``/``keys``/``spec``).
        offload: copy every capture to host memory as it is produced (pinned memory and
            non-blocking copies from CUDA, waited for at the end of each forward), so long
            sequences do not keep their captures in accelerator memory.
    """
    check_supported(model)
    if not (residual or qk):
        raise ValueError("nothing to capture: set residual=True and/or qk=True")
    parts = anatomy(model)
    result = Trace(tuple(parts.attention_path(layer) for layer in range(parts.n_layers)))
    recorder = _Recorder(result, parts, qk=qk, offload=offload)
    with ExitStack() as stack:
        stack.enter_context(eval_mode(model))
        hooks = stack.enter_context(borrowed_hooks())
        hooks.forward_pre(parts.base, recorder.begin_forward, with_kwargs=True)
        hooks.forward(parts.base, recorder.end_forward, always_call=True)  # also when it raises
        if residual:
            for site in range(parts.n_sites):
                parts.read_site(hooks, site, recorder.site_capturer(site))
        if qk:
            stack.enter_context(parts.reading_qk(recorder.capture_qk))
        _OPEN_RECORDERS.set(_OPEN_RECORDERS.get() | {recorder})
        try:
            yield result
        finally:
            _OPEN_RECORDERS.set(_OPEN_RECORDERS.get() - {recorder})
