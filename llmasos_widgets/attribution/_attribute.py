"""``attribute``: attributions of one next-token target to every token, at every residual site."""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch

from llmasos_widgets.attribution._methods import AttributionContext, AttributionMethod, get_method
from llmasos_widgets.attribution._progress import progress_reporter
from llmasos_widgets.attribution._residual import ResidualRunner
from llmasos_widgets.attribution._saliency import ConvergenceWarning, Saliency
from llmasos_widgets.targets import (
    ResolvedTarget,
    TargetFromOwnPass,
    TargetLike,
    resolve_position,
    resolve_target,
)
from llmasos_widgets.tracing import decoder_layers, eval_mode

BASELINES = ("zero", "pad", "unk")
"""Named baselines; a tensor of input embeddings is accepted too."""

DEFAULT_N_STEPS = 100
# Integrated gradients' default: with the "pad" baseline and the adaptive rule, 100 steps keep
# every row's completeness error within 5% of |f(x) - f(baseline)| on the bundled model's
# held-out prompts; 50 did not on a few (tests/integration/test_ig_convergence.py).
# Activation memory one batch of interpolation points may hold for the backward pass.
_BATCH_MEMORY_BUDGET = 2 << 30
# Above this much saved activation memory, gradient passes recompute each decoder layer in
# the backward instead of keeping its activations (same numbers, one more forward: ~1/3 more
# time). The interpolation batches' budget: SmolLM2-135M keeps 1.5 GB at T = 1024, where
# recomputing cost explain() 1x a plain forward of its 4x target (bench_real_model).
_RECOMPUTE_ABOVE = _BATCH_MEMORY_BUDGET


