"""Direct logit attribution: each component's direct share of a target logit (or logit
difference), through the final norm with its scale frozen.

The residual stream entering the final norm is a sum of parts: the embeddings, each layer's
attention output (its heads' outputs through the output projection, plus the projection's
bias) and each layer's MLP output. An RMS norm multiplies a position's residual ``x`` by one
number, ``1 / rms(x)``, and by its weight. With that number frozen at its value on this run,
the norm is linear, so the target's logit at a position splits into one term per part:
``scale * part . (weight * u)``, where ``u`` is the target token's unembedding row (minus the
foil's for a contrast). The terms add up to the logit the model computed, to rounding.

What freezing approximates: a part's term is its *direct* share of the logit as the model
computed it. It is not what the logit would be without that part: removing a head also changes
the norm's scale (frozen here) and everything the head feeds in later layers (activation
patching measures that total effect).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from llmasos_widgets._hooks import borrowed_hooks
from llmasos_widgets._readable_tokens import TokenStyle, show_tokens
from llmasos_widgets.interventions._files import SavedResult, saved_kind
from llmasos_widgets.interventions._runs import forward_logits
from llmasos_widgets.targets import (
    NextToken,
    Predicted,
    Target,
    TargetLike,
    as_target,
    resolve_position,
    resolve_target,
)
from llmasos_widgets.tracing import Anatomy, anatomy, eval_mode

NORM_FIT_TOLERANCE = 1e-3
"""Largest relative misfit of the final norm as ``scale * x * weight`` per position; a norm that
also centres (LayerNorm) or mixes features misses it by far more, and is refused."""


@saved_kind
@dataclass(frozen=True, kw_only=True)
class LogitAttribution(SavedResult):
    """Direct contributions to one target's logit at every position of one text.

    Every array's last axis is the token position; the target token's logit is read at every
    position, and :attr:`position` is where the target was asked for (the head map is read
    there). Per position: ``embeddings + heads.sum((0, 1)) + mlps.sum(0)
    + attention_biases.sum(0) + unembedding_bias == logits`` to float rounding
    (:attr:`unexplained` holds the difference).
    """

    text: str
    tokens: tuple[str, ...]
    target: str
    """What is attributed, e.g. ``logit('are') - logit('is') after token 5``."""
    position: int
    heads: np.ndarray
    """float32 ``[layer, head, position]``: each head's output, projected, at each position."""
    mlps: np.ndarray
    """float32 ``[layer, position]``."""
    embeddings: np.ndarray
    """float32 ``[position]``: the token embeddings (as the first layer receives them)."""
    attention_biases: np.ndarray
    """float32 ``[layer, position]``: each output projection's bias (zero without one)."""
    unembedding_bias: float
    """The LM head's bias for the target (0 without one)."""
    norm_scale: np.ndarray
    """float32 ``[position]``: the final norm's frozen scale ``1 / rms(x)`` (times the fitted
    constant of its weight; see the module doc)."""
    logits: np.ndarray
    """float32 ``[position]``: the target logit (difference) the model computed, before any
    final soft-capping."""
    n_layers: int
    n_heads: int
    token_style: TokenStyle | None = None
    """How the tokenizer writes its token strings (views show them as readers read them)."""

    def __post_init__(self) -> None:
        n = len(self.tokens)
        shapes = {
            "heads": (self.n_layers, self.n_heads, n),
            "mlps": (self.n_layers, n),
            "attention_biases": (self.n_layers, n),
            "embeddings": (n,),
            "norm_scale": (n,),
            "logits": (n,),
        }
        for name, shape in shapes.items():
            if getattr(self, name).shape != shape:
                raise ValueError(f"{name} must have shape {shape}, got {getattr(self, name).shape}")
        if not 0 <= self.position < n:
            raise ValueError(f"position {self.position} is out of range for {n} tokens")

    @property
    def shown_tokens(self) -> tuple[str, ...]:
        """The tokens as readers read them."""
        style = self.token_style or TokenStyle()
        return tuple(token.text for token in show_tokens(list(self.tokens), style))

    @property
    def component_names(self) -> tuple[str, ...]:
        """Row labels of :attr:`component_map`: ``emb``, then ``L0 attn``, ``L0 MLP``, ..."""
        layers = [(f"L{layer} attn", f"L{layer} MLP") for layer in range(self.n_layers)]
        return ("emb", *(name for pair in layers for name in pair))

    @property
    def component_layers(self) -> tuple[int, ...]:
        """The decoder layer of each row of :attr:`component_map` (-1 for ``emb``)."""
        return (-1, *(layer for layer in range(self.n_layers) for _ in range(2)))

    @property
    def component_map(self) -> np.ndarray:
        """float32 ``[component, position]``: the embeddings, then each layer's attention
        (its heads and the output projection's bias) and MLP, in the order they run."""
        attention = self.heads.sum(1) + self.attention_biases
        rows = [self.embeddings]
        for layer in range(self.n_layers):
            rows += [attention[layer], self.mlps[layer]]
        return np.stack(rows).astype(np.float32)

    @property
    def head_map(self) -> np.ndarray:
        """float32 ``[layer, head]``: the heads' contributions at :attr:`position`."""
        return self.heads[:, :, self.position]

    @property
    def total(self) -> np.ndarray:
        """float32 ``[position]``: the sum of every contribution (equals :attr:`logits`)."""
        return (
            self.embeddings
            + self.heads.sum((0, 1))
            + self.mlps.sum(0)
            + self.attention_biases.sum(0)
            + np.float32(self.unembedding_bias)
        ).astype(np.float32)

    @property
    def unexplained(self) -> np.ndarray:
        """float32 ``[position]``: ``logits - total``, float rounding only."""
        return (self.logits - self.total).astype(np.float32)

    def to_html(self, path: str | Path) -> Path:
        """Write a standalone HTML page of both maps and the text (the ``"html"`` view
        registered by ``llmasos_widgets.export``); returns the path."""
        from llmasos_widgets._views import render

        written: Path = render("html", self, Path(path))
        return written

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """In a notebook: the PatchingWidget (a view registered by ``widgets``)."""
        from llmasos_widgets._views import render

        return render("mimebundle", self, **kwargs)

    def __repr__(self) -> str:
        top = ", ".join(f"L{layer}H{head} {value:+.3g}" for layer, head, value in self.top_heads(3))
        return (
            f"LogitAttribution({self.target}: logit {float(self.logits[self.position]):.4g}; "
            f"top heads {top})"
        )

    def top_heads(self, k: int = 5) -> list[tuple[int, int, float]]:
        """The ``k`` heads with the largest absolute contribution at :attr:`position`."""
        flat = np.argsort(-np.abs(self.head_map), axis=None, kind="stable")[:k]
        return [
            (int(layer), int(head), float(self.head_map[layer, head]))
            for layer, head in zip(*np.unravel_index(flat, self.head_map.shape), strict=True)
        ]


