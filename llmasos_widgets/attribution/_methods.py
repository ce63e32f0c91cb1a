"""Attribution methods: small classes with an explicit ``name``, registered by a decorator.

Each method maps an :class:`AttributionContext` (one sequence, its activations at the chosen
residual sites, a target) to ``[site, token]`` scores. Per-token scores reduce the hidden
dimension as follows (``x`` = activation at the site, ``b`` = baseline activation, ``g`` = the
gradient of the target with respect to ``x``):

=======================  =====================================================  ========
method                   per-token score                                        signed
=======================  =====================================================  ========
``gradient``             ``‖g‖₂`` (L2 norm over hidden)                          no
``input_x_gradient``     ``Σ_hidden x ⊙ g`` (gradient × activation at depth)     yes
``integrated_gradients``  ``Σ_hidden (x − b) ⊙ ∫₀¹ g(b + α(x − b)) dα``          yes
``occlusion``            ``f(x) − f(x with this token's x replaced by b)``      yes
=======================  =====================================================  ========
"""

from __future__ import annotations

import difflib
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar

import numpy as np
import torch

from llmasos_widgets.attribution._residual import ResidualRunner
from llmasos_widgets.attribution._targets import ResolvedTarget

INTEGRATION_RULES = (
    "gausslegendre",
    "riemann_middle",
    "riemann_trapezoid",
    "riemann_left",
    "riemann_right",
)