def attribute(
    model: Any,
    text: str | torch.Tensor,
    *,
    target: TargetLike = None,
    method: str = "gradient",
    baseline: str | torch.Tensor | np.ndarray | None = None,
    n_steps: int = DEFAULT_N_STEPS,
    position: int = -1,
    layers: str | int | Iterable[int] | None = None,
    integration: str = "adaptive",
    internal_batch_size: int | None = None,
    tokenizer: Any = None,
    truncate: bool = False,
    progress: bool | Callable[[float], None] | None = True,
) -> Saliency:
    """Attribute a next-token target at ``position`` to every token, at every residual site.

    Args:
        model: an ``ExplainableModel``, or a ``transformers`` causal LM with ``tokenizer=``.
        text: the input; or token ids ``[token]``/``[1, token]``.
        target: ``None`` (the model's own top prediction), a token (``" are"`` or an id),
            a ``(token, foil)`` pair for ``logit(token) - logit(foil)``, or a
            :class:`NextToken`/:class:`Predicted`/:class:`Contrast`. Token targets score the
            log-probability unless ``score="logit"``. A string must be exactly one token.
        method: one of :func:`available_methods`; default ``"gradient"``, the method that
            isolates the subject of subject-verb agreement on the bundled model (see
            docs/saliency.md for the measured comparison).
        baseline: ``"zero"`` (zero embeddings), ``"pad"``/``"unk"`` (that token's embedding
            at every position), or input embeddings ``[token, hidden]`` (also ``[hidden]`` or
            ``[1, token, hidden]``). Named baselines keep the ``<bos>`` token: a sequence
            without it is far off the training distribution, and ``<bos>`` then gets 0.
            Used by ``integrated_gradients`` and ``occlusion``. ``None`` (default): the
            method's own, see :func:`default_baseline` (``"pad"`` for integrated gradients,
            whose path from ``"zero"`` does not converge on the bundled model; ``"zero"`` for
            occlusion).
        n_steps: integration points of ``integrated_gradients``.
        position: the token whose next-token logits are explained (negative counts from
            the end). Later tokens cannot matter to a causal model and score 0.
        layers: residual sites: ``"all"``, ``"embeddings"`` (site 0), an int or ints
            (0 = embeddings, ``i`` = output of decoder layer ``i``; negative from the end).
            ``None`` (default): the method's ``default_layers``: ``"all"`` for the gradient
            methods (one backward pass gives every site), ``"embeddings"`` for integrated
            gradients and occlusion (each site costs its own passes: ask for ``"all"``).
        integration: ``"adaptive"`` (default: Gauss-Legendre panels placed where a
            forward-only probe of the path sees f change), or a fixed rule as in Captum:
            ``"gausslegendre"`` or a Riemann rule.
        internal_batch_size: interpolation points (or occluded copies) per forward pass;
            ``None`` picks one that keeps about 2 GiB of activations. Results do not depend
            on it beyond float rounding.
        progress: ``True`` (default): a ``tqdm.auto`` progress bar, labelled with the work
            (sites × steps × passes), once the call has run for 2 s; ``False``: none; a
            callable: called with the fraction done (0..1] after each batch, no bar.

    The model is put in eval mode for the call (each module's flag restored afterwards);
    gradients are taken with respect to activations only, so parameters' ``.grad`` and
    ``requires_grad`` are untouched, and no hook outlives the call.

    Warns:
        ConvergenceWarning: integrated gradients whose completeness error exceeds 5% of
            ``|f(x) − f(baseline)|`` at some row; the message (also
            :attr:`Saliency.convergence_warning`) names the rows and what to change.
    """
    from llmasos_widgets.models import as_explainable

    explainable = as_explainable(model, tokenizer)
    attribution_method = get_method(method)
    input_ids = as_input_ids(explainable, text, truncate=truncate)
    n_tokens = int(input_ids.shape[1])
    target_position = resolve_position(position, n_tokens)
    if internal_batch_size is not None and (
        isinstance(internal_batch_size, bool)
        or not isinstance(internal_batch_size, int)
        or internal_batch_size < 1
    ):
        raise ValueError(f"internal_batch_size must be a positive int, got {internal_batch_size!r}")

    hf_model = explainable.hf_model
    with torch.inference_mode(False), eval_mode(hf_model):
        # A causal model's logits at `position` do not see later tokens: drop them.
        kept = input_ids[:, : target_position + 1]
        runner = ResidualRunner(
            hf_model,
            kept,
            recompute=_activation_bytes(hf_model, n_rows=1, n_tokens=kept.shape[1])
            > _RECOMPUTE_ABOVE,
            offload=any(p.device.type == "cuda" for p in hf_model.parameters()),
        )
        sites = resolve_sites(
            attribution_method.default_layers if layers is None else layers, runner.n_sites
        )
        embeds = runner.embed()
        # only methods with a baseline read the input's activations; the others need the logits
        captured_sites = sites if attribution_method.needs_baseline else []
        context_target: ResolvedTarget | TargetFromOwnPass
        if attribution_method.target_in_own_pass:
            # the gradient pass's own forward gives the logits: no forward before it
            activations: dict[int, torch.Tensor] = {}
            f_x = math.nan
            context_target = TargetFromOwnPass(
                target, explainable.tokenizer, position=target_position
            )
        else:
            activations, logits = runner.capture(embeds, captured_sites)
            resolved = resolve_target(
                target, explainable.tokenizer, position=target_position, logits_at_position=logits
            )
            f_x = float(resolved(logits[None])[0])
            context_target = resolved

        baseline_acts, f_baseline, baseline_name = None, None, ""
        if attribution_method.needs_baseline:
            if baseline is None:
                baseline = default_baseline(attribution_method, explainable.tokenizer)
            baseline_embeds, baseline_name = _baseline_embeddings(
                baseline, runner, explainable.tokenizer, n_tokens
            )
            baseline_acts, baseline_logits = runner.capture(baseline_embeds, sites)
            f_baseline = float(context_target(baseline_logits[None])[0])
        batch = internal_batch_size or _default_batch_size(hf_model, runner, n_steps)
        report, bar = progress_reporter(
            progress, *attribution_method.work(len(sites), int(kept.shape[1]), n_steps, integration)
        )
        context = AttributionContext(
            runner=runner,
            target=context_target,
            sites=sites,
            embeds=embeds,
            activations=activations,
            baseline=baseline_acts,
            f_x=f_x,
            f_baseline=f_baseline,
            n_steps=n_steps,
            integration=integration,
            internal_batch_size=batch,
            progress=report,
        )
        try:
            result = attribution_method.attribute(context)
        finally:
            if bar is not None:
                bar.close()
        if isinstance(context_target, TargetFromOwnPass):
            if context_target.resolved is None or context_target.logits is None:
                raise RuntimeError(f"{attribution_method.name} did not score its target")
            resolved, logits = context_target.resolved, context_target.logits
            f_x = float(resolved(logits[None])[0])
        probability = float(torch.softmax(logits.float(), dim=-1)[resolved.token_id])

    scores = np.zeros((len(sites), n_tokens), dtype=np.float32)
    scores[:, : target_position + 1] = result.scores.detach().cpu().numpy()
    delta = result.convergence_delta
    integrates = attribution_method.integrates
    saliency = Saliency(
        scores=scores,
        layers=np.asarray(sites, dtype=np.int64),
        tokens=tuple(explainable.tokens(input_ids)),
        token_ids=input_ids[0].detach().cpu().numpy().astype(np.int64),
        method=attribution_method.name,
        baseline=baseline_name,
        target=resolved.description,
        target_position=target_position,
        target_token_ids=tuple(
            token for token in (resolved.token_id, resolved.foil_id) if token is not None
        ),
        target_probability=min(probability, 1.0),
        f_x=f_x,
        f_baseline=f_baseline,
        convergence_delta=None if delta is None else delta.cpu().numpy().astype(np.float32),
        n_steps=n_steps if integrates else None,
        integration=integration if integrates else None,
    )
    if saliency.convergence_warning:
        warnings.warn(
            saliency.convergence_warning, ConvergenceWarning, stacklevel=_user_stacklevel()
        )
    return saliency


