"""``FeatureActivations``: one SAE's active latents on one text, sparse, plus what each
latent that occurs writes to the logits.

Layout (CSR over tokens, as ``scipy.sparse.csr_matrix``): token ``t``'s active latents are
``latents[indptr[t]:indptr[t + 1]]`` with activations ``values[...]``, sorted by activation,
largest first. ``error_norm[t]`` is ``|x_t - sae(x_t)|``: the part of the residual the
dictionary does not explain. Logit effects are stored for ``effect_latents`` only (the latents
that occur in the text): the model's head (final norm, unembedding) read on each latent's
decoder direction, its ``k`` most promoted and most suppressed tokens.

Both are read when first asked for (a view, the report, ``save``), not during ``explain``, like
the logit lens of the earlier sites (``explanation/_lens.py``): ``explain`` keeps the site's
residual rows and the SAE, and the first read of any array encodes them, once
(:class:`LatentCodes`), then reads the effects of the latents that occur
(:class:`LogitEffects`). The encode is a ``[token, d_in] @ [d_in, d_sae]`` matmul: at 16 x
hidden it costs a large part of a shallow model's forward.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

_EFFECT_ARRAYS = ("promoted_ids", "promoted_logits", "suppressed_ids", "suppressed_logits")
_CODE_ARRAYS = ("indptr", "latents", "values", "error_norm", "effect_latents")
EffectsReader = Callable[[], tuple[dict[str, np.ndarray], dict[int, str]]]
CodesReader = Callable[[], dict[str, np.ndarray]]


class LatentCodes:
    """The sparse arrays of :class:`FeatureActivations` (:data:`_CODE_ARRAYS`) of ``n_tokens``
    tokens; given, or encoded once by ``reader`` on first access (thread-safe)."""

    def __init__(
        self,
        *,
        n_tokens: int,
        arrays: Mapping[str, np.ndarray] | None = None,
        reader: CodesReader | None = None,
    ) -> None:
        if (arrays is None) == (reader is None):
            raise ValueError("LatentCodes needs its arrays or a reader, not both")
        self.n_tokens = n_tokens
        self._arrays = None if arrays is None else {n: arrays[n] for n in _CODE_ARRAYS}
        self._reader = reader
        self._lock = threading.Lock()

    @property
    def pending(self) -> bool:
        """Not encoded yet."""
        return self._arrays is None

    def read(self) -> dict[str, np.ndarray]:
        with self._lock:
            if self._arrays is None:
                assert self._reader is not None
                self._arrays = self._reader()
                self._reader = None  # encoded: the residual rows and the SAE can go
            return self._arrays


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
    codes: LatentCodes = field(repr=False)
    """The sparse latents, encoded on first use: see :attr:`indptr` and the others."""
    effects: LogitEffects = field(repr=False)
    """Their logit effects, read on first use: see :attr:`promoted_ids` and the others."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """JSON facts (activation kind, ``k``, latents kept per token)."""

    def __post_init__(self) -> None:
        if not self.codes.pending:
            self._check_codes(self.codes.read())
        if not self.effects.pending:
            self._check_effects(self.effects.read()[0])

    def _check_codes(self, arrays: Mapping[str, np.ndarray]) -> None:
        n, indptr, latents = self.n_tokens, arrays["indptr"], arrays["latents"]
        if arrays["error_norm"].shape != (n,):
            raise ValueError(f"error_norm must be [{n}]; got {arrays['error_norm'].shape}")
        if indptr.shape != (n + 1,) or indptr[0] != 0:
            raise ValueError(f"indptr must be [{n + 1}] from 0; got {tuple(indptr.shape)}")
        nnz = int(indptr[-1])
        if latents.shape != (nnz,) or arrays["values"].shape != (nnz,):
            raise ValueError(
                f"latents and values must be [{nnz}] (indptr[-1]); got "
                f"{tuple(latents.shape)}, {tuple(arrays['values'].shape)}"
            )
        if nnz and not (latents.min() >= 0 and latents.max() < self.d_sae):
            raise ValueError(f"latents must lie in 0..{self.d_sae - 1}")

    # ---- sparse latents (encoded on first use) -----------------------------------------
    @property
    def indptr(self) -> np.ndarray:
        """int64 ``[token + 1]``."""
        return self.codes.read()["indptr"]

    @property
    def latents(self) -> np.ndarray:
        """int64 ``[nnz]``: active latents, per token sorted by activation (descending)."""
        return self.codes.read()["latents"]

    @property
    def values(self) -> np.ndarray:
        """float32 ``[nnz]``: their activations (> 0)."""
        return self.codes.read()["values"]

    @property
    def error_norm(self) -> np.ndarray:
        """float32 ``[token]``: norm of the reconstruction error."""
        return self.codes.read()["error_norm"]

    @property
    def effect_latents(self) -> np.ndarray:
        """int64 ``[m]``: sorted latents whose logit effects are stored (those in
        ``latents``)."""
        return self.codes.read()["effect_latents"]

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
        """Known without encoding (``Explanation`` checks it)."""
        return self.codes.n_tokens

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
    def to_arrays(self) -> dict[str, np.ndarray]:
        """Every array, the latents encoded and the logit effects read now if they were not."""
        return {**self.codes.read(), **self.effects.read()[0]}

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
            codes=LatentCodes(n_tokens=len(arrays["error_norm"]), arrays=arrays),
            effects=LogitEffects(arrays=arrays, strings=strings),
            metadata=dict(meta.get("metadata", {})),
        )