class _Capture:
    """The parts of the residual stream of one forward pass (batch row 0)."""

    def __init__(self) -> None:
        self.heads: dict[int, torch.Tensor] = {}
        self.mlps: dict[int, torch.Tensor] = {}
        self.embeddings = self.residual = self.normed = torch.empty(0)

    def record(self, parts: Anatomy, hooks: Any) -> None:
        def embeddings(hidden: torch.Tensor) -> None:
            self.embeddings = hidden[0]

        def final_norm(residual: torch.Tensor, normed: torch.Tensor) -> None:
            self.residual, self.normed = residual[0], normed[0]

        parts.read_site(hooks, 0, embeddings)
        for layer in range(parts.n_layers):
            parts.read_heads(hooks, layer, self._keeper(self.heads, layer))
            parts.read_mlp(hooks, layer, self._keeper(self.mlps, layer))
        parts.read_final_norm(hooks, final_norm)

    @staticmethod
    def _keeper(store: dict[int, torch.Tensor], layer: int) -> Any:
        def keep(value: torch.Tensor) -> None:
            store[layer] = value[0]

        return keep


def _weight(module: Any) -> torch.Tensor:
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"{type(module).__name__} has no weight matrix")
    return weight


def _bias(module: Any) -> torch.Tensor | None:
    bias = getattr(module, "bias", None)
    return bias if isinstance(bias, torch.Tensor) else None


def _as_logit(spec: TargetLike) -> Target:
    """The target with a token's logit in place of its log-probability."""
    target = as_target(spec)
    if isinstance(target, NextToken):
        return NextToken(target.token, "logit")
    if isinstance(target, Predicted):
        return Predicted("logit")
    return target


def _unembedding_direction(parts: Anatomy, token_id: int, foil_id: int | None) -> torch.Tensor:
    """``[hidden]``: the target token's unembedding row, minus the foil's for a contrast."""
    if parts.unembedding is None:
        raise TypeError(f"{type(parts.model).__name__} has no LM head (unembedding)")
    rows = _weight(parts.unembedding).float()
    return rows[token_id] if foil_id is None else rows[token_id] - rows[foil_id]


