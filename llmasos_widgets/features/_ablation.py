"""``ablate_features``: feature ablation as a scoped block, or measured like ``ablate_heads``."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, overload

import numpy as np
import torch

from llmasos_widgets.features._positions import Positions
from llmasos_widgets.features._sae import SparseAutoencoder
from llmasos_widgets.features._steering import _latents, ablating_features
from llmasos_widgets.targets import TargetLike, resolve_position, resolve_target
from llmasos_widgets.tracing import eval_mode


@dataclass(frozen=True, kw_only=True)
class FeatureAblationResult:
    """A target measured on ``texts`` without (``values_before``) and with (``values_after``)
    the SAE ``latents`` removed from site ``site``; one value per text, as
    :class:`~llmasos_widgets.interventions.AblationResult`."""

    latents: tuple[int, ...]
    site: int
    target: str
    texts: tuple[str, ...]
    values_before: np.ndarray
    """float64 ``[text]``."""
    values_after: np.ndarray
    """float64 ``[text]``."""
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.texts)
        for name in ("values_before", "values_after"):
            value = getattr(self, name)
            if not isinstance(value, np.ndarray) or value.shape != (n,):
                raise ValueError(f"{name} must be an array of shape ({n},), one per text")

    @property
    def before(self) -> float:
        return float(self.values_before.mean())

    @property
    def after(self) -> float:
        return float(self.values_after.mean())

    @property
    def change(self) -> float:
        return self.after - self.before

    def __repr__(self) -> str:
        return (
            f"FeatureAblationResult(latents {list(self.latents)} at site {self.site} on "
            f"{len(self.texts)} text(s): {self.target} {self.before:.4g} -> {self.after:.4g} "
            f"(change {self.change:+.4g}))"
        )


@overload
def ablate_features(
    model: Any,
    sae: SparseAutoencoder,
    latents: int | Sequence[int],
    texts: None = None,
    *,
    positions: Positions = None,
) -> AbstractContextManager[None]: ...
@overload
def ablate_features(
    model: Any,
    sae: SparseAutoencoder,
    latents: int | Sequence[int],
    texts: str | Sequence[str],
    *,
    target: TargetLike | Sequence[TargetLike] = None,
    position: int = -1,
    positions: Positions = None,
    batch_size: int = 32,
    tokenizer: Any = None,
) -> FeatureAblationResult: ...
def ablate_features(
    model: Any,
    sae: SparseAutoencoder,
    latents: int | Sequence[int],
    texts: str | Sequence[str] | None = None,
    *,
    target: TargetLike | Sequence[TargetLike] = None,
    position: int = -1,
    positions: Positions = None,
    batch_size: int = 32,
    tokenizer: Any = None,
) -> AbstractContextManager[None] | FeatureAblationResult:
    """Remove SAE ``latents``' contributions ``f_i(x) * W_dec[i]`` from the SAE's site, keeping
    the rest of the reconstruction and the error term.

    Without ``texts``: a context manager; every forward inside the block is ablated
    (``with ablate_features(model, sae, [3, 7]): model.generate(...)``).

    With ``texts``: measure ``target`` on each text without and with the ablation, as
    :func:`~llmasos_widgets.interventions.ablate_heads` does (a token target at ``position``:
    ``" are"`` its log-probability, ``(" are", " is")`` the logit difference, ``None`` the
    model's own prediction, or one per text), and return a :class:`FeatureAblationResult`.

    ``positions``: ablate only there (``None``: everywhere), as in
    :func:`~llmasos_widgets.features.steer`; ``position`` is where the target is read.
    """
    if texts is None:
        return ablating_features(model, sae, latents, positions)
    from llmasos_widgets.models import as_explainable

    explainable = as_explainable(model, tokenizer)
    chosen = _latents(sae, latents)
    block = ablating_features(explainable, sae, chosen, positions)  # checks d_in and site first
    text_list = [texts] if isinstance(texts, str) else list(texts)
    if not text_list or not all(isinstance(t, str) for t in text_list):
        raise TypeError("texts must be a str or a non-empty list of str")
    if isinstance(target, list):
        if len(target) != len(text_list):
            raise ValueError(f"target has {len(target)} entries for {len(text_list)} texts")
        targets = list(target)
    else:
        targets = [target] * len(text_list)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    ids = [explainable.encode(text) for text in text_list]
    with torch.no_grad(), eval_mode(explainable.hf_model):
        before, bound = _measure(explainable, ids, targets, position, batch_size)
        with block:
            after, _ = _measure(explainable, ids, bound, position, batch_size)
    descriptions = {spec.description for spec in bound}
    return FeatureAblationResult(
        latents=tuple(chosen),
        site=sae.site,
        target=descriptions.pop() if len(descriptions) == 1 else f"{len(bound)} per-text targets",
        texts=tuple(text_list),
        values_before=before,
        values_after=after,
        metadata={"model": explainable.name},
    )


def _measure(
    explainable: Any, ids: list[torch.Tensor], targets: list[Any], position: int, batch_size: int
) -> tuple[np.ndarray, list[Any]]:
    """Each text's target value at ``position``, texts of one length batched; targets are
    bound to token ids on the first (unablated) pass, so ``None`` means the clean prediction."""
    values = np.zeros(len(ids), np.float64)
    bound = list(targets)
    by_length: dict[int, list[int]] = {}
    for index, tokens in enumerate(ids):
        by_length.setdefault(int(tokens.shape[-1]), []).append(index)
    for length, members in by_length.items():
        at = resolve_position(position, length)
        for start in range(0, len(members), batch_size):
            chunk = members[start : start + batch_size]
            batch = torch.cat([ids[i] for i in chunk])
            out = explainable.hf_model(input_ids=batch, use_cache=False, logits_to_keep=length - at)
            logits = out.logits[:, 0]
            for row, index in enumerate(chunk):
                spec = bound[index]
                if not hasattr(spec, "token_id"):
                    spec = bound[index] = resolve_target(
                        spec, explainable.tokenizer, position=at, logits_at_position=logits[row]
                    )
                values[index] = float(spec(logits[row : row + 1])[0])
    return values, bound
