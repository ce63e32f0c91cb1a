"""Attribution patching (AtP): activation patching's maps estimated from one gradient.

Patching a cell replaces an activation ``a`` of the corrupted run by the clean run's ``a'``.
To first order the target moves by ``(a' - a) . dM/da``, the gradient taken on the corrupted
run, so one clean forward (for ``a'``), one corrupted forward and one backward give every
cell's estimate at once (Nanda 2023; Kramár et al. 2024), where exact patching runs one
patched forward per cell. The estimate is exact where the target is linear in the patched
activation and drifts where later nonlinearities (attention softmax, norms, the MLPs) bend the
path between ``a`` and ``a'``: :meth:`AttributionPatchingResult.verify` compares the estimate's
top cells with exact patching.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from llmasos_widgets._hooks import borrowed_hooks
from llmasos_widgets._readable_tokens import TokenStyle
from llmasos_widgets.interventions._files import saved_kind
from llmasos_widgets.interventions._patching import (
    PatchingResult,
    activation_patching,
    bind_pair_target,
    encode_pair,
)
from llmasos_widgets.interventions._runs import forward_logits
from llmasos_widgets.targets import NextToken, TargetLike, resolve_position
from llmasos_widgets.tracing import Anatomy, anatomy, eval_mode


@dataclass(frozen=True)
class PatchingCheck:
    """Exact patching of an estimate's top cells, side by side with the estimate."""

    cells: tuple[tuple[str, int, int], ...]
    """``("residual", site, position)`` or ``("head", layer, head)``, largest estimates first."""
    estimated: np.ndarray
    """float32 ``[cell]``: the estimate, normalised (clean = 1, corrupted = 0)."""
    exact: np.ndarray
    """float32 ``[cell]``: exact activation patching of the same cells, normalised."""

    @property
    def rank_correlation(self) -> float:
        """Spearman's correlation of the estimated and exact values over the cells."""
        return _spearman(self.estimated, self.exact)

    @property
    def max_error(self) -> float:
        return float(np.abs(self.estimated - self.exact).max()) if len(self.cells) else 0.0


@saved_kind
@dataclass(frozen=True, kw_only=True)
class AttributionPatchingResult(PatchingResult):
    """:class:`PatchingResult` whose values are attribution patching's first-order estimates
    (:attr:`method`); the maps, views and page are the patching ones, labelled as estimates."""

    method: str = "attribution patching (AtP)"
    _source: Any = field(default=None, repr=False, compare=False)

    def verify(self, k: int = 10, *, model: Any = None, tokenizer: Any = None) -> PatchingCheck:
        """The ``k`` residual cells and ``k`` heads of largest estimated effect, with their
        exact patching values beside the estimates. It runs ``activation_patching`` on every
        cell (batched) and compares at those cells: it costs what exact patching costs.

        ``model`` (and ``tokenizer`` for a bare ``transformers`` model) is the one the estimate
        was made with; needed only when it is no longer attached (a loaded estimate)."""
        source = self._source() if self._source is not None else None
        if model is not None:
            source = (model, tokenizer)
        if source is None:
            raise RuntimeError(
                "no model is attached to this estimate (it was loaded from a file, or its "
                "model was garbage-collected): pass the model it was made with, "
                "result.verify(k, model=model)"
            )
        model, tokenizer = source
        exact = activation_patching(
            model,
            self.clean_text,
            self.corrupted_text,
            target=self.metadata["bound_target"],
            position=self.target_position,
            residual=self.residual_values is not None,
            heads=self.head_values is not None,
            tokenizer=tokenizer,
        )
        cells, estimated, exact_values = [], [], []
        for kind, est, ex in (
            ("residual", self.residual, exact.residual),
            ("head", self.heads, exact.heads),
        ):
            if est is None or ex is None:
                continue
            top = np.argsort(-np.abs(est), axis=None, kind="stable")[:k]  # 0 = no effect
            for a, b in zip(*np.unravel_index(top, est.shape), strict=True):
                cells.append((kind, int(a), int(b)))
                estimated.append(est[a, b])
                exact_values.append(ex[a, b])
        return PatchingCheck(
            tuple(cells), np.array(estimated, np.float32), np.array(exact_values, np.float32)
        )


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2:
        return float("nan")
    ranks = [
        np.argsort(np.argsort(x, kind="stable"), kind="stable").astype(np.float64) for x in (a, b)
    ]
    return float(np.corrcoef(ranks[0], ranks[1])[0, 1])


