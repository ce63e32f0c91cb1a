"""``FeatureActivations``: one SAE's active latents on one text, sparse, plus what each
latent that occurs writes to the logits.

Layout (CSR over tokens, as ``scipy.sparse.csr_matrix``): token ``t``'s active latents are
``latents[indptr[t]:indptr[t + 1]]`` with activations ``values[...]``, sorted by activation,
largest first. ``error_norm[t]`` is ``|x_t - sae(x_t)|``: the part of the residual the
dictionary does not explain. Logit effects are stored for ``effect_latents`` only (the latents
that occur in the text): the model's head (final norm, unembedding) read on each latent's
decoder direction, its ``k`` most promoted and most suppressed tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


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
    """int64 ``[m]``: sorted latents whose logit effects are stored."""
    promoted_ids: np.ndarray
    """int64 ``[m, k]``: tokens each latent's direction raises most (largest first)."""
    promoted_logits: np.ndarray
    """float32 ``[m, k]``: their logits from the head read on the direction."""
    suppressed_ids: np.ndarray
    """int64 ``[m, k]``: tokens it lowers most (most negative first)."""
    suppressed_logits: np.ndarray
    """float32 ``[m, k]``."""
    promoted_tokens: tuple[tuple[str, ...], ...] = ()
    """``[m][k]`` strings of ``promoted_ids``."""
    suppressed_tokens: tuple[tuple[str, ...], ...] = ()
    """``[m][k]`` strings of ``suppressed_ids``."""
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
        m = len(self.effect_latents)
        for name in ("promoted_ids", "promoted_logits", "suppressed_ids", "suppressed_logits"):
            array = getattr(self, name)
            if array.ndim != 2 or array.shape[0] != m:
                raise ValueError(f"{name} must be [{m}, k]; got {tuple(array.shape)}")
        for name in ("promoted_tokens", "suppressed_tokens"):
            if getattr(self, name) and len(getattr(self, name)) != m:
                raise ValueError(f"{name} must have one row per effect latent ({m})")

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

        def pairs(tokens: tuple[tuple[str, ...], ...], logits: np.ndarray) -> list[Any]:
            return [(t, float(v)) for t, v in zip(tokens[where], logits[where], strict=True)]

        return {
            "promoted": pairs(self.promoted_tokens, self.promoted_logits),
            "suppressed": pairs(self.suppressed_tokens, self.suppressed_logits),
        }

    # ---- persistence (explanation/_storage.py) ------------------------------------------
    _ARRAYS = (
        "indptr",
        "latents",
        "values",
        "error_norm",
        "effect_latents",
        "promoted_ids",
        "promoted_logits",
        "suppressed_ids",
        "suppressed_logits",
    )

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in self._ARRAYS}

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "site": self.site,
            "d_sae": self.d_sae,
            "promoted_tokens": [list(row) for row in self.promoted_tokens],
            "suppressed_tokens": [list(row) for row in self.suppressed_tokens],
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Any:
        return cls(
            name=str(meta["name"]),
            site=int(meta["site"]),
            d_sae=int(meta["d_sae"]),
            promoted_tokens=tuple(tuple(row) for row in meta["promoted_tokens"]),
            suppressed_tokens=tuple(tuple(row) for row in meta["suppressed_tokens"]),
            metadata=dict(meta.get("metadata", {})),
            **{name: arrays[name] for name in cls._ARRAYS},
        )