def quadrature(rule: str, n_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes ``alpha`` in [0, 1] and weights (summing to 1) of an integration rule (float64).

    Node placement follows Captum's rules of the same names, so results compare one to one.
    """
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 1:
        raise ValueError(f"n_steps must be a positive int, got {n_steps!r}")
    if rule == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(n_steps)
        return 0.5 * (nodes + 1.0), 0.5 * weights
    if rule not in INTEGRATION_RULES:
        close = difflib.get_close_matches(rule, INTEGRATION_RULES, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"unknown integration rule {rule!r}{hint} valid: {', '.join(INTEGRATION_RULES)}"
        )
    if n_steps < 2:
        raise ValueError(f"{rule} needs n_steps >= 2, got {n_steps}")
    n = n_steps
    weights = np.full(n, 1.0 / n)
    if rule == "riemann_trapezoid":
        # Captum uses step 1/n here, so its weights sum to (n - 1)/n; ours integrate exactly.
        weights = np.full(n, 1.0 / (n - 1))
        weights[0] /= 2
        weights[-1] /= 2
        return np.linspace(0.0, 1.0, n), weights
    start, stop = {"riemann_left": (0, 1 - 1 / n), "riemann_right": (1 / n, 1)}.get(
        rule, (1 / (2 * n), 1 - 1 / (2 * n))
    )
    return np.linspace(start, stop, n), weights


@dataclass(frozen=True)
class AttributionContext:
    """Everything a method needs for one sequence (truncated after the target position)."""

    runner: ResidualRunner
    target: ResolvedTarget
    sites: list[int]
    embeds: torch.Tensor  # [1, token, hidden] the input's embeddings
    activations: dict[int, torch.Tensor]  # site -> [token, hidden] on the input
    baseline: dict[int, torch.Tensor] | None  # site -> [token, hidden] on the baseline
    f_x: float
    f_baseline: float | None
    n_steps: int
    integration: str
    internal_batch_size: int
    progress: Callable[[float], None] | None = None

    def report(self, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(done / max(total, 1))


@dataclass(frozen=True)
class SiteScores:
    """Method output: float32 ``[site, token]`` and, for integrated gradients, ``[site]`` deltas."""

    scores: torch.Tensor
    convergence_delta: torch.Tensor | None = None


class AttributionMethod(ABC):
    """Base class; subclasses set ``name`` and are registered with :func:`register_method`."""

    name: ClassVar[str]
    needs_baseline: ClassVar[bool] = False
    signed: ClassVar[bool] = True

    @abstractmethod
    def attribute(self, context: AttributionContext) -> SiteScores:
        """Scores for every site in ``context.sites``, in that order."""


_REGISTRY: dict[str, type[AttributionMethod]] = {}
METHODS: Mapping[str, type[AttributionMethod]] = MappingProxyType(_REGISTRY)
"""Registered methods by name (read-only view; filled once, at import)."""


def register_method(cls: type[AttributionMethod]) -> type[AttributionMethod]:
    """Class decorator: make ``cls`` available to ``attribute(method=cls.name)``."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"{cls.__name__} needs a non-empty class attribute 'name'")
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise ValueError(f"an attribution method named {name!r} is already registered")
    _REGISTRY[name] = cls
    return cls


def available_methods() -> list[str]:
    """Names accepted by ``attribute(method=...)``."""
    return sorted(_REGISTRY)


def get_method(name: str) -> AttributionMethod:
    """An instance of the method called ``name``; unknown names list the valid ones."""
    if name not in _REGISTRY:
        close = difflib.get_close_matches(str(name), list(_REGISTRY), n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"unknown attribution method {name!r}{hint} valid methods: "
            f"{', '.join(available_methods())}"
        )
    return _REGISTRY[name]()


def _chunks(total: int, size: int) -> list[slice]:
    """``total`` items in the fewest batches of at most ``size``, of near-equal sizes
    (50 steps at 49 per batch run as 25 + 25, not 49 + 1)."""
    n_batches = -(-total // max(size, 1))
    even = -(-total // max(n_batches, 1))
    return [slice(start, min(start + even, total)) for start in range(0, total, even)]


@register_method
class Gradient(AttributionMethod):
    """L2 norm of the target's gradient at each token (unsigned: how sensitive, not which way)."""

    name = "gradient"
    signed = False

    def attribute(self, context: AttributionContext) -> SiteScores:
        _, grads = context.runner.gradients(context.embeds, context.sites, context.target)
        context.report(1, 1)
        rows = [grads[site].float().norm(dim=-1) for site in context.sites]
        return SiteScores(torch.stack(rows))


@register_method
class InputXGradient(AttributionMethod):
    """``Σ_hidden x ⊙ ∂f/∂x`` per token: a first-order estimate of each token's contribution."""

    name = "input_x_gradient"

    def attribute(self, context: AttributionContext) -> SiteScores:
        acts, grads = context.runner.gradients(context.embeds, context.sites, context.target)
        context.report(1, 1)
        rows = [(acts[s].float() * grads[s].float()).sum(dim=-1) for s in context.sites]
        return SiteScores(torch.stack(rows))


@register_method
class IntegratedGradients(AttributionMethod):
    """Path integral of the gradient from the baseline to the input, at each residual site.

    At site ``i > 0`` the interpolation ``b + α(x − b)`` is applied to the output of decoder
    layer ``i`` (the baseline there is the baseline input's activation), which is Captum's
    ``LayerIntegratedGradients`` on that layer. The ``n_steps`` interpolation points are
    evaluated in batches of ``internal_batch_size``.
    """

    name = "integrated_gradients"
    needs_baseline = True

    def attribute(self, context: AttributionContext) -> SiteScores:
        if context.baseline is None or context.f_baseline is None:
            raise ValueError("integrated_gradients needs a baseline")
        alphas, weights = quadrature(context.integration, context.n_steps)
        runner, target = context.runner, context.target
        chunks = _chunks(len(alphas), context.internal_batch_size)
        total_work = len(chunks) * len(context.sites)
        rows, deltas = [], []
        for done_sites, site in enumerate(context.sites):
            x, b = context.activations[site], context.baseline[site]
            diff = x - b
            # float64 accumulation keeps the result independent of how steps are chunked
            mean_grad = torch.zeros(diff.shape, dtype=torch.float64, device=diff.device)
            for done_chunks, chunk in enumerate(chunks):
                alpha = torch.as_tensor(alphas[chunk], dtype=x.dtype, device=x.device)
                path = (b + alpha[:, None, None] * diff).requires_grad_(True)
                with torch.enable_grad():
                    values = target(runner.logits_with_site(site, path, context.embeds))
                    (grad,) = torch.autograd.grad(values.sum(), path)
                weight = torch.as_tensor(weights[chunk], dtype=torch.float64, device=x.device)
                mean_grad += (weight[:, None, None] * grad.double()).sum(dim=0)
                context.report(done_sites * len(chunks) + done_chunks + 1, total_work)
            row = (diff.double() * mean_grad).sum(dim=-1)
            rows.append(row.float())
            deltas.append(float(row.sum()) - (context.f_x - context.f_baseline))
        return SiteScores(torch.stack(rows), torch.tensor(deltas, dtype=torch.float32))


@register_method
class Occlusion(AttributionMethod):
    """Gradient-free cross-check: the target's drop when one token's activation is replaced
    by the baseline's at that site (``f(x) − f(x with token t occluded)``)."""

    name = "occlusion"
    needs_baseline = True

    def attribute(self, context: AttributionContext) -> SiteScores:
        if context.baseline is None:
            raise ValueError("occlusion needs a baseline")
        runner, target = context.runner, context.target
        n_tokens = context.embeds.shape[1]
        chunks = _chunks(n_tokens, context.internal_batch_size)
        total_work = len(chunks) * len(context.sites)
        rows = []
        for done_sites, site in enumerate(context.sites):
            x, b = context.activations[site], context.baseline[site]
            drops = []
            for done_chunks, chunk in enumerate(chunks):
                positions = torch.arange(chunk.start, chunk.stop, device=x.device)
                occluded = x.expand(len(positions), -1, -1).clone()
                rows_index = torch.arange(len(positions), device=x.device)
                occluded[rows_index, positions] = b[positions]
                with torch.no_grad():
                    values = target(runner.logits_with_site(site, occluded, context.embeds))
                drops.append(context.f_x - values.double())
                context.report(done_sites * len(chunks) + done_chunks + 1, total_work)
            rows.append(torch.cat(drops).float())
        return SiteScores(torch.stack(rows))
