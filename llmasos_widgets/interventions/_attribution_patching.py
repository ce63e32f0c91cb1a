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
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from llmasos_widgets._hooks import borrowed_hooks
from llmasos_widgets._readable_tokens import TokenStyle
from llmasos_widgets.interventions._atp_star import GradDropGates, QKCapture
from llmasos_widgets.interventions._files import saved_kind
from llmasos_widgets.interventions._patching import (
    Cell,
    PatchingResult,
    bind_pair_target,
    check_head_node,
    encode_pair,
    exact_cell_values,
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
    grad_drop_residual_values: np.ndarray | None = None
    """float32 ``[site, position]``: GradDrop's score, the mean over dropped layers of the
    estimate's absolute change (target units, >= 0); None without ``grad_drop``."""
    grad_drop_head_values: np.ndarray | None = None
    """float32 ``[layer, head]``: GradDrop's score of each head cell; None without it."""
    _source: Any = field(default=None, repr=False, compare=False)

    def _magnitude(self, values: np.ndarray | None) -> np.ndarray | None:
        span = abs(self.clean_value - self.corrupted_value)
        return None if values is None else (values.astype(np.float64) / span).astype(np.float32)

    @property
    def grad_drop_residual(self) -> np.ndarray | None:
        """GradDrop's residual scores in units of ``|clean - corrupted|``."""
        return self._magnitude(self.grad_drop_residual_values)

    @property
    def grad_drop_heads(self) -> np.ndarray | None:
        """GradDrop's head scores in units of ``|clean - corrupted|``."""
        return self._magnitude(self.grad_drop_head_values)

    def ranking(self, kind: str) -> np.ndarray | None:
        """How :meth:`verify` ranks the ``"residual"`` or ``"head"`` cells: GradDrop's score
        where computed, else the estimate's absolute normalised value."""
        drop = self.grad_drop_residual if kind == "residual" else self.grad_drop_heads
        if drop is not None:
            return drop
        values = self.residual if kind == "residual" else self.heads
        return None if values is None else np.abs(values)

    def verify(
        self, k: int = 10, *, model: Any = None, tokenizer: Any = None, batch_size: int = 64
    ) -> PatchingCheck:
        """Exact activation patching of the ``k`` residual cells and ``k`` head cells that
        rank highest (:meth:`ranking`), beside the estimates: ``2k`` patched runs, batched.

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
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        model, tokenizer = source
        cells: list[Cell] = []
        for kind in ("residual", "head"):
            score = self.ranking(kind)
            if score is None:
                continue
            step = int(self.metadata.get("head_step", 1)) if kind == "head" else 1
            score = score[:, ::step]  # a key/value head's group: one cell
            if kind == "residual":
                score = score[:, : self.target_position + 1]  # later tokens cannot matter
            top = np.argsort(-score, axis=None, kind="stable")[:k]
            for a, b in zip(*np.unravel_index(top, score.shape), strict=True):
                cells.append((kind, int(a), int(b) * step))
        exact, _ = exact_cell_values(
            model, tokenizer, self.clean_text, self.corrupted_text,
            target=self.metadata["bound_target"], position=self.target_position,
            head_node=self.head_node, cells=cells, batch_size=batch_size,
        )  # fmt: skip
        residual, heads = self.residual, self.heads
        estimated = [
            (residual if kind == "residual" else heads)[a, b]  # type: ignore[index]
            for kind, a, b in cells
        ]
        span = self.clean_value - self.corrupted_value
        exact_values = [(exact[cell] - self.corrupted_value) / span for cell in cells]
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
    """Residual sites and head nodes of one forward (rows clean, corrupted), kept in the
    autograd graph, and each cell kind's first-order change from a gradient."""

    def __init__(
        self, parts: Anatomy, *, residual: bool, heads: bool, head_node: str, qk_fix: bool
    ) -> None:
        self.parts, self.residual, self.heads = parts, residual, heads
        self.head_node, self.qk_fix = head_node, qk_fix
        self.sites: dict[int, torch.Tensor] = {}  # site -> [batch, token, hidden]
        # layer -> [batch, token, head, dim] head outputs (the QK fix's gradients are theirs),
        # or [batch, token, width] q/k/v projection outputs
        self.head_nodes: dict[int, torch.Tensor] = {}
        self.qk = QKCapture(parts) if qk_fix else None

    def record(self, hooks: Any, stack: ExitStack) -> None:
        parts = self.parts

        # site 0 becomes a leaf that requires grad, so the graph exists even when the model's
        # own parameters are frozen; everything else is read inside the graph, never detached
        # (a detached head output would cut the attention path to the earlier sites)
        def leaf(hidden: torch.Tensor) -> torch.Tensor:
            embeddings = hidden.detach().requires_grad_(True)
            if self.residual:
                self.sites[0] = embeddings  # site 0 first: it runs before every layer
            return embeddings

        parts.replace_site(hooks, 0, leaf)
        if self.residual:
            for site in range(1, parts.n_sites):

                def keep_site(hidden: torch.Tensor, site: int = site) -> None:
                    self.sites[site] = hidden

                parts.read_site(hooks, site, keep_site)
        if not self.heads:
            return
        for layer in range(parts.n_layers):

            def keep(outputs: torch.Tensor, layer: int = layer) -> torch.Tensor:
                self.head_nodes[layer] = outputs.clone()  # a node of its own in the graph
                return self.head_nodes[layer]

            if self.head_node == "output" or self.qk is not None:
                parts.replace_heads(hooks, layer, keep)
            else:
                projection = parts.attention_projection(layer, self.head_node)
                hooks.forward(projection, lambda _m, _a, output, keep=keep: keep(output))
        if self.qk is not None:
            stack.enter_context(self.qk.record(hooks))

    def tensors(self) -> list[torch.Tensor]:
        return [*self.sites.values(), *self.head_nodes.values()]

    def changes(
        self, grads: dict[int, torch.Tensor | None]
    ) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor]]:
        """First-order change of the corrupted target per residual cell (site -> ``[token]``)
        and per head (layer -> ``[head]``), from the gradients of :meth:`tensors`."""

        def first_order(activation: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
            grad = grads[id(activation)]
            if grad is None:  # the target does not depend on it
                return torch.zeros_like(delta)
            return delta * grad[1].float()

        residual = {
            site: first_order(a, (a[0] - a[1]).detach().float()).sum(-1)
            for site, a in self.sites.items()
        }
        heads = {}
        for layer, a in self.head_nodes.items():
            n_heads = self.parts.n_heads(layer)
            if self.qk is not None:  # head outputs' gradients, exact patched outputs
                change = first_order(a, self.qk.patched_outputs(layer, self.head_node))
            else:
                change = first_order(a, (a[0] - a[1]).detach().float())
            per_node = change.view(change.shape[0], -1, self.parts.head_dim(layer)).sum((0, 2))
            step = n_heads // per_node.shape[0]  # 1, or a key/value head's group
            if self.qk is not None and self.head_node == "k":  # the group's heads together
                step = n_heads // self.parts.n_kv_heads(layer)
                per_node = per_node.view(-1, step).sum(1)
            heads[layer] = per_node.repeat_interleave(step)
        return residual, heads


def attribution_patching(
    model: Any,
    clean: str,
    corrupted: str,
    *,
    target: TargetLike = None,
    position: int = -1,
    residual: bool = True,
    heads: bool = True,
    head_node: str = "output",
    qk_fix: bool = False,
    grad_drop: bool = False,
    tokenizer: Any = None,
) -> AttributionPatchingResult:
    """:func:`activation_patching`'s two maps, estimated to first order from one gradient.

    Same arguments and result layout as ``activation_patching`` (residual ``[site, position]``
    and heads ``[layer, head]`` of ``head_node``, normalised so the clean run is 1 and the
    corrupted run 0); costs two forward passes and one backward for every cell together. The
    values are estimates: ``result.verify(k)`` patches the top ``k`` cells exactly.

    AtP* (Kramár et al. 2024): ``qk_fix=True`` (with ``head_node="q"`` or ``"k"``) recomputes
    each head's attention exactly instead of linearising its softmax; ``grad_drop=True`` adds
    GradDrop's scores (``result.grad_drop_heads``, one more backward pass per layer), which
    ``verify`` then ranks by.
    """
    from llmasos_widgets.models import as_explainable

    explainable = as_explainable(model, tokenizer)
    hf_model = explainable.hf_model
    clean_ids, corrupted_ids, clean_tokens, corrupted_tokens = encode_pair(
        explainable, clean, corrupted
    )
    if not residual and not heads:
        raise ValueError("nothing to patch: residual=False and heads=False")
    check_head_node(head_node)
    if qk_fix and head_node not in ("q", "k"):
        raise ValueError(
            f"qk_fix changes query and key nodes only (head_node={head_node!r} is linear in "
            "its head's attention): pass head_node='q' or 'k'"
        )
    parts = anatomy(hf_model)
    if grad_drop and parts.n_layers < 2:
        raise ValueError("grad_drop needs at least 2 layers (it averages over the other layers)")
    n_tokens = int(clean_ids.shape[1])
    at = resolve_position(position, n_tokens)
    both = torch.cat([clean_ids, corrupted_ids])[:, : at + 1]  # later tokens cannot matter
    runs = _Activations(parts, residual=residual, heads=heads, head_node=head_node, qk_fix=qk_fix)
    gates = GradDropGates(parts)
    with eval_mode(hf_model), torch.enable_grad(), borrowed_hooks() as hooks, ExitStack() as stack:
        runs.record(hooks, stack)
        if grad_drop:
            gates.record(hooks)
        logits = forward_logits(hf_model, both, keep=1)[:, 0]
    with torch.enable_grad():
        bound, clean_value, corrupted_value = bind_pair_target(
            target, explainable.tokenizer, at, logits.detach()
        )
        metric = bound(logits)[1]  # the corrupted row's target
    tensors = runs.tensors()

    def changes(dropped: int) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor]]:
        gates.dropped = dropped  # no parameter .grad is touched
        grads = torch.autograd.grad(metric, tensors, allow_unused=True, retain_graph=grad_drop)
        return runs.changes(dict(zip(map(id, tensors), grads, strict=True)))

    residual_change, head_change = changes(-1)
    drop_residual = drop_heads = None
    if grad_drop:
        drop_residual = {site: torch.zeros_like(v) for site, v in residual_change.items()}
        drop_heads = {layer: torch.zeros_like(v) for layer, v in head_change.items()}
        for layer in range(parts.n_layers):
            dropped_residual, dropped_heads = changes(layer)
            for totals, dropped in ((drop_residual, dropped_residual), (drop_heads, dropped_heads)):
                for key, value in dropped.items():
                    totals[key] += value.abs() / (parts.n_layers - 1)
    n_heads = parts.n_heads()

    def residual_map(by_site: dict[int, torch.Tensor], fill: float) -> np.ndarray | None:
        if not residual:
            return None
        values = np.full((parts.n_sites, n_tokens), fill, np.float32)
        for site, change in by_site.items():
            values[site, : at + 1] += change.cpu().numpy()
        return values

    def head_map(by_layer: dict[int, torch.Tensor], fill: float) -> np.ndarray | None:
        if not heads:
            return None
        values = np.full((parts.n_layers, n_heads), fill, np.float32)
        for layer, change in by_layer.items():
            values[layer] += change.cpu().numpy()
        return values

    method = "attribution patching (AtP)"
    if qk_fix or grad_drop:
        fixes = [name for name, on in (("QK fix", qk_fix), ("GradDrop", grad_drop)) if on]
        method = f"{'AtP*' if qk_fix and grad_drop else 'AtP'} ({' + '.join(fixes)})"
    return AttributionPatchingResult(
        clean_text=clean,
        corrupted_text=corrupted,
        clean_tokens=tuple(clean_tokens),
        corrupted_tokens=tuple(corrupted_tokens),
        target=bound.description,
        target_position=at,
        clean_value=clean_value,
        corrupted_value=corrupted_value,
        residual_values=residual_map(residual_change, corrupted_value),
        head_values=head_map(head_change, corrupted_value),
        n_layers=parts.n_layers,
        n_heads=n_heads,
        token_style=TokenStyle.of(explainable.tokenizer),
        forward_passes=1,
        head_node=head_node,
        method=method,
        grad_drop_residual_values=None if drop_residual is None else residual_map(drop_residual, 0),
        grad_drop_head_values=None if drop_heads is None else head_map(drop_heads, 0),
        metadata={
            "model": explainable.name,
            "estimate": True,
            "backward_passes": 1 + (parts.n_layers if grad_drop else 0),
            "head_step": 1 if head_node in ("output", "q") else n_heads // parts.n_kv_heads(),
            "bound_target": (bound.token_id, bound.foil_id)
            if bound.foil_id is not None
            else NextToken(bound.token_id, bound.score),
        },
        _source=_weak_source(model, tokenizer),
    )


def _weak_source(model: Any, tokenizer: Any) -> Any:
    """A callable returning ``(model, tokenizer)`` while the model lives (results do not keep
    models alive)."""
    try:
        ref = weakref.ref(model)
    except TypeError:
        return lambda: (model, tokenizer)
    return lambda: None if ref() is None else (ref(), tokenizer)
