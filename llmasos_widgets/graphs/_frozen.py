"""One real forward pass of a prompt, with what the local replacement model freezes from it.

Through the capture layer (every hook borrowed and removed in ``finally``) we keep, for batch
row 0 and in float32: the embeddings that ``L0`` receives; per layer, the attention pattern
(rebuilt exactly from the post-RoPE queries and keys the model's own kernel used), the two
RMS norms' per-position scales, the MLP's input and output; the final norm's scales and the
last position's logits. Nothing else of the model changes: it runs in eval mode (each
module's flag restored afterwards) without gradients.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from llmasos_widgets._hooks import borrowed_hooks
from llmasos_widgets.tracing import Anatomy, AttentionSpec, attention_pattern, eval_mode

NORM_FIT_TOLERANCE = 1e-3
"""Largest relative misfit of a norm as ``scale * x * weight`` per position; a norm that
centres (LayerNorm) or mixes dimensions misses by far more and is refused."""


@dataclass(frozen=True)
class FrozenNorm:
    """An RMS norm at fixed scales: ``x -> scale[position] * x * weight`` (linear in ``x``).

    ``weight`` is the norm applied to a vector of ones (LLaMA's ``w`` up to its epsilon's
    rounding), ``scale`` ``[T]`` fitted per position by least squares (exact for an RMS
    norm, so ``apply`` reproduces the model's normed vectors to float rounding)."""

    scale: torch.Tensor
    weight: torch.Tensor

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """``x [..., P, d]`` (the first ``P`` positions) -> the frozen norm of ``x``."""
        return x * self.scale[: x.shape[-2], None] * self.weight


@dataclass(frozen=True, eq=False)
class FrozenRun:
    """What one forward pass over one prompt leaves for the replacement model (float32)."""

    embeddings: torch.Tensor
    """``[T, d]``: residual site 0, what ``L0`` receives."""
    patterns: list[torch.Tensor]
    """Per layer ``[head, query, key]``: the attention weights the model used."""
    attention_norms: list[FrozenNorm]
    mlp_norms: list[FrozenNorm]
    mlp_inputs: list[torch.Tensor]
    """Per layer ``[T, d]``: the MLP's input (the pre-MLP norm's output)."""
    middles: list[torch.Tensor]
    """Per layer ``[T, d]``: the residual stream between attention and MLP (the norm's input)."""
    mlp_outputs: list[torch.Tensor]
    """Per layer ``[T, d]``: what the MLP added to the residual stream."""
    final_norm: FrozenNorm
    logits: torch.Tensor
    """``[vocab]``: the model's logits at the last position."""

    @property
    def n_tokens(self) -> int:
        return int(self.embeddings.shape[0])

    def transcoder_input(self, layer: int, normed: bool) -> torch.Tensor:
        """``[T, d]``: what layer ``layer``'s transcoder reads: the MLP's input (``normed``) or
        the residual stream before the pre-MLP norm (``input_site="resid_mid"``)."""
        return self.mlp_inputs[layer] if normed else self.middles[layer]


def _fit_norm(norm: nn.Module | None, residual: torch.Tensor, normed: torch.Tensor) -> FrozenNorm:
    """The per-position scales that map ``residual`` ``[T, d]`` to ``normed`` through ``norm``."""
    if norm is None:  # a model without a final norm: the identity
        ones = torch.ones(residual.shape[0], device=residual.device)
        return FrozenNorm(ones, torch.ones(residual.shape[1], device=residual.device))
    with torch.no_grad():
        probe = torch.ones(1, residual.shape[-1], dtype=normed.dtype, device=normed.device)
        weight = norm(probe)[0].double()
    shaped = residual.double() * weight
    target = normed.double()
    scale = (target * shaped).sum(-1) / (shaped * shaped).sum(-1).clamp_min(1e-300)
    misfit = (target - scale[:, None] * shaped).norm(dim=-1) / target.norm(dim=-1).clamp_min(1e-300)
    if float(misfit.max()) > NORM_FIT_TOLERANCE:
        raise ValueError(
            f"{type(norm).__name__} is not a per-position scale of its input (misfit "
            f"{float(misfit.max()):.2g}); the local replacement model freezes RMS norms only"
        )
    return FrozenNorm(scale.float(), weight.float())


def _own_thread_only(keep: Callable[..., None]) -> Callable[..., None]:
    """``keep`` for forwards of the thread that made the recorder; other threads' forwards of
    the same model pass its hooks untouched (JupyterLab runs widget messages on a kernel
    subshell thread, so a click can trace the model while a cell does)."""

    def guarded(self: _Recorder, *args: Any) -> None:
        if threading.get_ident() == self.thread:
            keep(self, *args)

    return guarded


class _Recorder:
    """Filled by the hooks of one forward pass (batch row 0, detached, float32) of the thread
    that made it."""

    def __init__(self, n_layers: int) -> None:
        self.thread = threading.get_ident()
        self.embeddings = torch.empty(0)
        self.norm_io: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor]] = {}
        self.mlp_outputs: dict[int, torch.Tensor] = {}
        self.patterns: dict[int, torch.Tensor] = {}
        self.final: tuple[torch.Tensor, torch.Tensor] | None = None
        self.n_layers = n_layers

    @_own_thread_only
    def keep_embeddings(self, hidden: torch.Tensor) -> None:
        self.embeddings = hidden[0].detach().float()

    def norm_reader(self, which: str, layer: int) -> Any:
        def read(self: _Recorder, _module: nn.Module, args: Any, output: torch.Tensor) -> None:
            self.norm_io[which, layer] = (args[0][0].detach().float(), output[0].detach().float())

        return functools.partial(_own_thread_only(read), self)

    def mlp_reader(self, layer: int) -> Any:
        def read(self: _Recorder, output: torch.Tensor) -> None:
            self.mlp_outputs[layer] = output[0].detach().float()

        return functools.partial(_own_thread_only(read), self)

    @_own_thread_only
    def keep_final(self, residual: torch.Tensor, normed: torch.Tensor) -> None:
        self.final = (residual[0].detach().float(), normed[0].detach().float())

    @_own_thread_only
    def keep_pattern(
        self,
        _module: nn.Module,
        layer: int,
        query: torch.Tensor,
        key: torch.Tensor,
        kwargs: Mapping[str, Any],
    ) -> None:
        spec = AttentionSpec.of_call(query, key, kwargs)
        self.patterns[layer] = attention_pattern(query[0].detach(), key[0].detach(), spec)


