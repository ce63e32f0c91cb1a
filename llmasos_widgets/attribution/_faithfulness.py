"""Faithfulness of a saliency map: deletion and insertion curves against random orders.

A map is *faithful* when the tokens it ranks first are the ones the target depends on. We test
that causally, on the input the map explains (ERASER's comprehensiveness / sufficiency, and the
deletion / insertion curves of RISE), always against the same model call the map explains:

* ``order`` -- the candidate tokens (positions ``0..target_position`` except ``<bos>``, which
  every named baseline keeps, and except the target position with ``keep_target_token``),
  sorted by the map's score at one residual site (default ``emb``), highest first (signed
  methods: most supporting first; ties: earlier position first).
* ``deletion[k]`` -- the target ``f`` with the first ``k`` tokens of ``order`` replaced by the
  baseline (``pad``: that token's embedding, as integrated gradients use it), ``k = 0..n``.
  ``deletion[0] = f(x)``, ``deletion[n] = f(b)`` (every candidate replaced).
* ``insertion[k]`` -- ``f`` of the all-baseline input with the first ``k`` tokens put back.
* ``*_random`` -- the same curves averaged over ``n_random`` seeded random orders.

With ``x_k = k / n`` and the trapezoid rule on ``[0, 1]`` (so the scores do not depend on
``n``), and ``gap = f(x) − f(b)``:

* ``comprehensiveness = ∫ (deletion_random − deletion) dx / gap`` -- how much faster the target
  falls when the map's tokens go first than when random ones do;
* ``sufficiency = ∫ (insertion − insertion_random) dx / gap`` -- how much faster it comes back
  when the map's tokens are restored first;
* ``score = (comprehensiveness + sufficiency) / 2``.

0 means "no better than random", positive better, negative worse. The curves need not be
monotone (deleting a token can raise the target), so the scores are not bounded by ±1, but
on the bundled model they lie well inside. ``keep_target_token=True`` also keeps the token at
the target position (deleting it changes the question the model answers).

Every masked input of every curve is one batch row; identical rows (the shared endpoints) are
evaluated once, so one call costs ``⌈rows / batch_rows⌉`` forwards: ``rows ≤ 2 (n + 1)
(n_random + 1)``, one forward for ``n ≤ 6`` tokens at the defaults.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from llmasos_widgets.attribution._attribute import _bos_mask, attribute, default_baseline
from llmasos_widgets.attribution._residual import ResidualRunner
from llmasos_widgets.attribution._saliency import ConvergenceWarning, Saliency
from llmasos_widgets.targets import ResolvedTarget, TargetLike
from llmasos_widgets.tracing import eval_mode

DEFAULT_N_RANDOM = 16
"""Random orders averaged for the reference curves."""
DEFAULT_BATCH_ROWS = 256
"""Masked copies of the input per forward pass."""
_F_X_TOLERANCE = 1e-3
"""Relative mismatch between the saliency's ``f_x`` and ours that means another model/input."""


