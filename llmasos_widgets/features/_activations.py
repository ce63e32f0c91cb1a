"""``FeatureActivations``: one SAE's active latents on one text, sparse, plus what each
latent that occurs writes to the logits.

Layout (CSR over tokens, as ``scipy.sparse.csr_matrix``): token ``t``'s active latents are
``latents[indptr[t]:indptr[t + 1]]`` with activations ``values[...]``, sorted by activation,
largest first. ``error_norm[t]`` is ``|x_t - sae(x_t)|``: the part of the residual the
dictionary does not explain. Logit effects are stored for ``effect_latents`` only (the latents
that occur in the text): the model's head (final norm, unembedding) read on each latent's
decoder direction, its ``k`` most promoted and most suppressed tokens. Like the logit lens of
the earlier sites (``explanation/_lens.py``) they are read when first asked for (a view, the
report, ``save``), not during ``explain``: on a small model reading them costs as much as
the rest of the capture (:class:`LogitEffects`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

_EFFECT_ARRAYS = ("promoted_ids", "promoted_logits", "suppressed_ids", "suppressed_logits")
EffectsReader = Callable[[], tuple[dict[str, np.ndarray], dict[int, str]]]


class LogitEffects:
    """The effect arrays of :class:`FeatureActivations` (``[latent, k]`` each, see
    :data:`_EFFECT_ARRAYS`) and the strings of the token ids in them; given, or read once by
    ``reader`` on first access (thread-safe)."""

    def __init__(
        self,
        *,
        arrays: Mapping[str, np.ndarray] | None = None,
        strings: Mapping[int, str] | None = None,
        reader: EffectsReader | None = None,
    ) -> None:
        if (arrays is None) == (reader is None):
            raise ValueError("LogitEffects needs its arrays or a reader, not both")
        self._arrays = None if arrays is None else {n: arrays[n] for n in _EFFECT_ARRAYS}
        self._strings = dict(strings or {})
        self._reader = reader
        self._lock = threading.Lock()

    @property
    def pending(self) -> bool:
        """Not read yet."""
        return self._arrays is None

    def read(self) -> tuple[dict[str, np.ndarray], dict[int, str]]:
        with self._lock:
            if self._arrays is None:
                assert self._reader is not None
                self._arrays, self._strings = self._reader()
                self._reader = None  # read: the SAE and the model are no longer needed
            return self._arrays, self._strings


@dataclass(frozen=True, kw_only=True, eq=False)
class FeatureActivations:
    """One SAE's latents on one text (see the module docstring for the layout)."""

    name: str
    """The SAE's name in this explanation (its ``hook_name``, else ``sae@<site label>``)."""
    site: int
    """Residual site read: 0 = ``emb``, ``i`` = ``after L{i-1}``."""
    d_sae: int
    indptr: np.ndarray
    """int64 ``[token + 1]``."""
    latents: np.ndarray
    """int64 ``[nnz]``: active latents, per token sorted by activation (descending)."""
    values: np.ndarray
    """float32 ``[nnz]``: their activations (> 0)."""
    error_norm: np.ndarray
    """float32 ``[token]``: norm of the reconstruction error."""
    effect_latents: np.ndarray
    """int64 ``[m]``: sorted latents whose logit effects are stored (those in ``latents``)."""
    effects: LogitEffects = field(repr=False)
    """Their logit effects, read on first use: see :attr:`promoted_ids` and the others."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """JSON facts (activation kind, ``k``, latents kept per token)."""

    def __post_init__(self) -> None:
        n = len(self.error_norm)
        if self.indptr.shape != (n + 1,) or self.indptr[0] != 0:
            raise ValueError(f"indptr must be [{n + 1}] from 0; got {tuple(self.indptr.shape)}")
        nnz = int(self.indptr[-1])
        if self.latents.shape != (nnz,) or self.values.shape != (nnz,):
            raise ValueError(
                f"latents and values must be [{nnz}] (indptr[-1]); got "
                f"{tuple(self.latents.shape)}, {tuple(self.values.shape)}"
            )
        if nnz and not (self.latents.min() >= 0 and self.latents.max() < self.d_sae):
            raise ValueError(f"latents must lie in 0..{self.d_sae - 1}")
        if not self.effects.pending:
            self._check_effects(self.effects.read()[0])

    def _check_effects(self, arrays: Mapping[str, np.ndarray]) -> None:
        m = len(self.effect_latents)
        for name in _EFFECT_ARRAYS:
            array = arrays[name]
            if array.ndim != 2 or array.shape[0] != m:
                raise ValueError(f"{name} must be [{m}, k]; got {tuple(array.shape)}")

    # ---- logit effects (read on first use) ---------------------------------------------
    @property
    def promoted_ids(self) -> np.ndarray:
        """int64 ``[m, k]``: tokens each effect latent's direction raises most (largest
        first)."""
        return self.effects.read()[0]["promoted_ids"]

    @property
    def promoted_logits(self) -> np.ndarray:
        """float32 ``[m, k]``: their logits, the head read on the direction."""
        return self.effects.read()[0]["promoted_logits"]

    @property
    def suppressed_ids(self) -> np.ndarray:
        """int64 ``[m, k]``: tokens it lowers most (most negative first)."""
        return self.effects.read()[0]["suppressed_ids"]

    @property
    def suppressed_logits(self) -> np.ndarray:
        """float32 ``[m, k]``."""
        return self.effects.read()[0]["suppressed_logits"]

    def _strings(self, ids: np.ndarray) -> tuple[str, ...]:
        strings = self.effects.read()[1]
        return tuple(strings.get(int(i), f"<id {int(i)}>") for i in ids)

    @property
    def promoted_tokens(self) -> tuple[tuple[str, ...], ...]:
        """``[m][k]`` strings of :attr:`promoted_ids`."""
        return tuple(self._strings(row) for row in self.promoted_ids)

    @property
    def suppressed_tokens(self) -> tuple[tuple[str, ...], ...]:
        """``[m][k]`` strings of :attr:`suppressed_ids`."""
        return tuple(self._strings(row) for row in self.suppressed_ids)

    @property
    def n_tokens(self) -> int:
        return len(self.error_norm)

    def token(self, position: int) -> tuple[np.ndarray, np.ndarray]:
        """Token ``position``'s active latents and activations, largest first."""
        if not 0 <= position < self.n_tokens:
            raise ValueError(f"position {position} is out of range 0..{self.n_tokens - 1}")
        start, end = int(self.indptr[position]), int(self.indptr[position + 1])
        return self.latents[start:end], self.values[start:end]

    def top(self, position: int, n: int = 5) -> list[tuple[int, float]]:
        """Token ``position``'s ``n`` most active latents as ``(latent, activation)``."""
        latents, values = self.token(position)
        return [(int(a), float(v)) for a, v in zip(latents[:n], values[:n], strict=True)]

    def dense(self) -> np.ndarray:
        """float32 ``[token, d_sae]`` (zeros where a latent is not active)."""
        out = np.zeros((self.n_tokens, self.d_sae), dtype=np.float32)
        rows = np.repeat(np.arange(self.n_tokens), np.diff(self.indptr))
        out[rows, self.latents] = self.values
        return out

    def activations(self, latent: int) -> np.ndarray:
        """float32 ``[token]``: latent ``latent``'s activation on every token."""
        if not 0 <= latent < self.d_sae:
            raise ValueError(f"latent {latent} does not exist: this SAE has {self.d_sae}")
        out = np.zeros(self.n_tokens, dtype=np.float32)
        rows = np.repeat(np.arange(self.n_tokens), np.diff(self.indptr))
        hit = self.latents == latent
        out[rows[hit]] = self.values[hit]
        return out

    def active_latents(self) -> np.ndarray:
        """int64, sorted: every latent active on some token."""
        return np.unique(self.latents)

    def logit_effects(self, latent: int) -> dict[str, list[Any]]:
        """``{"promoted": [(token, logit), ...], "suppressed": [...]}`` for a latent that
        occurs in the text (others have none stored: ``ValueError``)."""
        where = np.searchsorted(self.effect_latents, latent)
        if where >= len(self.effect_latents) or self.effect_latents[where] != latent:
            raise ValueError(f"latent {latent} is not active in this text: no effects stored")

        def pairs(ids: np.ndarray, logits: np.ndarray) -> list[Any]:
            strings = self._strings(ids[where])
            return [(t, float(v)) for t, v in zip(strings, logits[where], strict=True)]

        return {
            "promoted": pairs(self.promoted_ids, self.promoted_logits),
            "suppressed": pairs(self.suppressed_ids, self.suppressed_logits),
        }

    # ---- persistence (explanation/_storage.py) ------------------------------------------
    _ARRAYS = ("indptr", "latents", "values", "error_norm", "effect_latents")

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Every array, the logit effects read now if they were not."""
        arrays = {name: getattr(self, name) for name in self._ARRAYS}
        return {**arrays, **self.effects.read()[0]}

    def to_json(self) -> dict[str, Any]:
        strings = self.effects.read()[1]
        return {
            "name": self.name,
            "site": self.site,
            "d_sae": self.d_sae,
            "token_strings": {str(i): s for i, s in sorted(strings.items())},
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], meta: dict[str, Any]) -> Any:
        strings = {int(i): str(s) for i, s in meta["token_strings"].items()}
        return cls(
            name=str(meta["name"]),
            site=int(meta["site"]),
            d_sae=int(meta["d_sae"]),
            effects=LogitEffects(arrays=arrays, strings=strings),
            metadata=dict(meta.get("metadata", {})),
            **{name: arrays[name] for name in cls._ARRAYS},
        )