def freeze_run(parts: Anatomy, input_ids: torch.Tensor) -> FrozenRun:
    """Run the model once on ``input_ids`` ``[1, T]`` and keep what the graph freezes."""
    model = parts.model
    seen = _Recorder(parts.n_layers)
    with (
        eval_mode(model),
        torch.no_grad(),
        borrowed_hooks() as hooks,
        parts.reading_qk(seen.keep_pattern),
    ):
        parts.read_site(hooks, 0, seen.keep_embeddings)
        for layer in range(parts.n_layers):
            attention_norm, mlp_norm = parts.layer_norms(layer)
            hooks.forward(attention_norm, seen.norm_reader("attention", layer))
            hooks.forward(mlp_norm, seen.norm_reader("mlp", layer))
            parts.read_mlp(hooks, layer, seen.mlp_reader(layer))
        parts.read_final_norm(hooks, seen.keep_final)
        logits = model(input_ids=input_ids, use_cache=False, logits_to_keep=1).logits
    if seen.final is None or len(seen.patterns) != parts.n_layers:
        raise RuntimeError("the forward pass did not reach every layer's hooks")
    layers = range(parts.n_layers)
    return FrozenRun(
        embeddings=seen.embeddings,
        patterns=[seen.patterns[layer].float() for layer in layers],
        attention_norms=[
            _fit_norm(parts.layer_norms(layer)[0], *seen.norm_io["attention", layer])
            for layer in layers
        ],
        mlp_norms=[
            _fit_norm(parts.layer_norms(layer)[1], *seen.norm_io["mlp", layer]) for layer in layers
        ],
        mlp_inputs=[seen.norm_io["mlp", layer][1] for layer in layers],
        middles=[seen.norm_io["mlp", layer][0] for layer in layers],
        mlp_outputs=[seen.mlp_outputs[layer] for layer in layers],
        final_norm=_fit_norm(parts.final_norm, *seen.final),
        logits=logits[0, -1].detach().float(),
    )