@dataclass(frozen=True, kw_only=True)
class Faithfulness:
    """Deletion/insertion curves of one saliency map and their scores (module docstring).

    Attributes:
        method, target: of the saliency map tested.
        baseline: what replaced deleted tokens (``"pad"``, ``"unk"`` or ``"zero"``).
        site: residual site whose scores set the order (0 = ``emb``).
        order: int64 ``[n]`` candidate positions, most salient first.
        deletion, deletion_random, insertion, insertion_random: float32 ``[n + 1]`` target
            values after ``k = 0..n`` steps.
        f_x, f_baseline: ``f`` on the input and with every candidate replaced.
        comprehensiveness, sufficiency, score: normalised areas (NaN when ``f_x == f_baseline``:
            then nothing can be normalised, see :attr:`note`).
        n_random, seed: the random reference orders.
        note: ``""`` or why the scores are NaN.
    """

    method: str
    target: str
    baseline: str
    site: int
    order: np.ndarray
    deletion: np.ndarray
    deletion_random: np.ndarray
    insertion: np.ndarray
    insertion_random: np.ndarray
    f_x: float
    f_baseline: float
    comprehensiveness: float
    sufficiency: float
    score: float
    n_random: int
    seed: int
    note: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.order, np.ndarray) or self.order.dtype != np.int64:
            raise ValueError("order must be an int64 numpy array of token positions")
        n = int(self.order.shape[0])
        if n < 1:
            raise ValueError("a faithfulness test needs at least one candidate token")
        for name in ("deletion", "deletion_random", "insertion", "insertion_random"):
            curve = getattr(self, name)
            if not isinstance(curve, np.ndarray) or curve.dtype != np.float32:
                raise ValueError(f"{name} must be a float32 numpy array")
            if curve.shape != (n + 1,):
                raise ValueError(f"{name} has shape {curve.shape}; need ({n + 1},) for {n} tokens")
            curve.setflags(write=False)
        self.order.setflags(write=False)
        if self.n_random < 1:
            raise ValueError(f"n_random must be >= 1, got {self.n_random}")

    @property
    def fractions(self) -> np.ndarray:
        """float64 ``[n + 1]``: the x axis, ``k / n``."""
        return np.linspace(0.0, 1.0, self.order.shape[0] + 1)

    @property
    def summary(self) -> str:
        """One line: ``gradient: faithfulness 0.41 (comprehensiveness 0.52, sufficiency 0.30)``."""
        if self.note:
            return f"{self.method}: faithfulness n/a ({self.note})"
        return (
            f"{self.method}: faithfulness {self.score:.2f} (comprehensiveness "
            f"{self.comprehensiveness:.2f}, sufficiency {self.sufficiency:.2f})"
        )

    def __str__(self) -> str:
        return self.summary

    def to_json(self) -> dict[str, Any]:
        """Scalars and curves as plain JSON (small: ``4 × (n + 1)`` floats)."""
        return {
            "method": self.method,
            "target": self.target,
            "baseline": self.baseline,
            "site": self.site,
            "order": self.order.tolist(),
            "deletion": self.deletion.tolist(),
            "deletion_random": self.deletion_random.tolist(),
            "insertion": self.insertion.tolist(),
            "insertion_random": self.insertion_random.tolist(),
            "f_x": self.f_x,
            "f_baseline": self.f_baseline,
            "comprehensiveness": _json_float(self.comprehensiveness),
            "sufficiency": _json_float(self.sufficiency),
            "score": _json_float(self.score),
            "n_random": self.n_random,
            "seed": self.seed,
            "note": self.note,
        }


@dataclass(frozen=True)
class FaithfulnessComparison:
    """Several methods' :class:`Faithfulness` on one input and target, best first."""

    results: tuple[Faithfulness, ...]
    notes: dict[str, str] = field(default_factory=dict)
    """method -> a caveat (an integrated-gradients map that did not converge)."""

    @property
    def best(self) -> str:
        """The method with the highest score (NaN scores rank last)."""
        return self.results[0].method

    @property
    def line(self) -> str:
        """``faithfulness (vs random order): gradient 0.41 > occlusion 0.22 > ...``."""
        parts = []
        for result in self.results:
            value = "n/a" if math.isnan(result.score) else f"{result.score:.2f}"
            caveat = " (not converged)" if result.method in self.notes else ""
            parts.append(f"{result.method} {value}{caveat}")
        return "faithfulness (vs random order): " + " > ".join(parts)

    def __str__(self) -> str:
        return self.line

    def __getitem__(self, method: str) -> Faithfulness:
        for result in self.results:
            if result.method == method:
                return result
        raise KeyError(f"{method!r} was not compared; compared: {[r.method for r in self.results]}")


