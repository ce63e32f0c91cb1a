"""Head ablation: run the model with chosen heads' outputs replaced, and measure a target.

A head's output is its slice of the attention output before the output projection mixes the
heads (TransformerLens's ``hook_z``); ablating it writes zeros there (``mode="zero"``) or the
head's mean output over a reference set of texts, over all their positions (``mode="mean"``).
The same texts run once without and once with the ablation, through hooks borrowed from the
capture layer and given back when the call returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from llmasos_widgets._hooks import borrowed_hooks
from llmasos_widgets.interventions._copying_accuracy import CopyingAccuracy
from llmasos_widgets.interventions._runs import (
    Head,
    as_texts,
    check_heads,
    chunks,
    forward_logits,
    group_by_length,
)
from llmasos_widgets.targets import TargetLike, resolve_position, resolve_target
from llmasos_widgets.tracing import Anatomy, anatomy, eval_mode

AblationMode = Literal["zero", "mean"]
MODES = ("zero", "mean")


@dataclass(frozen=True, kw_only=True)
class AblationResult:
    """A target measured on ``texts`` without (``values_before``) and with (``values_after``)
    the ablation of ``heads``; one value per text.

    ``before``/``after`` are the means over texts (for an accuracy: over every scored
    position of every text), ``change = after - before``.
    """

    heads: tuple[Head, ...]
    mode: str
    target: str
    """What was measured, e.g. ``log p('are') after token 5`` or ``copying accuracy ...``."""
    texts: tuple[str, ...]
    values_before: np.ndarray
    """float64 ``[text]``."""
    values_after: np.ndarray
    """float64 ``[text]``."""
    weights: np.ndarray
    """float64 ``[text]``: how many positions each text's value averages (1 for a token target)."""
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.texts)
        for name in ("values_before", "values_after", "weights"):
            value = getattr(self, name)
            if not isinstance(value, np.ndarray) or value.shape != (n,):
                raise ValueError(f"{name} must be an array of shape ({n},), one per text")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")

    @property
    def before(self) -> float:
        return float(np.average(self.values_before, weights=self.weights))

    @property
    def after(self) -> float:
        return float(np.average(self.values_after, weights=self.weights))

    @property
    def change(self) -> float:
        return self.after - self.before

    def __repr__(self) -> str:
        heads = ", ".join(f"L{layer}H{head}" for layer, head in self.heads)
        return (
            f"AblationResult({self.mode}-ablating {heads} on {len(self.texts)} text(s): "
            f"{self.target} {self.before:.4g} -> {self.after:.4g} (change {self.change:+.4g}))"
        )


def ablate_heads(
    model: Any,
    texts: str | Sequence[str],
    heads: Sequence[Head],
    *,
    mode: AblationMode = "zero",
    reference: str | Sequence[str] | None = None,
    target: TargetLike | CopyingAccuracy | Sequence[TargetLike] = None,
    position: int = -1,
    batch_size: int = 32,
    tokenizer: Any = None,
) -> AblationResult:
    """Measure ``target`` on ``texts`` with and without ``heads`` ablated.

    ``heads``: ``[(layer, head), ...]``. ``mode="zero"`` writes zeros into their outputs,
    ``mode="mean"`` their mean output over ``reference`` texts (default: ``texts``).
    ``target``: a token target at ``position`` of each text (``" are"``: its log-probability;
    ``(" are", " is")``: the logit difference; ``None``: the model's own prediction without
    ablation), a list of those (one per text), or :class:`CopyingAccuracy` for top-1 accuracy
    on the repeat of copy sequences. Texts of equal token length run as one batch.
    """
    run = _AblationRun.checked(model, texts, heads, mode, reference, target, tokenizer)
    explainable, parts = run.explainable, run.parts
    with torch.no_grad(), eval_mode(run.hf_model):
        fills = _fills(explainable, parts, run.heads, mode, run.references, batch_size)
        before, weights, bound = run.measure(run.targets, position, batch_size)
        with borrowed_hooks() as hooks:
            for layer, layer_heads, fill in fills:
                parts.replace_heads(hooks, layer, _writer(layer_heads, fill))
            after, _, _ = run.measure(bound, position, batch_size)
    return AblationResult(
        heads=tuple(run.heads),
        mode=mode,
        target=run.describe(bound),
        texts=tuple(run.texts),
        values_before=before,
        values_after=after,
        weights=weights,
        metadata={"model": explainable.name, "n_reference": len(run.references)},
    )


