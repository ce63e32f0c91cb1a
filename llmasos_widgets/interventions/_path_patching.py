"""Path patching: the effect of some heads (senders) that reaches the target only through
chosen receivers -- other heads' queries, keys or values, or the logits directly.

Three runs, as in Wang et al. (2022) and TransformerLens's path-patching demo:

1. clean and corrupted (one batch): every head's output on both prompts;
2. corrupted, with the senders' outputs set to their clean values and every other head frozen
   at its corrupted output, so the senders' effect reaches later layers only through the
   residual stream (and the MLPs, which recompute); the receivers' attention inputs are kept;
3. corrupted, with only the receivers' query, key or value computed from those inputs.

The target of run 3, normalised (corrupted = 0, clean = 1), is the effect through that path.
For ``receivers="logits"`` run 2's own target is the effect (senders -> residual -> logits,
other heads frozen). :attr:`PathPatchingResult.total_effect` patches the senders with nothing
frozen, for scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from llmasos_widgets._hooks import borrowed_hooks
from llmasos_widgets.interventions._files import SavedResult, saved_kind
from llmasos_widgets.interventions._patching import bind_pair_target, encode_pair
from llmasos_widgets.interventions._runs import forward_logits
from llmasos_widgets.targets import TargetLike, resolve_position
from llmasos_widgets.tracing import Anatomy, anatomy, eval_mode

Receiver = tuple[int, int, str]


@saved_kind
@dataclass(frozen=True, kw_only=True)
class PathPatchingResult(SavedResult):
    """Effect of ``senders`` on the target through ``receivers`` only."""

    clean_text: str
    corrupted_text: str
    target: str
    senders: tuple[tuple[int, int], ...]
    receivers: tuple[Receiver, ...] | str
    """``(layer, head, "q" | "k" | "v")`` triples, or ``"logits"``."""
    clean_value: float
    corrupted_value: float
    path_value: float
    """The target with the senders' effect let through the receivers only."""
    total_value: float
    """The target with the senders patched and nothing frozen (every path)."""

    def _normalise(self, value: float) -> float:
        return (value - self.corrupted_value) / (self.clean_value - self.corrupted_value)

    @property
    def effect(self) -> float:
        """Through the receivers only: 0 = none, 1 = the whole clean - corrupted difference."""
        return self._normalise(self.path_value)

    @property
    def total_effect(self) -> float:
        """Of the senders through every path (activation patching of all senders together)."""
        return self._normalise(self.total_value)

    def to_html(self, path: str | Path) -> Path:
        """Write a standalone HTML page of the senders, receivers and both effects (the
        ``"html"`` view registered by ``llmasos_widgets.export``); returns the path."""
        from llmasos_widgets._views import render

        written: Path = render("html", self, Path(path))
        return written

    def __repr__(self) -> str:
        senders = ", ".join(f"L{layer}H{head}" for layer, head in self.senders)
        receivers = (
            self.receivers
            if isinstance(self.receivers, str)
            else ", ".join(f"L{layer}H{head}.{which}" for layer, head, which in self.receivers)
        )
        return (
            f"PathPatchingResult({senders} -> {receivers}: effect {self.effect:.3f} of the "
            f"clean-corrupted difference, total {self.total_effect:.3f}; {self.target})"
        )


@saved_kind
@dataclass(frozen=True, kw_only=True)
class PathPatchingMap(SavedResult):
    """The senders' effect through each later head's query, key or value alone (``which``),
    as a ``[layer, head]`` map; shown by the PatchingWidget."""

    clean_text: str
    corrupted_text: str
    target: str
    senders: tuple[tuple[int, int], ...]
    which: str
    """``"q"``, ``"k"`` or ``"v"``: the receivers' input patched."""
    clean_value: float
    corrupted_value: float
    total_value: float
    values: np.ndarray
    """float32 ``[layer, head]``: the target through that head's input alone; NaN for the
    layers up to the first sender's, which cannot receive."""
    n_layers: int
    n_heads: int

    @property
    def effect(self) -> np.ndarray:
        """float32 ``[layer, head]``, normalised: 0 = none, 1 = the whole clean - corrupted
        difference."""
        span = self.clean_value - self.corrupted_value
        return ((self.values - self.corrupted_value) / span).astype(np.float32)

    @property
    def total_effect(self) -> float:
        return (self.total_value - self.corrupted_value) / (self.clean_value - self.corrupted_value)

    def to_html(self, path: str | Path) -> Path:
        """Write a standalone HTML page of the ``[layer, head]`` map (the ``"html"`` view
        registered by ``llmasos_widgets.export``); returns the path."""
        from llmasos_widgets._views import render

        written: Path = render("html", self, Path(path))
        return written

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """In a notebook: the PatchingWidget (a view registered by ``widgets``)."""
        from llmasos_widgets._views import render

        return render("mimebundle", self, **kwargs)


