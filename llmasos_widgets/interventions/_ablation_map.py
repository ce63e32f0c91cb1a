"""One head at a time: a ``[layer, head]`` map of how much a target changes when that head
alone is ablated -- the ablation counterpart of the patching head map, shown by the same
``PatchingWidget``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from llmasos_widgets._hooks import borrowed_hooks
from llmasos_widgets.interventions._ablation import (
    MODES,
    AblationMode,
    _AblationRun,
    _fills,
    _writer,
)
from llmasos_widgets.interventions._copying_accuracy import CopyingAccuracy
from llmasos_widgets.targets import TargetLike
from llmasos_widgets.tracing import eval_mode


@dataclass(frozen=True, kw_only=True)
class AblationMap:
    """``values[layer, head]``: the target (mean over texts) with that head alone ablated."""

    target: str
    mode: str
    n_texts: int
    before: float
    """The target without ablation."""
    values: np.ndarray
    """float32 ``[layer, head]``."""
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.values, np.ndarray) or self.values.ndim != 2:
            raise ValueError("values must be a [layer, head] array")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")

    @property
    def change(self) -> np.ndarray:
        """float32 ``[layer, head]``: ``values - before`` (negative: the head helps the target)."""
        return (self.values - np.float32(self.before)).astype(np.float32)

    @property
    def n_layers(self) -> int:
        return int(self.values.shape[0])

    @property
    def n_heads(self) -> int:
        return int(self.values.shape[1])

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """In a notebook: the PatchingWidget's head map (a view registered by ``widgets``)."""
        from llmasos_widgets._views import render

        return render("mimebundle", self, **kwargs)

    def __repr__(self) -> str:
        layer, head = np.unravel_index(int(np.argmin(self.change)), self.change.shape)
        return (
            f"AblationMap({self.mode}-ablating one head at a time on {self.n_texts} text(s): "
            f"{self.target} {self.before:.4g}; largest drop L{layer}H{head} "
            f"({self.change[layer, head]:+.4g}))"
        )


def ablation_map(
    model: Any,
    texts: str | Sequence[str],
    *,
    mode: AblationMode = "zero",
    reference: str | Sequence[str] | None = None,
    target: TargetLike | CopyingAccuracy | Sequence[TargetLike] = None,
    position: int = -1,
    batch_size: int = 32,
    tokenizer: Any = None,
) -> AblationMap:
    """Ablate every head alone (as :func:`ablate_heads` does) and map the target: one run
    without ablation, then one per head."""
    run = _AblationRun.checked(model, texts, None, mode, reference, target, tokenizer)
    parts = run.parts
    values = np.zeros((parts.n_layers, parts.n_heads()), np.float32)
    with torch.no_grad(), eval_mode(run.hf_model):
        fills = {
            layer: fill
            for layer, _, fill in _fills(
                run.explainable, parts, run.heads, mode, run.references, batch_size
            )
        }
        before, weights, bound = run.measure(run.targets, position, batch_size)
        for layer, head in run.heads:
            fill = fills[layer]
            with borrowed_hooks() as hooks:
                parts.replace_heads(
                    hooks, layer, _writer([head], None if fill is None else fill[head : head + 1])
                )
                after, _, _ = run.measure(bound, position, batch_size)
            values[layer, head] = np.average(after, weights=weights)
    return AblationMap(
        target=run.describe(bound),
        mode=mode,
        n_texts=len(run.texts),
        before=float(np.average(before, weights=weights)),
        values=values,
        metadata={"model": run.explainable.name, "forward_passes": len(run.heads) + 1},
    )
