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
from typing import Any

import torch

from llmasos_widgets._hooks import borrowed_hooks
from llmasos_widgets.interventions._patching import bind_pair_target, encode_pair
from llmasos_widgets.interventions._runs import forward_logits
from llmasos_widgets.targets import TargetLike, resolve_position
from llmasos_widgets.tracing import Anatomy, anatomy, eval_mode

Receiver = tuple[int, int, str]


@dataclass(frozen=True, kw_only=True)
class PathPatchingResult:
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


def _slice(parts: Anatomy, layer: int, head: int, which: str) -> slice:
    """The columns of head ``head``'s query (or its key/value head's key/value)."""
    dim = parts.head_dim(layer)
    if which != "q":
        width = getattr(parts.attention_projection(layer, which), "out_features")  # noqa: B009
        n_kv = int(width) // dim
        head = head // (parts.n_heads(layer) // n_kv)
    return slice(head * dim, (head + 1) * dim)


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
    hf_model = explainable.hf_model
    clean_ids, corrupted_ids, _, _ = encode_pair(explainable, clean, corrupted)
    at = resolve_position(position, int(clean_ids.shape[1]))
    both = torch.cat([clean_ids, corrupted_ids])[:, : at + 1]
    corrupted_only = both[1:]
    parts = anatomy(hf_model)
    senders_checked, receivers_checked = _check(parts, senders, receivers)
    by_layer: dict[int, list[int]] = {}
    for layer, head in senders_checked:
        by_layer.setdefault(layer, []).append(head)
    with eval_mode(hf_model):
        # 1. every head's output on both prompts
        outputs: dict[int, torch.Tensor] = {}
        with borrowed_hooks() as hooks:
            for layer in range(parts.n_layers):
                parts.read_heads(hooks, layer, _keeper(outputs, layer))
            logits = forward_logits(hf_model, both, keep=1)[:, 0]
        bound = bind_pair_target(target, explainable.tokenizer, at, logits)
        clean_value, corrupted_value = (float(v) for v in bound(logits))
        if clean_value == corrupted_value:
            raise ValueError(
                f"the target {bound.description} is {clean_value:.4g} on both prompts: "
                "patching cannot move it"
            )

        def senders_clean(layer: int, frozen: bool) -> Any:
            def replace(current: torch.Tensor) -> torch.Tensor:
                base = outputs[layer][1:] if frozen else current
                out = base.clone()
                for head in by_layer.get(layer, []):
                    out[:, :, head] = outputs[layer][0, :, head]
                return out

            return replace

        # every path: the senders clean, nothing frozen
        with borrowed_hooks() as hooks:
            for layer in by_layer:
                parts.replace_heads(hooks, layer, senders_clean(layer, frozen=False))
            total_value = float(bound(forward_logits(hf_model, corrupted_only, keep=1)[:, 0])[0])
        # 2. the senders clean, every other head frozen at its corrupted output
        inputs: dict[int, torch.Tensor] = {}
        with borrowed_hooks() as hooks:
            for layer in range(parts.n_layers):
                parts.replace_heads(hooks, layer, senders_clean(layer, frozen=True))
            if not isinstance(receivers_checked, str):
                for layer in {layer for layer, _, _ in receivers_checked}:
                    hooks.forward_pre(
                        parts.attention_projection(layer, "q"), _input_keeper(inputs, layer)
                    )
            frozen_value = float(bound(forward_logits(hf_model, corrupted_only, keep=1)[:, 0])[0])
        path_value = frozen_value
        if not isinstance(receivers_checked, str):
            # 3. only the receivers' q/k/v from run 2's attention inputs
            sources = [
                (
                    parts.attention_projection(layer, which),
                    _slice(parts, layer, head, which),
                    parts.attention_projection(layer, which)(inputs[layer]),
                )
                for layer, head, which in receivers_checked
            ]
            with borrowed_hooks() as hooks:
                for projection, columns, source in sources:
                    hooks.forward(projection, _columns_replacer(columns, source[..., columns]))
                path_value = float(bound(forward_logits(hf_model, corrupted_only, keep=1)[:, 0])[0])
    return PathPatchingResult(
        clean_text=clean,
        corrupted_text=corrupted,
        target=bound.description,
        senders=senders_checked,
        receivers=receivers_checked,
        clean_value=clean_value,
        corrupted_value=corrupted_value,
        path_value=path_value,
        total_value=total_value,
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