def _check(parts: Anatomy, senders: Sequence[Any], receivers: Any) -> tuple[Any, Any]:
    n_heads = parts.n_heads()
    checked_senders = []
    for layer, head in senders:
        if not (0 <= layer < parts.n_layers and 0 <= head < n_heads):
            raise ValueError(f"sender (L{layer}, H{head}) does not exist in this model")
        checked_senders.append((int(layer), int(head)))
    if not checked_senders:
        raise ValueError("senders is empty: give at least one (layer, head)")
    if isinstance(receivers, str):
        if receivers != "logits":
            raise ValueError(
                "receivers must be 'logits' or (layer, head, 'q'|'k'|'v') triples, "
                f"got {receivers!r}"
            )
        return tuple(checked_senders), receivers
    first = min(layer for layer, _ in checked_senders)
    checked = []
    for layer, head, which in receivers:
        if which not in ("q", "k", "v"):
            raise ValueError(
                f"receiver ({layer}, {head}, {which!r}): which must be 'q', 'k' or 'v'"
            )
        if not (0 <= head < n_heads and first < layer < parts.n_layers):
            raise ValueError(
                f"receiver (L{layer}, H{head}) must be a head of a layer after the first "
                f"sender's (L{first})"
            )
        checked.append((int(layer), int(head), str(which)))
    if not checked:
        raise ValueError("receivers is empty")
    return tuple(checked_senders), tuple(checked)


@dataclass
class _FrozenRuns:
    """Runs 1 and 2, shared by every receiver: the bound target, the clean, corrupted and
    every-path values, the frozen run's value, and each layer's attention input in it."""

    parts: Anatomy
    hf_model: Any
    corrupted_ids: torch.Tensor
    bound: Any
    clean_value: float
    corrupted_value: float
    total_value: float
    frozen_value: float
    inputs: dict[int, torch.Tensor]

    def through(self, receivers: Sequence[Receiver]) -> float:
        """Run 3: the target with only ``receivers``' q/k/v from the frozen run's inputs."""
        parts = self.parts
        sources = [
            (
                parts.attention_projection(layer, which),
                parts.head_columns(layer, head, which),
                parts.attention_projection(layer, which)(self.inputs[layer]),
            )
            for layer, head, which in receivers
        ]
        with borrowed_hooks() as hooks:
            for projection, columns, source in sources:
                hooks.forward(projection, _columns_replacer(columns, source[..., columns]))
            logits = forward_logits(self.hf_model, self.corrupted_ids, keep=1)[:, 0]
        return float(self.bound(logits)[0])


def _frozen_runs(
    explainable: Any,
    clean: str,
    corrupted: str,
    senders: tuple[tuple[int, int], ...],
    target: TargetLike,
    position: int,
) -> _FrozenRuns:
    hf_model = explainable.hf_model
    clean_ids, corrupted_ids, _, _ = encode_pair(explainable, clean, corrupted)
    at = resolve_position(position, int(clean_ids.shape[1]))
    both = torch.cat([clean_ids, corrupted_ids])[:, : at + 1]
    parts = anatomy(hf_model)
    by_layer: dict[int, list[int]] = {}
    for layer, head in senders:
        by_layer.setdefault(layer, []).append(head)
    # 1. every head's output on both prompts
    outputs: dict[int, torch.Tensor] = {}
    with borrowed_hooks() as hooks:
        for layer in range(parts.n_layers):
            parts.read_heads(hooks, layer, _keeper(outputs, layer))
        logits = forward_logits(hf_model, both, keep=1)[:, 0]
    bound, clean_value, corrupted_value = bind_pair_target(
        target, explainable.tokenizer, at, logits
    )

    def senders_clean(layer: int, frozen: bool) -> Any:
        def replace(current: torch.Tensor) -> torch.Tensor:
            out = (outputs[layer][1:] if frozen else current).clone()
            for head in by_layer.get(layer, []):
                out[:, :, head] = outputs[layer][0, :, head]
            return out

        return replace

    def value(logits: torch.Tensor) -> float:
        return float(bound(logits[:, 0])[0])

    # every path: the senders clean, nothing frozen
    with borrowed_hooks() as hooks:
        for layer in by_layer:
            parts.replace_heads(hooks, layer, senders_clean(layer, frozen=False))
        total_value = value(forward_logits(hf_model, both[1:], keep=1))
    # 2. the senders clean, every other head frozen at its corrupted output
    inputs: dict[int, torch.Tensor] = {}
    with borrowed_hooks() as hooks:
        for layer in range(parts.n_layers):
            parts.replace_heads(hooks, layer, senders_clean(layer, frozen=True))
            hooks.forward_pre(parts.attention_projection(layer, "q"), _input_keeper(inputs, layer))
        frozen_value = value(forward_logits(hf_model, both[1:], keep=1))
    return _FrozenRuns(
        parts, hf_model, both[1:], bound, clean_value, corrupted_value, total_value,
        frozen_value, inputs,
    )  # fmt: skip


