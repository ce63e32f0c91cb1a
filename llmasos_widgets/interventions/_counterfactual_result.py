"""What :func:`~llmasos_widgets.interventions.counterfactuals` returns: the target's value per
fill of a template, its spread, and for a few pairs of fills where in the model the
difference arises (direct logit attribution, exact; attribution patching, an estimate).

Plain data: the page and the notebook view are registered by ``export`` and ``widgets``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from llmasos_widgets.interventions._attribution_patching import AttributionPatchingResult
from llmasos_widgets.interventions._files import SavedResult, saved_kind
from llmasos_widgets.interventions._logit_attribution import LogitAttribution


@saved_kind
@dataclass(frozen=True, kw_only=True)
class CounterfactualPair:
    """Two fills side by side: ``clean`` (the first named) against ``corrupted``.

    ``dla_clean``/``dla_corrupted`` attribute each prompt's target *logit* (difference) to the
    heads, MLPs and embeddings (exact, no estimate); :attr:`dla_difference` is where the gap
    between the two arises directly. ``atp`` patches ``clean`` into ``corrupted`` to first
    order (an :class:`AttributionPatchingResult`, labelled as an estimate); it is ``None``
    with :attr:`atp_skipped` saying why when the prompts differ in token count (patching needs
    position-aligned prompts) or agree on the target.
    """

    clean: str
    corrupted: str
    clean_value: float
    corrupted_value: float
    dla_clean: LogitAttribution
    dla_corrupted: LogitAttribution
    atp: AttributionPatchingResult | None = None
    atp_skipped: str | None = None

    @property
    def dla_difference(self) -> np.ndarray:
        """float32 ``[layer, head]``: each head's direct contribution at the target position
        on ``clean`` minus on ``corrupted``."""
        return (self.dla_clean.head_map - self.dla_corrupted.head_map).astype(np.float32)

    @property
    def component_difference(self) -> np.ndarray:
        """float32 ``[component]`` (``emb``, ``L0 attn``, ``L0 MLP``, ...): the same for the
        components; with the biases it sums to the difference of the two logits (differences)."""
        clean = self.dla_clean.component_map[:, self.dla_clean.position]
        corrupted = self.dla_corrupted.component_map[:, self.dla_corrupted.position]
        return (clean - corrupted).astype(np.float32)

    def top_heads(self, k: int = 5) -> list[tuple[int, int, float]]:
        """The ``k`` heads whose direct contributions differ most between the two fills."""
        diff = self.dla_difference
        flat = np.argsort(-np.abs(diff), axis=None, kind="stable")[:k]
        return [
            (int(layer), int(head), float(diff[layer, head]))
            for layer, head in zip(*np.unravel_index(flat, diff.shape), strict=True)
        ]


@saved_kind
@dataclass(frozen=True, kw_only=True)
class CounterfactualResult(SavedResult):
    """The target on every fill of one template.

    ``values[i]`` is the target read after token ``positions[i]`` of ``prompts[i]`` (the
    template with ``fills[i]``); the spread (:attr:`std`, :attr:`range`, ...) is over fills.
    """

    template: str
    slots: tuple[str, ...]
    fills: tuple[str, ...]
    """One label per fill: the slot's value (several slots: the values joined by `` | ``)."""
    prompts: tuple[str, ...]
    values: np.ndarray
    """float32 ``[fill]``: the target on each prompt."""
    positions: np.ndarray
    """int64 ``[fill]``: the token position each value is read after."""
    n_tokens: np.ndarray
    """int64 ``[fill]``: each prompt's token count."""
    target: str
    """What was read, e.g. ``logit('are') - logit('is') after the last token``."""
    score: str
    """``"logit difference"``, ``"logit"`` or ``"log-probability"``."""
    reference: str | None = None
    """The fill the others are compared with (:attr:`differences`), when one was named."""
    pairs: tuple[CounterfactualPair, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.fills)
        if n == 0:
            raise ValueError("a counterfactual result needs at least one fill")
        for name in ("prompts", "values", "positions", "n_tokens"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} entries for {n} fills")
        if len(set(self.fills)) != n:
            raise ValueError("fill labels must be unique")
        if self.reference is not None and self.reference not in self.fills:
            raise ValueError(f"reference {self.reference!r} is not one of the fills")

    def value(self, fill: str) -> float:
        """The value of one fill, by its label."""
        return float(self.values[self.index(fill)])

    def index(self, fill: str) -> int:
        try:
            return self.fills.index(fill)
        except ValueError:
            raise KeyError(f"{fill!r} is not a fill of this result") from None

    @property
    def probabilities(self) -> np.ndarray:
        """float32 ``[fill]``: ``exp(values)`` for a log-probability target."""
        if self.score != "log-probability":
            raise ValueError(f"the values are a {self.score}, not log-probabilities")
        return np.exp(self.values.astype(np.float64)).astype(np.float32)

    @property
    def differences(self) -> np.ndarray:
        """float32 ``[fill]``: each value minus the :attr:`reference` fill's."""
        if self.reference is None:
            raise ValueError("no reference fill was named: pass reference=... to counterfactuals")
        return (self.values - self.values[self.index(self.reference)]).astype(np.float32)

    @property
    def mean(self) -> float:
        return float(self.values.astype(np.float64).mean())

    @property
    def std(self) -> float:
        """Population standard deviation over fills (``ddof=0``)."""
        return float(self.values.astype(np.float64).std())

    @property
    def min(self) -> float:
        return float(self.values.min())

    @property
    def max(self) -> float:
        return float(self.values.max())

    @property
    def range(self) -> float:
        """``max - min``: the largest gap between two fills."""
        return self.max - self.min

    @property
    def spread(self) -> dict[str, float]:
        """``{"mean", "std", "min", "max", "range"}`` in one dict."""
        return {
            "mean": self.mean,
            "std": self.std,
            "min": self.min,
            "max": self.max,
            "range": self.range,
        }

    def ranked(self) -> list[tuple[str, float]]:
        """``(fill, value)`` from the largest value to the smallest (ties in fill order)."""
        order = np.argsort(-self.values, kind="stable")
        return [(self.fills[i], float(self.values[i])) for i in order]

    def to_pandas(self) -> Any:
        """A pandas DataFrame, one row per fill (needs pandas)."""
        try:
            import pandas as pd
        except ImportError as error:
            raise ImportError("to_pandas() needs pandas: pip install pandas") from error
        columns: dict[str, Any] = {
            "fill": list(self.fills),
            "prompt": list(self.prompts),
            "value": self.values,
            "position": self.positions,
            "n_tokens": self.n_tokens,
        }
        if self.reference is not None:
            columns["difference"] = self.differences
        return pd.DataFrame(columns).set_index("fill")

    def to_html(self, path: str | Path) -> Path:
        """Write a standalone HTML page: the values, the spread and each pair's maps (the
        ``"html"`` view registered by ``llmasos_widgets.export``); returns the path."""
        from llmasos_widgets._views import render

        written: Path = render("html", self, Path(path))
        return written

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """In a notebook: the same tables as the page (a view registered by ``widgets``)."""
        from llmasos_widgets._views import render

        return render("mimebundle", self, **kwargs)

    def __repr__(self) -> str:
        return (
            f"CounterfactualResult({self.target} over {len(self.fills)} fills of "
            f"{self.template!r}: mean {self.mean:.4g}, std {self.std:.4g}, range {self.range:.4g}"
            f" ({self.ranked()[0][0]!r} {self.max:.4g} .. {self.ranked()[-1][0]!r} "
            f"{self.min:.4g}); {len(self.pairs)} attributed pair(s))"
        )
