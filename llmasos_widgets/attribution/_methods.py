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
from functools import partial
from types import MappingProxyType
from typing import ClassVar, Literal

import numpy as np
import torch

from llmasos_widgets._gather import stack_on
from llmasos_widgets.attribution._residual import ResidualRunner
from llmasos_widgets.targets import ResolvedTarget, TargetFromOwnPass

ADAPTIVE = "adaptive"
INTEGRATION_RULES = (
    ADAPTIVE,
    "gausslegendre",
    "riemann_middle",
    "riemann_trapezoid",
    "riemann_left",
    "riemann_right",
)


# Adaptive rule: Gauss-Legendre nodes per panel, refinement rounds of the forward-only probe,
# and the narrowest probe cell that is still split.
_ADAPTIVE_NODES_PER_PANEL = 2
_ADAPTIVE_ROUNDS = 8
_ADAPTIVE_MIN_WIDTH = 1e-6


def _check_steps(n_steps: int) -> None:
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 1:
        raise ValueError(f"n_steps must be a positive int, got {n_steps!r}")


def composite_gausslegendre(edges: np.ndarray, n_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """``n_steps`` Gauss-Legendre nodes spread over the panels ``edges[i]..edges[i + 1]``
    (as evenly as possible, earlier panels taking the remainder); weights sum to 1."""
    _check_steps(n_steps)
    edges = np.asarray(edges, dtype=np.float64)
    n_panels = len(edges) - 1
    if n_panels < 1 or n_panels > n_steps or np.any(np.diff(edges) < 0):
        raise ValueError(f"need 1..{n_steps} non-decreasing panels, got edges {edges!r}")
    counts = np.full(n_panels, n_steps // n_panels)
    counts[: n_steps % n_panels] += 1
    alphas, weights = [], []
    for lo, hi, count in zip(edges[:-1], edges[1:], counts, strict=True):
        nodes, node_weights = np.polynomial.legendre.leggauss(int(count))
        alphas.append(lo + 0.5 * (hi - lo) * (nodes + 1.0))
        weights.append(0.5 * (hi - lo) * node_weights)
    return np.concatenate(alphas), np.concatenate(weights)


def adaptive_panels(grid: np.ndarray, values: np.ndarray, n_panels: int) -> np.ndarray:
    """Panel edges over [0, 1] given the target ``values`` at the sorted points ``grid``.

    Each panel gets an equal share of ``length + variation`` (the path's length fraction
    plus its share of the total variation ``Σ|Δf|``), so panels are narrow where f moves
    fast and wide where it is flat: half the nodes follow the length, half the variation.
    """
    grid = np.asarray(grid, dtype=np.float64)
    change = np.abs(np.diff(np.asarray(values, dtype=np.float64)))
    total = change.sum()
    mass = np.diff(grid) + (change / total if np.isfinite(total) and total > 0 else 0.0)
    cumulative = np.concatenate([[0.0], np.cumsum(mass)])
    edges = np.interp(np.linspace(0.0, cumulative[-1], n_panels + 1), cumulative, grid)
    edges[0], edges[-1] = 0.0, 1.0
    return np.maximum.accumulate(edges)


def quadrature(rule: str, n_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes ``alpha`` in [0, 1] and weights (summing to 1) of a fixed integration rule
    (float64); ``"adaptive"`` depends on the path, see :class:`IntegratedGradients`.

    Node placement follows Captum's rules of the same names, so results compare one to one.
    """
    _check_steps(n_steps)
    if rule == ADAPTIVE:
        raise ValueError("the adaptive rule's nodes depend on the path; it has no fixed nodes")
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
    target: ResolvedTarget | TargetFromOwnPass  # the latter: methods with target_in_own_pass
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
    # what ``attribute(..., baseline=None)`` uses (see ``default_baseline``)
    default_baseline: ClassVar[str] = "zero"
    signed: ClassVar[bool] = True
    # what ``attribute(..., layers=None)`` uses: "all" where one backward gives every site,
    # "embeddings" where each site costs its own passes (docs/saliency.md, "Cost")
    default_layers: ClassVar[str] = "all"
    # True where the method's whole work is one ``runner.gradients`` pass on the input: the
    # target is then resolved from that pass's logits (``TargetFromOwnPass``), and
    # ``attribute`` runs no no-grad forward first (``context.f_x`` is NaN, not read)
    target_in_own_pass: ClassVar[bool] = False
    # True where ``n_steps`` and ``integration`` shape the result (the Saliency records them)
    integrates: ClassVar[bool] = False
    # how ``attribute_generation`` scores every generated token at once: "gradient" (one
    # backward of the sequence replicated per target, see GradientMethod), "occlusion" (one
    # occluded forward per token scores all targets), or None (one ``attribute`` per target)
    generation_batch: ClassVar[Literal["gradient", "occlusion"] | None] = None

    def work(self, n_sites: int, n_tokens: int, n_steps: int, integration: str) -> tuple[int, str]:
        """The work of one call, known before it starts: ``(units, label)``. Progress is
        reported in these units (``AttributionContext.report``); the label says what they
        are (sites × steps × passes), and is the progress bar's label."""
        return 1, f"{self.name}: 1 forward+backward pass for {_sites(n_sites)}"

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


def _sites(n_sites: int) -> str:
    return f"{n_sites} site" + ("" if n_sites == 1 else "s")


def _report_from(context: AttributionContext, start: int, total: int, done: int) -> None:
    context.report(start + done, total)


def _chunks(total: int, size: int) -> list[slice]:
    """``total`` items in the fewest batches of at most ``size``, of near-equal sizes
    (50 steps at 49 per batch run as 25 + 25, not 49 + 1)."""
    n_batches = -(-total // max(size, 1))
    even = -(-total // max(n_batches, 1))
    return [slice(start, min(start + even, total)) for start in range(0, total, even)]


class GradientMethod(AttributionMethod):
    """A method whose whole work is one backward of the input: each token's score reduces its
    activation ``x`` and gradient ``g`` at a site over hidden (:meth:`token_scores`).
    ``attribute_generation`` runs it for every generated token in one replicated batch."""

    target_in_own_pass = True
    generation_batch = "gradient"

    @staticmethod
    @abstractmethod
    def token_scores(activation: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
        """``[..., token, hidden]`` activation and gradient at a site -> ``[..., token]``."""

    def attribute(self, context: AttributionContext) -> SiteScores:
        acts, grads = context.runner.gradients(context.embeds, context.sites, context.target)
        context.report(1, 1)
        rows = [self.token_scores(acts[s], grads[s]) for s in context.sites]
        return SiteScores(stack_on(rows, "cpu"))


@register_method
class Gradient(GradientMethod):
    """L2 norm of the target's gradient at each token (unsigned: how sensitive, not which way)."""

    name = "gradient"
    signed = False

    @staticmethod
    def token_scores(activation: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
        return gradient.float().norm(dim=-1)


@register_method
class InputXGradient(GradientMethod):
    """``Σ_hidden x ⊙ ∂f/∂x`` per token: a first-order estimate of each token's contribution."""

    name = "input_x_gradient"

    @staticmethod
    def token_scores(activation: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
        return (activation.float() * gradient.float()).sum(dim=-1)


@register_method
class IntegratedGradients(AttributionMethod):
    """Path integral of the gradient from the baseline to the input, at each residual site.

    At site ``i > 0`` the interpolation ``b + α(x − b)`` is applied to the output of decoder
    layer ``i`` (the baseline there is the baseline input's activation), which is Captum's
    ``LayerIntegratedGradients`` on that layer. The ``n_steps`` interpolation points are
    evaluated in batches of ``internal_batch_size``.

    ``integration="adaptive"`` (the default) places the nodes per site: a forward-only
    probe evaluates f at ``n_steps + 1`` evenly spaced points of the path, then repeatedly
    bisects the cells where f changes more than 4× the average change per cell (at most
    ``n_steps // 4`` cells a round, :data:`_ADAPTIVE_ROUNDS` rounds); the path is cut into
    ``n_steps // 2`` panels of equal length-plus-variation (:func:`adaptive_panels`), each
    integrated with 2 Gauss-Legendre nodes. It is still a quadrature of the IG integral
    (the nodes merely follow the path), with the same ``n_steps`` gradient evaluations plus
    at most ``n_steps + 1 + 8·n_steps/4`` forward-only ones.
    """

    name = "integrated_gradients"
    needs_baseline = True
    # From "zero" the path crosses RMSNorm's eps region and does not converge on the bundled
    # model with 50-64 steps (docs/saliency.md, tests/integration/test_ig_convergence.py).
    default_baseline = "pad"
    default_layers = "embeddings"
    integrates = True

    def work(self, n_sites: int, n_tokens: int, n_steps: int, integration: str) -> tuple[int, str]:
        # per site: the n_steps + 1 points of the forward-only probe (adaptive rule; its
        # refinement rounds, at most 2·n_steps more forward-only points, are not counted)
        # and the n_steps gradient evaluations (forward + backward)
        probe = n_steps + 1 if integration == ADAPTIVE else 0
        per_site = probe + n_steps
        passes = f"({n_steps} forward+backward + {probe} forward)" if probe else str(n_steps)
        return n_sites * per_site, f"{self.name}: {_sites(n_sites)} × {passes} evaluations"

    def attribute(self, context: AttributionContext) -> SiteScores:
        if context.baseline is None or context.f_baseline is None:
            raise ValueError("integrated_gradients needs a baseline")
        adaptive = context.integration == ADAPTIVE
        if adaptive:
            _check_steps(context.n_steps)
        else:
            alphas, weights = quadrature(context.integration, context.n_steps)
        runner, target = context.runner, context.target
        chunks = _chunks(context.n_steps, context.internal_batch_size)
        per_site = context.n_steps + (context.n_steps + 1 if adaptive else 0)
        total_work = per_site * len(context.sites)
        rows, deltas = [], []
        for done_sites, site in enumerate(context.sites):
            x = context.activations[site]  # on the device of the site's layer
            # the path is built in float32 and only the point handed to the model takes its
            # dtype: bf16 nodes (8 mantissa bits) would move alpha by up to 0.4%
            b, diff = context.baseline[site].float(), x.float() - context.baseline[site].float()
            done = done_sites * per_site
            if adaptive:
                alphas, weights = self._adaptive_rule(
                    context,
                    site,
                    b,
                    diff,
                    x.dtype,
                    partial(_report_from, context, done, total_work),
                )
                done += context.n_steps + 1
            # float64 accumulation keeps the result independent of how steps are chunked
            mean_grad = torch.zeros(diff.shape, dtype=torch.float64, device=diff.device)
            for chunk in chunks:
                alpha = torch.as_tensor(alphas[chunk], dtype=torch.float32, device=x.device)
                path = (b + alpha[:, None, None] * diff).to(x.dtype).requires_grad_(True)
                with torch.enable_grad():
                    values = target(runner.logits_with_site(site, path, context.embeds))
                    (grad,) = torch.autograd.grad(values.sum(), path)
                weight = torch.as_tensor(weights[chunk], dtype=torch.float64, device=x.device)
                mean_grad += (weight[:, None, None] * grad.double()).sum(dim=0)
                context.report(done + chunk.stop, total_work)
            row = (diff.double() * mean_grad).sum(dim=-1)
            rows.append(row.float())
            deltas.append(float(row.sum()) - (context.f_x - context.f_baseline))
        return SiteScores(stack_on(rows, "cpu"), torch.tensor(deltas, dtype=torch.float32))

    @staticmethod
    def _adaptive_rule(
        context: AttributionContext,
        site: int,
        b: torch.Tensor,
        diff: torch.Tensor,
        model_dtype: torch.dtype,
        report: Callable[[int], None],
    ) -> tuple[np.ndarray, np.ndarray]:
        """Nodes and weights (float64) for one site; ``b`` and ``diff`` are float32.
        ``report(n)``: the first ``n`` points of the initial probe are done."""
        n_steps = context.n_steps

        def probe(points: np.ndarray, first: bool = False) -> np.ndarray:
            values = []
            for chunk in _chunks(len(points), context.internal_batch_size):
                alpha = torch.as_tensor(points[chunk], dtype=torch.float32, device=b.device)
                path = (b + alpha[:, None, None] * diff).to(model_dtype)
                with torch.no_grad():
                    logits = context.runner.logits_with_site(site, path, context.embeds)
                    values.append(context.target(logits).double().cpu().numpy())
                if first:
                    report(chunk.stop)
            return np.concatenate(values)

        grid = np.linspace(0.0, 1.0, n_steps + 1)
        values = probe(grid, first=True)
        for _ in range(_ADAPTIVE_ROUNDS):
            change = np.abs(np.diff(values))
            threshold = 4.0 * change.sum() / len(change)
            wide = np.diff(grid) > _ADAPTIVE_MIN_WIDTH
            order = np.argsort(-change, kind="stable")[: max(1, n_steps // 4)]
            cells = order[(change[order] > threshold) & wide[order]]
            if len(cells) == 0 or not np.isfinite(threshold):
                break
            middles = 0.5 * (grid[cells] + grid[cells + 1])
            grid = np.concatenate([grid, middles])
            values = np.concatenate([values, probe(middles)])
            order = np.argsort(grid, kind="stable")
            grid, values = grid[order], values[order]
        n_panels = max(1, n_steps // _ADAPTIVE_NODES_PER_PANEL)
        return composite_gausslegendre(adaptive_panels(grid, values, n_panels), n_steps)


@register_method
class Occlusion(AttributionMethod):
    """Gradient-free cross-check: the target's drop when one token's activation is replaced
    by the baseline's at that site (``f(x) − f(x with token t occluded)``)."""

    name = "occlusion"
    needs_baseline = True
    default_layers = "embeddings"
    generation_batch = "occlusion"

    def work(self, n_sites: int, n_tokens: int, n_steps: int, integration: str) -> tuple[int, str]:
        return n_sites * n_tokens, (
            f"{self.name}: {_sites(n_sites)} × {n_tokens} occluded tokens, forward evaluations"
        )

    def attribute(self, context: AttributionContext) -> SiteScores:
        if context.baseline is None:
            raise ValueError("occlusion needs a baseline")
        runner, target = context.runner, context.target
        n_tokens = context.embeds.shape[1]
        chunks = _chunks(n_tokens, context.internal_batch_size)
        total_work = n_tokens * len(context.sites)
        rows = []
        for done_sites, site in enumerate(context.sites):
            x, b = context.activations[site], context.baseline[site]
            drops = []
            for chunk in chunks:
                positions = torch.arange(chunk.start, chunk.stop, device=x.device)
                occluded = x.expand(len(positions), -1, -1).clone()
                rows_index = torch.arange(len(positions), device=x.device)
                occluded[rows_index, positions] = b[positions]
                with torch.no_grad():
                    values = target(runner.logits_with_site(site, occluded, context.embeds))
                drops.append(context.f_x - values.double())
                context.report(done_sites * n_tokens + chunk.stop, total_work)
            rows.append(torch.cat(drops).float())
        return SiteScores(stack_on(rows, "cpu"))