@dataclass(frozen=True)
class _AblationRun:
    """The checked arguments of :func:`ablate_heads` and :func:`ablation_map`."""

    explainable: Any
    parts: Anatomy
    heads: list[Head]
    texts: list[str]
    targets: list[Any]
    references: list[str]
    ids: list[torch.Tensor]

    @property
    def hf_model(self) -> Any:
        return self.explainable.hf_model

    def measure(
        self, targets: list[Any], position: int, batch_size: int
    ) -> tuple[np.ndarray, np.ndarray, list[Any]]:
        """:func:`_measure` on these texts (hooks in place are what is measured)."""
        hf_model, tokenizer = self.hf_model, self.explainable.tokenizer
        return _measure(hf_model, tokenizer, self.ids, targets, position, batch_size)

    def describe(self, bound: list[Any]) -> str:
        """What was measured: the copying accuracy, or the bound token target(s)."""
        first = self.targets[0]
        return first.description if isinstance(first, CopyingAccuracy) else _describe(bound)

    @classmethod
    def checked(
        cls,
        model: Any,
        texts: str | Sequence[str],
        heads: Sequence[Head] | None,
        mode: str,
        reference: str | Sequence[str] | None,
        target: Any,
        tokenizer: Any,
    ) -> _AblationRun:
        """Check the arguments of both functions (``heads=None``: every head), encode texts."""
        from llmasos_widgets.models import as_explainable

        explainable = as_explainable(model, tokenizer)
        text_list = as_texts(texts)
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; valid modes: {', '.join(MODES)}")
        if reference is not None and mode != "mean":
            raise ValueError("reference texts are only used with mode='mean'; drop reference=")
        parts = anatomy(explainable.hf_model)
        if heads is None:
            chosen = [
                (layer, head) for layer in range(parts.n_layers) for head in range(parts.n_heads())
            ]
        else:
            chosen = check_heads(parts, heads)
        return cls(
            explainable=explainable,
            parts=parts,
            heads=chosen,
            texts=text_list,
            targets=_per_text_targets(target, len(text_list)),
            references=as_texts(text_list if reference is None else reference, "reference"),
            ids=[explainable.encode(text) for text in text_list],
        )


def _per_text_targets(target: Any, n: int) -> list[Any]:
    if isinstance(target, list):
        if len(target) != n:
            raise ValueError(f"target has {len(target)} entries for {n} texts; give one per text")
        if any(isinstance(t, CopyingAccuracy) for t in target):
            raise TypeError("CopyingAccuracy scores every text: pass it once, not in a list")
        return list(target)
    return [target] * n


def _fills(
    explainable: Any,
    parts: Anatomy,
    heads: list[Head],
    mode: str,
    reference: str | Sequence[str],
    batch_size: int,
) -> list[tuple[int, list[int], torch.Tensor | None]]:
    """Per ablated layer: its heads and what to write (``None``: zeros; else ``[head, dim]``)."""
    by_layer: dict[int, list[int]] = {}
    for layer, head in heads:
        by_layer.setdefault(layer, []).append(head)
    if mode == "zero":
        return [(layer, hs, None) for layer, hs in by_layer.items()]
    means = _mean_head_outputs(
        explainable, parts, sorted(by_layer), as_texts(reference, "reference"), batch_size
    )
    return [(layer, hs, means[layer][hs]) for layer, hs in by_layer.items()]


def _mean_head_outputs(
    explainable: Any, parts: Anatomy, layers: list[int], reference: list[str], batch_size: int
) -> dict[int, torch.Tensor]:
    """Each layer's per-head output ``[head, head_dim]`` averaged over every position of every
    reference text, accumulated in float32."""
    ids = [explainable.encode(text) for text in reference]
    sums: dict[int, torch.Tensor] = {}
    count = 0
    with borrowed_hooks() as hooks:
        for layer in layers:

            def add(heads: torch.Tensor, layer: int = layer) -> None:
                total = heads.float().sum(dim=(0, 1))
                sums[layer] = total if layer not in sums else sums[layer] + total

            parts.read_heads(hooks, layer, add)
        for length, members in group_by_length(ids).items():
            for chunk in chunks(members, batch_size):
                batch = torch.cat([ids[i] for i in chunk])
                forward_logits(explainable.hf_model, batch, keep=1)
                count += len(chunk) * length
    return {layer: total / count for layer, total in sums.items()}


def _writer(heads: list[int], fill: torch.Tensor | None) -> Any:
    def write(outputs: torch.Tensor) -> torch.Tensor:
        out = outputs.clone()
        index = torch.tensor(heads, device=out.device)
        if fill is None:
            out[:, :, index] = 0
        else:
            out[:, :, index] = fill.to(device=out.device, dtype=out.dtype)
        return out

    return write


def _measure(
    hf_model: Any,
    tokenizer: Any,
    ids: list[torch.Tensor],
    targets: list[Any],
    position: int,
    batch_size: int,
) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    """Per-text values, their weights, and the targets bound to token ids (token targets are
    bound on the first call, so the ablated run reuses the tokens of the clean one)."""
    n = len(ids)
    values = np.zeros(n, np.float64)
    weights = np.ones(n, np.float64)
    bound = list(targets)
    for length, members in group_by_length(ids).items():
        for chunk in chunks(members, batch_size):
            batch = torch.cat([ids[i] for i in chunk])
            first = targets[chunk[0]]
            if isinstance(first, CopyingAccuracy):
                logits = forward_logits(hf_model, batch, keep=length)
                correct = first.correct(batch, logits.to(batch.device))
                for row, index in enumerate(chunk):
                    first.period(batch[row])  # every text, not just the first, must repeat
                    values[index] = float(correct[row].float().mean())
                    weights[index] = float(correct.shape[1])
                continue
            at = resolve_position(position, length)
            logits = forward_logits(hf_model, batch, keep=length - at)[:, 0]
            for row, index in enumerate(chunk):
                spec = targets[index]
                if not hasattr(spec, "token_id"):
                    spec = resolve_target(
                        spec, tokenizer, position=at, logits_at_position=logits[row]
                    )
                    bound[index] = spec
                values[index] = float(spec(logits[row : row + 1])[0])
    return values, weights, bound


def _describe(bound: list[Any]) -> str:
    descriptions = {spec.description for spec in bound}
    return descriptions.pop() if len(descriptions) == 1 else f"{len(descriptions)} per-text targets"