def faithfulness(
    model: Any,
    saliency: Saliency,
    *,
    baseline: str | None = None,
    site: int = 0,
    n_random: int = DEFAULT_N_RANDOM,
    seed: int = 0,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    keep_target_token: bool = False,
    tokenizer: Any = None,
) -> Faithfulness:
    """Deletion/insertion curves and scores of ``saliency`` (see the module docstring).

    Args:
        model: the ``ExplainableModel`` (or ``transformers`` model with ``tokenizer=``) the
            saliency was computed with; its ``f_x`` is checked against ours.
        saliency: the map to test; its own target and target position are used.
        baseline: ``"pad"``, ``"unk"`` or ``"zero"``; ``None``: the ``pad`` baseline of
            integrated gradients (``default_baseline``) for every method, so scores of
            different methods are comparable.
        site: the residual site whose scores set the order (must be in ``saliency.sites``).
        n_random: random orders averaged for the reference curves (seeded by ``seed``).
        batch_rows: masked inputs per forward pass.
    """
    from llmasos_widgets.models import as_explainable

    if not isinstance(saliency, Saliency):
        raise TypeError(f"saliency must be a Saliency, got {type(saliency).__name__}")
    if isinstance(n_random, bool) or not isinstance(n_random, int) or n_random < 1:
        raise ValueError(f"n_random must be a positive int, got {n_random!r}")
    if isinstance(batch_rows, bool) or not isinstance(batch_rows, int) or batch_rows < 1:
        raise ValueError(f"batch_rows must be a positive int, got {batch_rows!r}")
    explainable = as_explainable(model, tokenizer)
    tok = explainable.tokenizer
    baseline = baseline or default_baseline("integrated_gradients", tok)
    scores = saliency.at(site)  # KeyError names the computed sites
    position = saliency.target_position
    input_ids = torch.tensor(saliency.token_ids[: position + 1].tolist(), dtype=torch.long)[None]

    hf_model = explainable.hf_model
    with torch.inference_mode(False), torch.no_grad(), eval_mode(hf_model):
        runner = ResidualRunner(hf_model, input_ids.to(explainable.device))
        embeds = runner.embed()
        replaced = _baseline_rows(runner, tok, baseline)
        kept = _bos_mask(runner.input_ids, tok)[0].cpu().numpy()
        if keep_target_token:
            kept[position] = True
        candidates = np.flatnonzero(~kept)
        if candidates.size == 0:
            raise ValueError("nothing to delete: the only token before the target is <bos>")
        order = _salient_order(scores[: position + 1], candidates)
        rng = np.random.default_rng(seed)
        orders = [order] + [rng.permutation(candidates) for _ in range(n_random)]
        n_tokens = int(input_ids.shape[1])
        masks = np.concatenate([_curve_masks(o, n_tokens, candidates) for o in orders])
        unique, inverse = np.unique(masks, axis=0, return_inverse=True)
        target = _target_of(saliency)
        values = _evaluate(runner, embeds, replaced, unique, target, batch_rows)[
            inverse.reshape(-1)
        ]

    n = candidates.size
    curves = values.reshape(len(orders), 2, n + 1)  # [order, deletion|insertion, k]
    f_x, f_b = float(curves[0, 0, 0]), float(curves[0, 0, -1])
    if abs(f_x - saliency.f_x) > _F_X_TOLERANCE * max(1.0, abs(saliency.f_x)):
        raise ValueError(
            f"this saliency says f(x) = {saliency.f_x:.6g} but the model gives {f_x:.6g} on its "
            f"tokens: pass the model the saliency was computed with"
        )
    deletion, insertion = curves[0, 0], curves[0, 1]
    deletion_random, insertion_random = curves[1:, 0].mean(0), curves[1:, 1].mean(0)
    x = np.linspace(0.0, 1.0, n + 1)
    gap = f_x - f_b
    note = ""
    if abs(gap) <= 1e-6 * max(1.0, abs(f_x)):
        comprehensiveness = sufficiency = math.nan
        note = f"the baseline leaves the target unchanged (f(x) = f(b) = {f_x:.4g})"
    else:
        comprehensiveness = _area(deletion_random - deletion, x) / gap
        sufficiency = _area(insertion - insertion_random, x) / gap
    return Faithfulness(
        method=saliency.method,
        target=saliency.target,
        baseline=baseline,
        site=site,
        order=order.astype(np.int64),
        deletion=deletion.astype(np.float32),
        deletion_random=deletion_random.astype(np.float32),
        insertion=insertion.astype(np.float32),
        insertion_random=insertion_random.astype(np.float32),
        f_x=f_x,
        f_baseline=f_b,
        comprehensiveness=comprehensiveness,
        sufficiency=sufficiency,
        score=(comprehensiveness + sufficiency) / 2,
        n_random=n_random,
        seed=seed,
        note=note,
    )


def compare_faithfulness(
    model: Any,
    text: str | torch.Tensor,
    *,
    methods: Iterable[str] | None = None,
    target: TargetLike = None,
    position: int = -1,
    saliencies: Sequence[Saliency] = (),
    tokenizer: Any = None,
    **options: Any,
) -> FaithfulnessComparison:
    """Attribute ``text`` with each of ``methods`` (default: every registered one) and test each
    map's faithfulness (same target, position and baseline); ``.line`` is the one-line verdict.

    ``saliencies`` already computed on this input are reused for their methods. ``options``
    go to :func:`faithfulness` (``baseline``, ``n_random``, ``seed``, ``site``). An integrated
    gradients map that did not converge is still scored; ``notes`` says so (no warning).
    """
    from llmasos_widgets.attribution._methods import available_methods
    from llmasos_widgets.models import as_explainable

    explainable = as_explainable(model, tokenizer)
    wanted = list(available_methods() if methods is None else methods)
    if not wanted:
        raise ValueError("methods is empty; name at least one, or pass None for all")
    known = {s.method: s for s in saliencies}
    results, notes = [], {}
    for method in wanted:
        saliency = known.get(method)
        if saliency is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)  # kept in `notes` instead
                saliency = attribute(
                    explainable, text, target=target, method=method, position=position
                )
        if saliency.convergence_warning:
            notes[method] = saliency.convergence_warning
        results.append(faithfulness(explainable, saliency, **options))
    results.sort(key=lambda r: -np.inf if math.isnan(r.score) else -r.score)
    return FaithfulnessComparison(tuple(results), notes)


