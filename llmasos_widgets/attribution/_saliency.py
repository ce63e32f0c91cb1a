"""``Saliency``: the ``[layer, token]`` result of :func:`~llmasos_widgets.attribution.attribute`.

Row ``r`` of :attr:`Saliency.scores` holds the attributions at residual-stream site
``layers[r]`` (named as everywhere, ``tracing/_anatomy.py``): site 0 ``emb`` is the input
embeddings, site ``i`` (1..L) ``after L{i-1}``, the output of decoder layer ``L{i-1}`` (before
the final norm). ``layers`` keeps its name for compatibility; :attr:`Saliency.sites` is the
same array. Signed methods keep the sign: positive means the token's
representation at that site pushes the target up.

Integrated gradients are checked for completeness: a row whose ``|convergence_delta|`` exceeds
:data:`CONVERGENCE_TOLERANCE` of ``|f(x) − f(baseline)|`` has not converged, and
:attr:`Saliency.convergence_warning` says so and what to change (``attribute`` also raises it
as a :class:`ConvergenceWarning`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from llmasos_widgets.tracing import site_label

FORMAT = "llmasos-saliency"
FORMAT_VERSION = 1

CONVERGENCE_TOLERANCE = 0.05
"""Integrated gradients have converged when every computed row's ``|convergence_delta|`` is at
most this fraction of ``|f(x) − f(baseline)|`` (every row: each is its own integral and is
shown and read on its own; the embeddings row is usually, not always, the worst)."""


class ConvergenceWarning(UserWarning):
    """Integrated gradients did not converge: some row's completeness error exceeds
    :data:`CONVERGENCE_TOLERANCE` of ``|f(x) − f(baseline)|``, so its scores do not add up to
    the change they claim to explain. The message says which rows and what to change."""


def _check_array(name: str, value: Any, dtype: type, ndim: int) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, got {type(value).__name__}")
    if value.dtype != np.dtype(dtype):
        # No silent casts: a float64 here would mean an upstream bug or a lossy save.
        raise ValueError(f"{name} must be {np.dtype(dtype)}, got {value.dtype}")
    if value.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {value.shape}")
    return value


def _check_record_format(metadata: dict[str, Any], *, what: str, format: str, version: int) -> None:
    """Refuse a stored record of another format, or of a newer version than this code reads."""
    if metadata.get("format") != format:
        raise ValueError(f"not a {what} record: format is {metadata.get('format')!r}")
    if metadata.get("version", 0) > version:
        raise ValueError(
            f"{what} format version {metadata['version']} is newer than this "
            f"llmasos-widgets understands ({version}); upgrade the package"
        )


@dataclass(frozen=True, kw_only=True)
class Saliency:
    """Attributions of one target to every token at every residual-stream site.

    Attributes:
        scores: float32 ``[layer, token]``; row ``r`` is residual site ``layers[r]``.
            Tokens after :attr:`target_position` cannot affect it (causal model) and hold 0.
        layers: int64 ``[site]`` residual sites (0 = ``emb``, ``i`` = ``after L{i-1}``); also
            :attr:`sites`.
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
        integration: the integration rule (``"adaptive"``, ``"gausslegendre"``, ...;
            integrated gradients only; ``None`` in files written before it was recorded).
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
    integration: str | None = None

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
        if self.integration is not None and (
            not isinstance(self.integration, str) or not self.integration
        ):
            raise ValueError(f"integration must be a rule name or None, got {self.integration!r}")
        for array in (scores, layers, token_ids, self.convergence_delta):
            if array is not None:
                array.setflags(write=False)  # frozen means frozen, arrays included

    @property
    def sites(self) -> np.ndarray:
        """int64 ``[site]``: the residual sites of the rows (the same array as ``layers``)."""
        return self.layers

    @property
    def site_names(self) -> tuple[str, ...]:
        """``emb``, ``after L0``, ... for each row, as the views label them."""
        return tuple(site_label(int(site)) for site in self.layers)

    @property
    def n_tokens(self) -> int:
        return int(self.scores.shape[1])

    def at(self, layer: int) -> np.ndarray:
        """Scores ``[token]`` at residual site ``layer`` (0 = embeddings)."""
        hits = np.flatnonzero(self.layers == layer)
        if hits.size == 0:
            raise KeyError(f"site {layer} was not computed; available: {self.layers.tolist()}")
        return self.scores[int(hits[0])]

    # -- convergence of integrated gradients ------------------------------------------------
    @property
    def relative_convergence_delta(self) -> np.ndarray | None:
        """float64 ``[layer]``: ``|convergence_delta| / |f_x − f_baseline|`` (``None`` for
        methods without a completeness error). A zero gap gives 0 where the delta is 0 too
        and ``inf`` otherwise."""
        if self.convergence_delta is None or self.f_baseline is None:
            return None
        delta = np.abs(self.convergence_delta.astype(np.float64))
        gap = abs(self.f_x - self.f_baseline)
        if gap > 0:
            return delta / gap
        return np.where(delta > 0, np.inf, 0.0)

    @property
    def convergence_warning(self) -> str:
        """What is wrong and what to do when a row has not converged (relative delta above
        :data:`CONVERGENCE_TOLERANCE`); ``""`` when every row has, or for other methods."""
        relative = self.relative_convergence_delta
        if relative is None:
            return ""
        failing = np.flatnonzero(~(relative <= CONVERGENCE_TOLERANCE))  # NaN fails too
        if failing.size == 0:
            return ""
        worst = float(np.where(np.isnan(relative), np.inf, relative)[failing].max())
        sites = ", ".join(site_label(int(self.layers[row])) for row in failing)
        steps = self.n_steps or 0
        advice = [f"more steps (n_steps={max(4 * steps, 200)}, now {steps})"]
        if self.baseline != "pad":
            advice.append(f"the 'pad' baseline (baseline='pad', now {self.baseline or 'none'!r})")
        if self.integration not in (None, "adaptive"):
            advice.append(f"the adaptive rule (integration='adaptive', now {self.integration!r})")
        return (
            f"integrated gradients did not converge at {sites}: the completeness error "
            f"|Σ scores − (f(x) − f(baseline))| is {_percent(worst)} of |f(x) − f(baseline)| "
            f"(tolerance {_percent(CONVERGENCE_TOLERANCE)}), so those rows do not add up to the "
            f"change they explain. Try {'; '.join(advice)}."
        )

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
            "integration": self.integration,
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], metadata: dict[str, Any]) -> Saliency:
        """Inverse of :meth:`to_arrays` + :meth:`metadata`."""
        _check_record_format(metadata, what="saliency", format=FORMAT, version=FORMAT_VERSION)
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
            integration=metadata.get("integration"),  # absent in older files
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


def _percent(fraction: float) -> str:
    if not math.isfinite(fraction):
        return "unbounded (f(x) = f(baseline))"
    return f"{100 * fraction:.3g}%"
