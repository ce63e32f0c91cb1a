"""A transcoder: a sparse dictionary that reads one layer's MLP input and writes its output.

Where an SAE reconstructs the residual stream at a site, a transcoder *replaces* the MLP of
decoder layer ``layer``: it reads what the MLP reads (the residual stream after the layer's
attention, through the pre-MLP norm; or, for files that say so, that residual stream before the
norm: ``config.input_site``) and predicts what the MLP writes. Splice every layer's
transcoder in and the model's MLPs become sparse, linear-in-features maps, which is what an
attribution graph needs (Dunefsky et al. 2024; circuit-tracer).

``encode(x) = act(x @ W_enc + b_enc)`` and ``decode(f) = f @ W_dec + b_dec (+ x @ W_skip)``,
in the same ``[in, out]`` weight layout as :class:`SparseAutoencoder` (``W_enc``
``[d_in, d_transcoder]``, ``W_dec`` ``[d_transcoder, d_out]``). The optional ``W_skip``
``[d_in, d_out]`` is circuit-tracer's linear skip connection (skip transcoders). The
activation is one of :data:`ACTIVATIONS` (``"relu"``, ``"topk"``, ``"jumprelu"``), as for
SAEs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from llmasos_widgets.features._sae import ACTIVATIONS, activate

INPUT_SITES = ("mlp_in", "resid_mid")


@dataclass(frozen=True)
class TranscoderConfig:
    """What a transcoder reads and writes and how it encodes; saved beside its weights."""

    d_in: int
    d_transcoder: int
    d_out: int
    layer: int
    """Decoder layer whose MLP this transcoder replaces (``L{layer}``)."""
    activation: str = "topk"
    k: int | None = None
    """Latents kept per token (``"topk"`` only)."""
    skip_connection: bool = False
    """Whether the transcoder has a linear skip ``W_skip`` from its input to its output."""
    model_name: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    input_site: str = "mlp_in"
    """What ``x`` is: ``"mlp_in"``, the MLP's input (the pre-MLP norm's output; TransformerLens
    ``ln2.hook_normalized``, what ours and Gemma Scope's read), or ``"resid_mid"``, the
    residual stream between attention and MLP, before that norm (``hook_resid_mid``, what
    circuit-tracer's Llama and Qwen transcoders read)."""

    def __post_init__(self) -> None:
        if self.input_site not in INPUT_SITES:
            raise ValueError(f"input_site must be one of {INPUT_SITES}, got {self.input_site!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        if min(self.d_in, self.d_transcoder, self.d_out) < 1:
            raise ValueError(
                "d_in, d_transcoder and d_out must be positive, got "
                f"{self.d_in}, {self.d_transcoder}, {self.d_out}"
            )
        if self.activation == "topk" and not (self.k and 0 < self.k <= self.d_transcoder):
            raise ValueError(
                f"a topk transcoder needs 1 <= k <= d_transcoder ({self.d_transcoder}), "
                f"got k={self.k}"
            )
        if self.layer < 0:
            raise ValueError(f"layer must be >= 0, got {self.layer}")


class Transcoder(nn.Module):
    """A transcoder replacing layer ``config.layer``'s MLP (module docstring: the arithmetic)."""

    def __init__(self, config: TranscoderConfig) -> None:
        super().__init__()
        self.config = config
        d_in, d_tc, d_out = config.d_in, config.d_transcoder, config.d_out
        self.W_enc = nn.Parameter(torch.empty(d_in, d_tc))
        self.b_enc = nn.Parameter(torch.zeros(d_tc))
        self.W_dec = nn.Parameter(torch.empty(d_tc, d_out))
        self.b_dec = nn.Parameter(torch.zeros(d_out))
        self.W_skip: nn.Parameter | None = (
            nn.Parameter(torch.zeros(d_in, d_out)) if config.skip_connection else None
        )
        # JumpReLU's per-latent threshold; all zeros (= ReLU) for the other activations
        self.threshold: torch.Tensor
        self.register_buffer("threshold", torch.zeros(d_tc))
        nn.init.kaiming_uniform_(self.W_enc)
        nn.init.kaiming_uniform_(self.W_dec)
        with torch.no_grad():  # unit-norm decoder rows: a latent's activation is its output's size
            self.W_dec.copy_(self.W_dec / self.W_dec.norm(dim=1, keepdim=True))

    @property
    def layer(self) -> int:
        return self.config.layer

    @property
    def d_transcoder(self) -> int:
        return self.config.d_transcoder

    def pre_activations(self, x: torch.Tensor) -> torch.Tensor:
        pre: torch.Tensor = x.to(self.W_enc.dtype) @ self.W_enc + self.b_enc
        return pre

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., d_in]`` MLP inputs -> ``[..., d_transcoder]`` feature activations."""
        pre = self.pre_activations(x)
        return activate(pre, self.config.activation, self.config.k, self.threshold)

    def decode(self, features: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """Features (and, with a skip connection, the input ``x``) -> ``[..., d_out]``."""
        out: torch.Tensor = features @ self.W_dec + self.b_dec
        if self.W_skip is not None:
            if x is None:
                raise ValueError("this transcoder has a skip connection: decode needs its input x")
            out = out + x.to(self.W_skip.dtype) @ self.W_skip
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The predicted MLP output for MLP input ``x``."""
        return self.decode(self.encode(x), x)

    def direction(self, latent: int) -> torch.Tensor:
        """Latent ``latent``'s decoder row ``[d_out]``: what it writes per unit of activation."""
        if not 0 <= latent < self.d_transcoder:
            raise ValueError(
                f"latent {latent} does not exist: this transcoder has {self.d_transcoder}"
            )
        return self.W_dec[latent].detach()

    def extra_repr(self) -> str:
        c = self.config
        k = f", k={c.k}" if c.activation == "topk" else ""
        skip = ", skip" if c.skip_connection else ""
        reads = "" if c.input_site == "mlp_in" else f", input_site={c.input_site}"
        return (
            f"layer={c.layer}, d_in={c.d_in}, d_transcoder={c.d_transcoder}, d_out={c.d_out}, "
            f"activation={c.activation}{k}{skip}{reads}"
        )