def _user_stacklevel() -> int:
    """``stacklevel`` that attributes a warning raised in ``attribute`` to the first caller
    outside this package (the user's line, also through ``explain``), so each call site
    reports its own and the message points where the fix goes."""
    frame, level = sys._getframe(1), 1  # attribute's own frame is stacklevel 1
    while frame.f_back is not None and str(frame.f_globals.get("__name__", "")).startswith(
        "llmasos_widgets."
    ):
        frame, level = frame.f_back, level + 1
    return level


def default_baseline(method: str | AttributionMethod, tokenizer: Any) -> str:
    """The baseline ``attribute(..., baseline=None)`` uses for ``method``: the method's
    ``default_baseline`` (``"pad"`` for integrated gradients, ``"zero"`` otherwise); a token
    baseline the tokenizer lacks falls back to ``"unk"``, then ``"zero"`` (the convergence
    warning then says if that path did not converge)."""
    preferred = (get_method(method) if isinstance(method, str) else method).default_baseline
    for name in (preferred, "unk", "zero"):
        if name == "zero" or getattr(tokenizer, f"{name}_token_id", None) is not None:
            return name
    return "zero"


def as_input_ids(explainable: Any, text: str | torch.Tensor, *, truncate: bool) -> torch.Tensor:
    if isinstance(text, torch.Tensor):
        ids = text.reshape(1, -1) if text.ndim == 1 else text
        if ids.ndim != 2 or ids.shape[0] != 1 or ids.shape[1] == 0:
            raise ValueError(f"token ids must be [token] or [1, token], got {tuple(text.shape)}")
        if ids.dtype != torch.long:
            raise TypeError(f"token ids must be int64, got {ids.dtype}")
        return ids.to(explainable.device)
    return explainable.encode(text, truncate=truncate)


def resolve_sites(layers: str | int | Iterable[int], n_sites: int) -> list[int]:
    """Residual sites 0..n_sites-1 from the ``layers`` argument, ascending and distinct."""
    if isinstance(layers, str):
        named = {"all": list(range(n_sites)), "embeddings": [0]}
        if layers not in named:
            raise ValueError(f"layers must be 'all', 'embeddings', an int or ints; got {layers!r}")
        return named[layers]
    requested = [layers] if isinstance(layers, int) else list(layers)
    sites = set()
    for site in requested:
        if isinstance(site, bool) or not isinstance(site, int | np.integer):
            raise TypeError(f"layers must hold ints, got {site!r}")
        if not -n_sites <= site < n_sites:
            raise ValueError(
                f"layer {site} is out of range: sites are 0 (embeddings) .. {n_sites - 1} "
                f"(output of the last decoder layer)"
            )
        sites.add(int(site) % n_sites)
    if not sites:
        raise ValueError("layers is empty; pass 'all' or at least one site")
    return sorted(sites)