class _Activations:
    """Residual sites and head outputs of one forward, kept in the autograd graph."""

    def __init__(self, parts: Anatomy, *, residual: bool, heads: bool) -> None:
        self.parts, self.residual, self.heads = parts, residual, heads
        self.sites: dict[int, torch.Tensor] = {}  # site -> [batch, token, hidden]
        self.head_outputs: dict[int, torch.Tensor] = {}  # layer -> [batch, token, head, dim]
        self.embeddings = torch.empty(0)

    def record(self, hooks: Any) -> None:
        parts = self.parts

        # site 0 becomes a leaf that requires grad, so the graph exists even when the model's
        # own parameters are frozen; everything else is read inside the graph, never detached
        # (a detached head output would cut the attention path to the earlier sites)
        def leaf(hidden: torch.Tensor) -> torch.Tensor:
            self.embeddings = hidden.detach().requires_grad_(True)
            if self.residual:
                self.sites[0] = self.embeddings  # site 0 first: it runs before every layer
            return self.embeddings

        parts.replace_site(hooks, 0, leaf)
        if self.residual:
            for site in range(1, parts.n_sites):

                def keep_site(hidden: torch.Tensor, site: int = site) -> None:
                    self.sites[site] = hidden

                parts.read_site(hooks, site, keep_site)
        if self.heads:
            for layer in range(parts.n_layers):

                def keep_heads(outputs: torch.Tensor, layer: int = layer) -> torch.Tensor:
                    self.head_outputs[layer] = outputs.clone()  # a node of its own in the graph
                    return self.head_outputs[layer]

                parts.replace_heads(hooks, layer, keep_heads)

    def tensors(self) -> list[torch.Tensor]:
        return [*self.sites.values(), *self.head_outputs.values()]


def attribution_patching(
    model: Any,
    clean: str,
    corrupted: str,
    *,
    target: TargetLike = None,
    position: int = -1,
    residual: bool = True,
    heads: bool = True,
    tokenizer: Any = None,
) -> AttributionPatchingResult:
    """:func:`activation_patching`'s two maps, estimated to first order from one gradient.

    Same arguments and result layout as ``activation_patching`` (residual ``[site, position]``
    and heads ``[layer, head]``, normalised so the clean run is 1 and the corrupted run 0);
    costs two forward passes and one backward for every cell together. The values are
    estimates: ``result.verify(k)`` compares the top ``k`` cells with exact patching.
    """
    from llmasos_widgets.models import as_explainable

    explainable = as_explainable(model, tokenizer)
    hf_model = explainable.hf_model
    clean_ids, corrupted_ids, clean_tokens, corrupted_tokens = encode_pair(
        explainable, clean, corrupted
    )
    if not residual and not heads:
        raise ValueError("nothing to patch: residual=False and heads=False")
    n_tokens = int(clean_ids.shape[1])
    at = resolve_position(position, n_tokens)
    both = torch.cat([clean_ids, corrupted_ids])[:, : at + 1]  # later tokens cannot matter
    parts = anatomy(hf_model)
    runs = _Activations(parts, residual=residual, heads=heads)
    with eval_mode(hf_model), torch.enable_grad(), borrowed_hooks() as hooks:
        runs.record(hooks)
        logits = forward_logits(hf_model, both, keep=1)[:, 0]
        bound, clean_value, corrupted_value = bind_pair_target(
            target, explainable.tokenizer, at, logits.detach()
        )
        # d(corrupted target)/d(activations), row 1 only (no parameter .grad is touched)
        grads = torch.autograd.grad(bound(logits)[1], runs.tensors(), allow_unused=True)
    by_tensor = dict(zip(map(id, runs.tensors()), grads, strict=True))

    def first_order(activation: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
        delta = (activation[0] - activation[1]).detach().float()
        grad = by_tensor[id(activation)]
        if grad is None:  # the target does not depend on it
            return torch.zeros_like(delta.sum(dim=dims))
        return (delta * grad[1].float()).sum(dim=dims)

    residual_values = head_values = None
    n_heads = parts.n_heads()
    if residual:
        residual_values = np.full((parts.n_sites, n_tokens), corrupted_value, np.float32)
        for site, activation in runs.sites.items():
            change = first_order(activation, (-1,)).cpu().numpy()
            residual_values[site, : at + 1] = corrupted_value + change
    if heads:
        head_values = np.zeros((parts.n_layers, n_heads), np.float32)
        for layer, activation in runs.head_outputs.items():
            change = first_order(activation, (0, 2)).cpu().numpy()  # over tokens and dims
            head_values[layer] = corrupted_value + change
    result = AttributionPatchingResult(
        clean_text=clean,
        corrupted_text=corrupted,
        clean_tokens=tuple(clean_tokens),
        corrupted_tokens=tuple(corrupted_tokens),
        target=bound.description,
        target_position=at,
        clean_value=clean_value,
        corrupted_value=corrupted_value,
        residual_values=residual_values,
        head_values=head_values,
        n_layers=parts.n_layers,
        n_heads=n_heads,
        token_style=TokenStyle.of(explainable.tokenizer),
        forward_passes=1,
        metadata={
            "model": explainable.name,
            "estimate": True,
            "backward_passes": 1,
            "bound_target": (bound.token_id, bound.foil_id)
            if bound.foil_id is not None
            else NextToken(bound.token_id, bound.score),
        },
        _source=_weak_source(model, tokenizer),
    )
    return result


def _weak_source(model: Any, tokenizer: Any) -> Any:
    """A callable returning ``(model, tokenizer)`` while the model lives (results do not keep
    models alive)."""
    try:
        ref = weakref.ref(model)
    except TypeError:
        return lambda: (model, tokenizer)
    return lambda: None if ref() is None else (ref(), tokenizer)