@torch.no_grad()
def path_patching(
    model: Any,
    clean: str,
    corrupted: str,
    *,
    senders: Sequence[tuple[int, int]],
    receivers: Sequence[tuple[int, int, str]] | str = "logits",
    target: TargetLike = None,
    position: int = -1,
    tokenizer: Any = None,
) -> PathPatchingResult:
    """The effect of ``senders`` (``[(layer, head), ...]``) on ``target`` through
    ``receivers`` only: ``[(layer, head, "q"|"k"|"v"), ...]`` (that input of later heads) or
    ``"logits"`` (the residual stream to the unembedding). ``target`` and ``position`` as in
    :func:`activation_patching`. Four forward passes."""
    from llmasos_widgets.models import as_explainable

    explainable = as_explainable(model, tokenizer)
    parts = anatomy(explainable.hf_model)
    senders_checked, receivers_checked = _check(parts, senders, receivers)
    with eval_mode(explainable.hf_model):
        runs = _frozen_runs(explainable, clean, corrupted, senders_checked, target, position)
        path_value = (
            runs.frozen_value
            if isinstance(receivers_checked, str)
            else runs.through(receivers_checked)
        )
    return PathPatchingResult(
        clean_text=clean,
        corrupted_text=corrupted,
        target=runs.bound.description,
        senders=senders_checked,
        receivers=receivers_checked,
        clean_value=runs.clean_value,
        corrupted_value=runs.corrupted_value,
        path_value=path_value,
        total_value=runs.total_value,
    )


@torch.no_grad()
def path_patching_map(
    model: Any,
    clean: str,
    corrupted: str,
    *,
    senders: Sequence[tuple[int, int]],
    which: str = "k",
    target: TargetLike = None,
    position: int = -1,
    tokenizer: Any = None,
) -> PathPatchingMap:
    """:func:`path_patching` with each later head alone as the receiver (its ``which`` input):
    where the senders' effect arrives. Three forward passes, then one per receiving head."""
    from llmasos_widgets.models import as_explainable

    explainable = as_explainable(model, tokenizer)
    parts = anatomy(explainable.hf_model)
    senders_checked, _ = _check(parts, senders, "logits")
    if which not in ("q", "k", "v"):
        raise ValueError(f"which must be 'q', 'k' or 'v', got {which!r}")
    first = min(layer for layer, _ in senders_checked)
    n_heads = parts.n_heads()
    values = np.full((parts.n_layers, n_heads), np.nan, np.float32)
    with eval_mode(explainable.hf_model):
        runs = _frozen_runs(explainable, clean, corrupted, senders_checked, target, position)
        for layer in range(first + 1, parts.n_layers):
            for head in range(n_heads):
                values[layer, head] = runs.through([(layer, head, which)])
    return PathPatchingMap(
        clean_text=clean,
        corrupted_text=corrupted,
        target=runs.bound.description,
        senders=senders_checked,
        which=which,
        clean_value=runs.clean_value,
        corrupted_value=runs.corrupted_value,
        total_value=runs.total_value,
        values=values,
        n_layers=parts.n_layers,
        n_heads=n_heads,
    )


def _keeper(store: dict[int, torch.Tensor], layer: int) -> Any:
    def keep(heads: torch.Tensor) -> None:
        store[layer] = heads.detach().clone()

    return keep


def _input_keeper(store: dict[int, torch.Tensor], layer: int) -> Any:
    def keep(_module: Any, args: tuple[Any, ...]) -> None:
        store[layer] = args[0].detach().clone()

    return keep


def _columns_replacer(columns: slice, source: torch.Tensor) -> Any:
    def replace(_module: Any, _args: Any, output: torch.Tensor) -> torch.Tensor:
        out = output.clone()
        out[..., columns] = source
        return out

    return replace