def _norm_map(parts: Anatomy, residual: torch.Tensor, normed: torch.Tensor) -> tuple[Any, Any]:
    """``(scale [T], weight [hidden])`` with ``normed ~ scale[:, None] * residual * weight``.

    The weight is the norm applied to a vector of ones (its weight times a constant, whatever
    the norm's own parametrisation: LLaMA's ``w``, Gemma's ``1 + w``); each position's scale
    is fitted by least squares, which is exact for an RMS norm."""
    if parts.final_norm is None:
        ones = torch.ones(residual.shape[0], dtype=residual.dtype, device=residual.device)
        return ones, torch.ones_like(residual[0])
    probe = torch.ones_like(residual[:1])
    weight = parts.final_norm(probe.to(normed.dtype)).float()[0]
    shaped = residual * weight
    scale = (normed * shaped).sum(-1) / (shaped * shaped).sum(-1).clamp_min(1e-30)
    misfit = (normed - scale[:, None] * shaped).norm(dim=-1) / normed.norm(dim=-1).clamp_min(1e-30)
    if float(misfit.max()) > NORM_FIT_TOLERANCE:
        raise ValueError(
            f"the final norm ({type(parts.final_norm).__name__}) is not a per-position scale of "
            f"its input (misfit {float(misfit.max()):.2g}); direct logit attribution needs an "
            "RMS norm"
        )
    return scale, weight


@torch.no_grad()
def logit_attribution(
    model: Any,
    text: str,
    *,
    target: TargetLike = None,
    position: int = -1,
    tokenizer: Any = None,
) -> LogitAttribution:
    """Each head's, MLP's and the embeddings' direct contribution to ``target``'s logit.

    ``target`` as for :func:`activation_patching`: ``(" are", " is")`` for a logit difference,
    a token for its logit, ``None`` for the token the model predicts after ``position``
    (default: the last token). A log-probability is not a sum of parts, so a token's *logit*
    is attributed. Contributions are computed at every position, for the same target token.
    One forward pass, no gradients.
    """
    from llmasos_widgets.models import as_explainable

    explainable = as_explainable(model, tokenizer)
    hf_model = explainable.hf_model
    ids = explainable.encode(text)
    tokens = tuple(explainable.tokens(ids))
    n_tokens = int(ids.shape[1])
    at = resolve_position(position, n_tokens)
    parts = anatomy(hf_model)
    for layer in range(parts.n_layers):
        parts.check_direct_residual(layer)
    if parts.logit_softcap:
        raise ValueError("direct logit attribution needs logits without final soft-capping")
    seen = _Capture()
    with eval_mode(hf_model), borrowed_hooks() as hooks:
        seen.record(parts, hooks)
        logits = forward_logits(hf_model, ids, keep=n_tokens)[0]
    bound = resolve_target(
        _as_logit(target), explainable.tokenizer, position=at, logits_at_position=logits[at]
    )
    direction = _unembedding_direction(parts, bound.token_id, bound.foil_id)
    residual, normed = seen.residual.float(), seen.normed.float()
    scale, weight = _norm_map(parts, residual, normed)
    read = direction * weight  # the logit of a part c at position p is scale[p] * c . read

    def project(part: torch.Tensor) -> np.ndarray:
        return (scale * (part.float() @ read)).cpu().numpy().astype(np.float32)

    n_heads = parts.n_heads()
    heads = np.zeros((parts.n_layers, n_heads, n_tokens), np.float32)
    biases = np.zeros((parts.n_layers, n_tokens), np.float32)
    for layer in range(parts.n_layers):
        projection = parts.output_projection(layer)
        weight_o = _weight(projection).float()  # [hidden, heads * head_dim]
        per_head = (weight_o.T @ read).view(n_heads, -1)  # [head, head_dim]
        outputs = seen.heads[layer].float()  # [token, head, head_dim]
        heads[layer] = (scale[:, None] * (outputs * per_head).sum(-1)).T.cpu().numpy()
        bias = _bias(projection)
        if bias is not None:
            biases[layer] = project(bias.expand(n_tokens, -1))
    unembedding_bias = _bias(parts.unembedding)
    bias_value = 0.0
    if unembedding_bias is not None:
        bias_value = float(unembedding_bias[bound.token_id])
        if bound.foil_id is not None:
            bias_value -= float(unembedding_bias[bound.foil_id])
    model_logits = logits.float()[:, bound.token_id]
    if bound.foil_id is not None:
        model_logits = model_logits - logits.float()[:, bound.foil_id]
    return LogitAttribution(
        text=text,
        tokens=tokens,
        target=bound.description,
        position=at,
        heads=heads,
        mlps=np.stack([project(seen.mlps[layer]) for layer in range(parts.n_layers)]),
        embeddings=project(seen.embeddings),
        attention_biases=biases,
        unembedding_bias=bias_value,
        norm_scale=scale.cpu().numpy().astype(np.float32),
        logits=model_logits.cpu().numpy().astype(np.float32),
        n_layers=parts.n_layers,
        n_heads=n_heads,
        token_style=TokenStyle.of(explainable.tokenizer),
    )
