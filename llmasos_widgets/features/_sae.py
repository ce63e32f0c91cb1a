"""A sparse autoencoder (SAE) over one residual site: the dictionary every feature tool uses.

``encode(x) = act(((x * input_scale) - b_dec?) @ W_enc + b_enc)`` and
``decode(f) = (f @ W_dec + b_dec) / input_scale``, in SAELens's weight layout (``W_enc``
``[d_in, d_sae]``, ``W_dec`` ``[d_sae, d_in]``). The activation is one of

* ``"relu"``: the standard SAE;
* ``"topk"``: keep the ``k`` largest pre-activations of each row (after a ReLU), zero the rest;
* ``"jumprelu"``: keep a pre-activation where it exceeds its latent's ``threshold``.

``site`` is the package's residual site (0 = ``emb``, ``i`` = ``after L{i-1}``, as in
patching); ``input_scale`` is the constant the activations are multiplied by before encoding
(SAELens's ``normalize_activations``; 1 = none), undone after decoding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

ACTIVATIONS = ("relu", "topk", "jumprelu")


def activate(
    pre: torch.Tensor, activation: str, k: int | None, threshold: torch.Tensor
) -> torch.Tensor:
    """Pre-activations ``[..., d]`` -> feature activations (>= 0, sparse).

    Shared by SAEs and transcoders so both read the same files the same way: ``relu``,
    ``jumprelu`` (``pre`` where it exceeds the per-latent ``threshold``, else 0) or ``topk``
    (the ``k`` largest, rectified; the rest 0).
    """
    if activation == "relu":
        return torch.relu(pre)
    if activation == "jumprelu":
        return pre * (pre > threshold)
    values, indices = torch.topk(pre, int(k or 0), dim=-1)
    return torch.zeros_like(pre).scatter(-1, indices, torch.relu(values))


@dataclass(frozen=True)
class SAEConfig:
    """What an SAE reads and how it encodes; saved beside its weights."""

    d_in: int
    d_sae: int
    site: int
    """Residual site read and written: 0 = ``emb``, ``i`` = ``after L{i-1}``."""
    activation: str = "topk"
    k: int | None = None
    """Latents kept per token (``"topk"`` only)."""
    apply_b_dec_to_input: bool = True
    input_scale: float = 1.0
    model_name: str = ""
    hook_name: str = ""
    """The site's name in the file it came from (e.g. ``blocks.3.hook_resid_post``)."""
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        if self.d_in < 1 or self.d_sae < 1:
            raise ValueError(f"d_in and d_sae must be positive, got {self.d_in}, {self.d_sae}")
        if self.activation == "topk" and not (self.k and 0 < self.k <= self.d_sae):
            raise ValueError(f"a topk SAE needs 1 <= k <= d_sae ({self.d_sae}), got k={self.k}")
        if self.site < 0:
            raise ValueError(f"site must be >= 0 (0 = emb), got {self.site}")
        if not (self.input_scale > 0):
            raise ValueError(f"input_scale must be positive, got {self.input_scale}")


class SparseAutoencoder(nn.Module):
    """An SAE over ``config.site`` (see the module docstring for the arithmetic)."""

    def __init__(self, config: SAEConfig) -> None:
        super().__init__()
        self.config = config
        d_in, d_sae = config.d_in, config.d_sae
        self.W_enc = nn.Parameter(torch.empty(d_in, d_sae))
        self.b_enc = nn.Parameter(torch.zeros(d_sae))
        self.W_dec = nn.Parameter(torch.empty(d_sae, d_in))
        self.b_dec = nn.Parameter(torch.zeros(d_in))
        # JumpReLU's per-latent threshold; all zeros (= ReLU) for the other activations
        self.threshold: torch.Tensor
        self.register_buffer("threshold", torch.zeros(d_sae))
        nn.init.kaiming_uniform_(self.W_dec)
        with torch.no_grad():  # unit-norm decoder rows, encoder its transpose (a common start)
            self.W_dec.copy_(self.W_dec / self.W_dec.norm(dim=1, keepdim=True))
            self.W_enc.copy_(self.W_dec.T)

    @property
    def site(self) -> int:
        return self.config.site

    @property
    def d_sae(self) -> int:
        return self.config.d_sae

    def pre_activations(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.W_enc.dtype) * self.config.input_scale
        if self.config.apply_b_dec_to_input:
            x = x - self.b_dec
        pre: torch.Tensor = x @ self.W_enc + self.b_enc
        return pre

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., d_in]`` -> ``[..., d_sae]`` feature activations (>= 0, sparse)."""
        return activate(
            self.pre_activations(x), self.config.activation, self.config.k, self.threshold
        )

    def decode(self, features: torch.Tensor) -> torch.Tensor:
        """``[..., d_sae]`` -> ``[..., d_in]`` in the site's own units."""
        out: torch.Tensor = (features @ self.W_dec + self.b_dec) / self.config.input_scale
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction of ``x``."""
        return self.decode(self.encode(x))

    def error(self, x: torch.Tensor) -> torch.Tensor:
        """``x - reconstruction``: what the dictionary does not explain."""
        return x.to(self.W_enc.dtype) - self.forward(x)

    def direction(self, latent: int) -> torch.Tensor:
        """Latent ``latent``'s decoder row ``[d_in]`` in the site's units (what steering adds
        per unit of activation)."""
        self._check_latent(latent)
        return self.W_dec[latent].detach() / self.config.input_scale

    def _check_latent(self, latent: int) -> None:
        if not 0 <= latent < self.d_sae:
            raise ValueError(f"latent {latent} does not exist: this SAE has {self.d_sae}")

    def extra_repr(self) -> str:
        c = self.config
        k = f", k={c.k}" if c.activation == "topk" else ""
        return f"site={c.site}, d_in={c.d_in}, d_sae={c.d_sae}, activation={c.activation}{k}"