def _baseline_embeddings(
    baseline: str | torch.Tensor | np.ndarray, runner: ResidualRunner, tokenizer: Any, n_full: int
) -> tuple[torch.Tensor, str]:
    """Baseline input embeddings ``[1, token, hidden]`` (truncated like the input) and a name."""
    embeds = runner.embed()
    n_tokens, hidden = embeds.shape[1], embeds.shape[2]
    if isinstance(baseline, np.ndarray):
        baseline = torch.from_numpy(baseline)
    if isinstance(baseline, torch.Tensor):
        tensor = baseline.detach()
        if tensor.ndim == 3 and tensor.shape[0] == 1:
            tensor = tensor[0]
        if tensor.shape == (hidden,):
            tensor = tensor.expand(n_tokens, hidden)
        elif tensor.ndim == 2 and tensor.shape in ((n_full, hidden), (n_tokens, hidden)):
            tensor = tensor[:n_tokens]
        else:
            raise ValueError(
                f"a baseline tensor must be [hidden], [token, hidden] or [1, token, hidden] "
                f"with token={n_full}, hidden={hidden}; got {tuple(baseline.shape)}"
            )
        if not tensor.is_floating_point():
            raise TypeError(f"a baseline tensor must be floating point, got {tensor.dtype}")
        # explicit, documented cast: the baseline lives in the model's embedding space
        return tensor.to(device=embeds.device, dtype=embeds.dtype)[None].clone(), "tensor"
    if baseline not in BASELINES:
        raise ValueError(
            f"unknown baseline {baseline!r}; valid: {', '.join(BASELINES)}, or a tensor of "
            f"input embeddings"
        )
    keep = _bos_mask(runner.input_ids, tokenizer)[0]  # [token]
    if baseline == "zero":
        replaced = torch.zeros_like(embeds)
    else:
        token_id = getattr(tokenizer, f"{baseline}_token_id", None)
        if token_id is None:
            others = [b for b in BASELINES if b != baseline]
            raise ValueError(
                f"the tokenizer has no {baseline} token; use baseline={others[0]!r} or "
                f"{others[1]!r}, or pass a tensor"
            )
        replaced = runner.embed(torch.full_like(runner.input_ids, int(token_id)))
    return torch.where(keep[None, :, None], embeds, replaced), baseline


def _bos_mask(input_ids: torch.Tensor, tokenizer: Any) -> torch.Tensor:
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None:
        return torch.zeros_like(input_ids, dtype=torch.bool)
    return input_ids == bos


def _activation_bytes(hf_model: Any, *, n_rows: int, n_tokens: int) -> int:
    """Rough activation memory a plain backward keeps for ``n_rows`` sequences (float32)."""
    config = hf_model.config
    hidden = int(config.hidden_size)
    intermediate = int(getattr(config, "intermediate_size", 4 * hidden) or 4 * hidden)
    n_layers = len(decoder_layers(hf_model))
    # ~10 hidden-sized and ~4 intermediate-sized tensors are kept per token per layer
    return n_rows * n_layers * n_tokens * (10 * hidden + 4 * intermediate) * 4


def _default_batch_size(hf_model: Any, runner: ResidualRunner, n_steps: int) -> int:
    """Rows per pass so that saved activations stay near :data:`_BATCH_MEMORY_BUDGET`."""
    n_tokens = int(runner.input_ids.shape[1])
    per_row = _activation_bytes(hf_model, n_rows=1, n_tokens=n_tokens)
    rows = max(1, _BATCH_MEMORY_BUDGET // max(per_row, 1))
    return int(min(rows, max(n_steps, n_tokens)))