def _salient_order(scores: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Candidates by descending score, ties by position (a stable sort of ``-score``)."""
    return candidates[np.argsort(-scores[candidates].astype(np.float64), kind="stable")]


def _curve_masks(order: np.ndarray, n_tokens: int, candidates: np.ndarray) -> np.ndarray:
    """bool ``[2 (n + 1), token]``: which tokens hold the baseline, deletion rows then
    insertion rows, ``k = 0..n`` each."""
    n = order.size
    deletion = np.zeros((n + 1, n_tokens), dtype=bool)
    for k in range(1, n + 1):
        deletion[k] = deletion[k - 1]
        deletion[k, order[k - 1]] = True
    insertion = np.zeros((n + 1, n_tokens), dtype=bool)
    insertion[:, candidates] = True
    insertion &= ~deletion  # the first k of the order are back
    return np.concatenate([deletion, insertion])


def _baseline_rows(runner: ResidualRunner, tokenizer: Any, baseline: str) -> torch.Tensor:
    """``[1, token, hidden]`` embeddings a deleted token takes."""
    embeds = runner.embed()
    if baseline == "zero":
        return torch.zeros_like(embeds)
    if baseline not in ("pad", "unk"):
        raise ValueError(f"unknown baseline {baseline!r}; valid: 'pad', 'unk', 'zero'")
    token_id = getattr(tokenizer, f"{baseline}_token_id", None)
    if token_id is None:
        raise ValueError(f"the tokenizer has no {baseline} token; use baseline='zero'")
    return runner.embed(torch.full_like(runner.input_ids, int(token_id)))


def _evaluate(
    runner: ResidualRunner,
    embeds: torch.Tensor,
    replaced: torch.Tensor,
    masks: np.ndarray,
    target: ResolvedTarget,
    batch_rows: int,
) -> np.ndarray:
    """float64 ``[row]``: the target on each masked input, ``batch_rows`` rows per forward."""
    values = []
    for start in range(0, masks.shape[0], batch_rows):
        mask = torch.as_tensor(masks[start : start + batch_rows], device=embeds.device)
        rows = torch.where(mask[:, :, None], replaced, embeds)
        values.append(target(runner.logits(rows)).double().cpu())
    return torch.cat(values).numpy()


def _target_of(saliency: Saliency) -> ResolvedTarget:
    """The saliency's own target, rebuilt from its ids and description."""
    ids = saliency.target_token_ids
    position = saliency.target_position
    if len(ids) == 2:
        return ResolvedTarget("contrast", "logit", position, ids[0], "", ids[1], "")
    if saliency.target.startswith("logit("):
        return ResolvedTarget("next_token", "logit", position, ids[0], "")
    return ResolvedTarget("next_token", "logprob", position, ids[0], "")


def _area(y: np.ndarray, x: np.ndarray) -> float:
    """Trapezoid rule (``np.trapezoid`` is numpy >= 2 only; numpy 1.24 is admitted)."""
    return float(((y[1:] + y[:-1]) / 2 * np.diff(x)).sum())


def _json_float(value: float) -> float | None:
    return None if math.isnan(value) else value


def with_faithfulness(explanation: Any, result: Faithfulness) -> Any:
    """A copy of ``explanation`` whose metadata carries ``result`` (``metadata["faithfulness"]``,
    saved with it), so its HTML report shows the score next to the saliency table.

    ``result`` must test the explanation's own saliency map (same method and target).
    """
    import dataclasses

    saliency = explanation.saliency
    if saliency is None:
        raise ValueError("this explanation has no saliency map; explain(..., saliency=True)")
    if (result.method, result.target) != (saliency.method, saliency.target):
        raise ValueError(
            f"the faithfulness result tests {result.method} for {result.target!r}, but the "
            f"explanation's map is {saliency.method} for {saliency.target!r}; run "
            f"faithfulness(model, explanation.saliency)"
        )
    metadata = {**dict(explanation.metadata), "faithfulness": result.to_json()}
    return dataclasses.replace(explanation, metadata=metadata)
