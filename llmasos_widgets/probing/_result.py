"""``ProbeResult``: per-site probe accuracies, control task, weights; save/load."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from llmasos_widgets.tracing import site_label

FORMAT = "llmasos-probe-result"
VERSION = 1
_ARRAYS = ("layers", "train_accuracy", "test_accuracy", "control_accuracy", "weights", "bias")


@dataclass(frozen=True, kw_only=True)
class ProbeResult:
    """One linear probe per residual site, scored on held-out rows and against a control task.

    Arrays are indexed like ``layers``, which holds residual *sites* (``tracing/_anatomy.py``:
    0 = ``emb``, the embeddings; ``i`` = ``after L{i-1}``, the output of decoder layer
    ``L{i-1}``); the name ``layers`` is kept for compatibility, :attr:`sites` is the same array.
    ``weights[j] @ acts[layers[j]].T + bias[j]`` are the probe's logits on raw activations,
    classes ordered as ``labels``.
    """

    layers: np.ndarray
    """int64 [site]: residual sites (0 = emb, i = after L{i-1})."""
    labels: tuple[str, ...]
    """Class names; class ``k`` of the weights is ``labels[k]``."""
    train_accuracy: np.ndarray
    """float64 [layer]."""
    test_accuracy: np.ndarray
    """float64 [layer]: accuracy on the held-out rows."""
    control_accuracy: np.ndarray | None
    """float64 [layer]: held-out accuracy of the same probe trained on the control task
    (Hewitt & Liang 2019), or ``None`` when ``control=False``."""
    majority_baseline: float
    """Held-out accuracy of always predicting the training rows' most frequent label."""
    weights: np.ndarray
    """float32 [layer, class, hidden]."""
    bias: np.ndarray
    """float32 [layer, class]."""
    n_train: int
    n_test: int
    metadata: dict[str, Any] = field(default_factory=dict)
    """JSON-serializable settings: model name, dataset name, seed, l2, test_size, positions."""

    def __post_init__(self) -> None:
        layers = np.asarray(self.layers)
        if layers.ndim != 1 or len(layers) == 0 or not np.issubdtype(layers.dtype, np.integer):
            raise ValueError(f"layers must be a non-empty 1-d int array, got {self.layers!r}")
        object.__setattr__(self, "layers", layers.astype(np.int64))
        object.__setattr__(self, "labels", tuple(str(label) for label in self.labels))
        n_layers, n_classes = len(layers), len(self.labels)
        if n_classes < 2:
            raise ValueError(f"a probe needs at least 2 labels, got {self.labels}")
        names = ["train_accuracy", "test_accuracy"]
        if self.control_accuracy is not None:
            names.append("control_accuracy")
        for name in names:
            value = np.asarray(getattr(self, name), dtype=np.float64)
            if value.shape != (n_layers,):
                raise ValueError(f"{name} has shape {value.shape}, expected ({n_layers},)")
            if np.any((value < 0) | (value > 1)):
                raise ValueError(f"{name} must lie in [0, 1], got {value}")
            object.__setattr__(self, name, value)
        weights = np.asarray(self.weights)
        if weights.ndim != 3 or weights.shape[:2] != (n_layers, n_classes):
            raise ValueError(
                f"weights has shape {weights.shape}, expected ({n_layers}, {n_classes}, hidden)"
            )
        bias = np.asarray(self.bias)
        if bias.shape != (n_layers, n_classes):
            raise ValueError(f"bias has shape {bias.shape}, expected ({n_layers}, {n_classes})")
        if not 0 <= self.majority_baseline <= 1:
            raise ValueError(f"majority_baseline must lie in [0, 1], got {self.majority_baseline}")
        if self.n_train < 1 or self.n_test < 1:
            raise ValueError(f"n_train and n_test must be >= 1, got {self.n_train}, {self.n_test}")
        json.dumps(self.metadata)  # fails early, not at save time, on non-JSON values

    @property
    def selectivity(self) -> np.ndarray | None:
        """float64 [layer]: test accuracy minus control-task accuracy (``None`` without control)."""
        if self.control_accuracy is None:
            return None
        return self.test_accuracy - self.control_accuracy

    @property
    def sites(self) -> np.ndarray:
        """int64 [site]: the residual sites probed (the same array as ``layers``)."""
        return self.layers

    @property
    def best_layer(self) -> int:
        """The residual site with the highest held-out accuracy (the shallowest on ties);
        ``site_label(best_layer)`` names it (``after L2``)."""
        return int(self.layers[int(np.argmax(self.test_accuracy))])

    def to_frame(self) -> Any:
        """A pandas DataFrame, one row per layer (needs pandas)."""
        try:
            import pandas as pd
        except ImportError as error:
            raise ImportError("to_frame() needs pandas: pip install pandas") from error
        columns: dict[str, Any] = {
            "layer": self.layers,
            "train_accuracy": self.train_accuracy,
            "test_accuracy": self.test_accuracy,
        }
        if self.control_accuracy is not None:
            columns["control_accuracy"] = self.control_accuracy
            columns["selectivity"] = self.selectivity
        columns["majority_baseline"] = np.full(len(self.layers), self.majority_baseline)
        return pd.DataFrame(columns).set_index("layer")

    def to_html(self, path: str | os.PathLike[str]) -> Path:
        """A standalone Bokeh HTML page of the accuracy-by-layer plot (no CDN; inline JS): the
        ``"html"`` view registered by ``llmasos_widgets.probing``; returns the path."""
        from llmasos_widgets._views import render

        written: Path = render("html", self, Path(path))
        return written

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write a safetensors file; :meth:`load` restores an identical result."""
        from safetensors.numpy import save_file

        arrays = {
            "layers": self.layers,
            "train_accuracy": self.train_accuracy,
            "test_accuracy": self.test_accuracy,
            "weights": np.ascontiguousarray(self.weights),
            "bias": np.ascontiguousarray(self.bias),
        }
        if self.control_accuracy is not None:
            arrays["control_accuracy"] = self.control_accuracy
        header = {
            "format": FORMAT,
            "version": str(VERSION),
            "labels": json.dumps(list(self.labels)),
            "majority_baseline": repr(float(self.majority_baseline)),
            "n_train": str(self.n_train),
            "n_test": str(self.n_test),
            "metadata": json.dumps(self.metadata),
        }
        save_file(arrays, str(path), metadata=header)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ProbeResult:
        """Read a file written by :meth:`save`."""
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="numpy") as file:
                header = file.metadata() or {}
                if header.get("format") != FORMAT:
                    raise ValueError(
                        f"{path} is a safetensors file but not a saved ProbeResult "
                        f"(format {header.get('format')!r}, expected {FORMAT!r})"
                    )
                if header.get("version") != str(VERSION):
                    raise ValueError(
                        f"{path} has ProbeResult format version {header.get('version')}, "
                        f"this package reads {VERSION}; upgrade llmasos-widgets"
                    )
                arrays = {name: file.get_tensor(name) for name in file.keys()}  # noqa: SIM118
        except SafetensorError as error:
            raise ValueError(
                f"{path} is not a readable ProbeResult file (corrupt or not safetensors): {error}"
            ) from error
        missing = {name for name in _ARRAYS if name != "control_accuracy"} - set(arrays)
        if missing:
            raise ValueError(f"{path} lacks arrays {sorted(missing)}; the file is damaged")
        baseline = float(header["majority_baseline"])
        if math.isnan(baseline):
            raise ValueError(f"{path} has no valid majority baseline; the file is damaged")
        return cls(
            layers=arrays["layers"],
            labels=tuple(json.loads(header["labels"])),
            train_accuracy=arrays["train_accuracy"],
            test_accuracy=arrays["test_accuracy"],
            control_accuracy=arrays.get("control_accuracy"),
            majority_baseline=baseline,
            weights=arrays["weights"],
            bias=arrays["bias"],
            n_train=int(header["n_train"]),
            n_test=int(header["n_test"]),
            metadata=json.loads(header["metadata"]),
        )

    def __repr__(self) -> str:
        best = int(np.argmax(self.test_accuracy))
        control = ""
        if self.control_accuracy is not None:
            control = f", control {self.control_accuracy[best]:.3f}"
        return (
            f"ProbeResult({len(self.layers)} sites, {len(self.labels)} labels, "
            f"best site {site_label(self.best_layer)}: "
            f"test {self.test_accuracy[best]:.3f}{control}, "
            f"majority {self.majority_baseline:.3f}; n_train={self.n_train}, "
            f"n_test={self.n_test})"
        )
