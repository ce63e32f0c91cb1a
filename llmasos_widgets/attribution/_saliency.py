"""``Saliency``: the ``[layer, token]`` result of :func:`~llmasos_widgets.attribution.attribute`.

Row ``r`` of :attr:`Saliency.scores` holds the attributions at residual-stream site
``layers[r]``: site 0 is the input embeddings, site ``i`` (1..L) the output of decoder layer
``i`` (before the final norm). Signed methods keep the sign: positive means the token's
representation at that site pushes the target up.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "llmasos-saliency"
FORMAT_VERSION = 1


def _check_array(name: str, value: Any, dtype: type, ndim: int) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, got {type(value).__name__}")
    if value.dtype != np.dtype(dtype):
        # No silent casts: a float64 here would mean an upstream bug or a lossy save.
        raise ValueError(f"{name} must be {np.dtype(dtype)}, got {value.dtype}")
    if value.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {value.shape}")
    return value


@dataclass(frozen=True, kw_only=True)
class Saliency:
    """Attributions of one target to every token at every residual-stream site.

    Attributes:
        scores: float32 ``[layer, token]``; row ``r`` is residual site ``layers[r]``.
            Tokens after :attr:`target_position` cannot affect it (causal model) and hold 0.
        layers: int64 ``[layer]`` residual sites (0 = embeddings, ``i`` = decoder layer ``i``).
        tokens: the input tokens exactly as the tokenizer split them.
        token_ids: int64 ``[token]``.
        method: registered method name (``integrated_gradients``, ...).
        baseline: baseline description (``"zero"``, ``"pad"``, ``"unk"``, ``"tensor"``),
            ``""`` for methods without one.
        target: human-readable target description.
        target_position: index of the token whose next-token logits are explained.
        target_token_ids: ``(token,)`` or ``(token, foil)`` for a contrast.
        target_probability: the model's probability of the target token at that position.
        f_x: the target value on the input.
        f_baseline: the target value with the baseline in place (``None`` without a baseline).
        convergence_delta: float32 ``[layer]``, ``sum(scores[r]) - (f_x - f_baseline)``
            (integrated gradients' completeness error), ``None`` for other methods.
        n_steps: integration steps (integrated gradients only).
    """

    scores: np.ndarray
    layers: np.ndarray
    tokens: tuple[str, ...]
    token_ids: np.ndarray
    method: str
    target: str
    target_position: int
    target_token_ids: tuple[int, ...]
    target_probability: float
    f_x: float
    baseline: str = ""
    f_baseline: float | None = None
    convergence_delta: np.ndarray | None = None
    n_steps: int | None = None

    def __post_init__(self) -> None:
        scores = _check_array("scores", self.scores, np.float32, 2)
        layers = _check_array("layers", self.layers, np.int64, 1)
        token_ids = _check_array("token_ids", self.token_ids, np.int64, 1)
        object.__setattr__(self, "tokens", tuple(str(t) for t in self.tokens))
        object.__setattr__(self, "target_token_ids", tuple(int(i) for i in self.target_token_ids))
        n_layers, n_tokens = scores.shape
        if layers.shape != (n_layers,):
            raise ValueError(f"layers has shape {layers.shape}; scores has {n_layers} rows")
        if len(set(layers.tolist())) != n_layers or (layers < 0).any():
            raise ValueError(f"layers must be distinct non-negative sites, got {layers.tolist()}")
        if len(self.tokens) != n_tokens or token_ids.shape != (n_tokens,):
            raise ValueError(
                f"scores has {n_tokens} token columns but there are {len(self.tokens)} tokens "
                f"and {token_ids.shape[0]} token ids"
            )
        if not 0 <= self.target_position < n_tokens:
            raise ValueError(f"target_position {self.target_position} is outside 0..{n_tokens - 1}")
        if len(self.target_token_ids) not in (1, 2):
            raise ValueError("target_token_ids must hold one token id, or two for a contrast")
        if not self.method:
            raise ValueError("method must be a non-empty name")
        if not 0.0 <= self.target_probability <= 1.0 + 1e-6:
            raise ValueError(f"target_probability {self.target_probability} is not in [0, 1]")
        if self.convergence_delta is not None:
            delta = _check_array("convergence_delta", self.convergence_delta, np.float32, 1)
            if delta.shape != (n_layers,):
                raise ValueError(f"convergence_delta has shape {delta.shape}, need ({n_layers},)")
        for array in (scores, layers, token_ids, self.convergence_delta):
            if array is not None:
                array.setflags(write=False)  # frozen means frozen, arrays included

    @property
    def n_tokens(self) -> int:
        return int(self.scores.shape[1])

    def at(self, layer: int) -> np.ndarray:
        """Scores ``[token]`` at residual site ``layer`` (0 = embeddings)."""
        hits = np.flatnonzero(self.layers == layer)
        if hits.size == 0:
            raise KeyError(f"site {layer} was not computed; available: {self.layers.tolist()}")
        return self.scores[int(hits[0])]

    # -- serialisation ---------------------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        """The array fields, for embedding in a larger safetensors file."""
        arrays = {"scores": self.scores, "layers": self.layers, "token_ids": self.token_ids}
        if self.convergence_delta is not None:
            arrays["convergence_delta"] = self.convergence_delta
        return arrays

    def metadata(self) -> dict[str, Any]:
        """The JSON-serialisable fields (floats kept exactly: JSON round-trips float64)."""
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "tokens": list(self.tokens),
            "method": self.method,
            "baseline": self.baseline,
            "target": self.target,
            "target_position": self.target_position,
            "target_token_ids": list(self.target_token_ids),
            "target_probability": self.target_probability,
            "f_x": self.f_x,
            "f_baseline": self.f_baseline,
            "n_steps": self.n_steps,
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], metadata: dict[str, Any]) -> Saliency:
        """Inverse of :meth:`to_arrays` + :meth:`metadata`."""
        if metadata.get("format") != FORMAT:
            raise ValueError(f"not a saliency record: format is {metadata.get('format')!r}")
        if metadata.get("version", 0) > FORMAT_VERSION:
            raise ValueError(
                f"saliency format version {metadata['version']} is newer than this "
                f"llmasos-widgets understands ({FORMAT_VERSION}); upgrade the package"
            )
        missing = {"scores", "layers", "token_ids"} - set(arrays)
        if missing:
            raise ValueError(f"saliency arrays are missing {sorted(missing)}")
        return cls(
            scores=np.array(arrays["scores"]),
            layers=np.array(arrays["layers"]),
            token_ids=np.array(arrays["token_ids"]),
            convergence_delta=(
                np.array(arrays["convergence_delta"]) if "convergence_delta" in arrays else None
            ),
            tokens=tuple(metadata["tokens"]),
            method=metadata["method"],
            baseline=metadata["baseline"],
            target=metadata["target"],
            target_position=int(metadata["target_position"]),
            target_token_ids=tuple(metadata["target_token_ids"]),
            target_probability=float(metadata["target_probability"]),
            f_x=float(metadata["f_x"]),
            f_baseline=None if metadata["f_baseline"] is None else float(metadata["f_baseline"]),
            n_steps=metadata["n_steps"],
        )

    def save(self, path: str | Path) -> None:
        """Write a safetensors file; metadata rides in its JSON header (exact round trip)."""
        from safetensors.numpy import save_file

        meta = self.metadata()
        for key in ("f_x", "f_baseline", "target_probability"):
            value = meta[key]
            if value is not None and not math.isfinite(value):
                raise ValueError(f"{key} is {value}; refusing to save a non-finite value")
        save_file(
            {k: np.ascontiguousarray(v) for k, v in self.to_arrays().items()},
            str(path),
            metadata={"llmasos": json.dumps(meta)},
        )

    @classmethod
    def load(cls, path: str | Path) -> Saliency:
        """Read a file written by :meth:`save`."""
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as handle:
            header = handle.metadata() or {}
            if "llmasos" not in header:
                raise ValueError(f"{path} is not a saliency file (no llmasos metadata)")
            arrays = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
        return cls.from_arrays(arrays, json.loads(header["llmasos"]))
