"""``probe``: one linear probe per layer, held-out accuracy, and a control task."""

from __future__ import annotations

import os
from collections.abc import Hashable
from typing import Any

import numpy as np
import torch

from llmasos_widgets.probing._activations import Layers, Positions, activations
from llmasos_widgets.probing._datasets import as_probe_dataset
from llmasos_widgets.probing._result import ProbeResult
from llmasos_widgets.probing._store import Activations
from llmasos_widgets.probing._trainer import fit_linear_probe
from llmasos_widgets.tracing import decoder_layers

# Offsets the control task's generator from the split's, so the two draws are independent.
_CONTROL_STREAM = 1


def split_by_text(text_index: np.ndarray, test_size: float, seed: int) -> np.ndarray:
    """bool [row]: True for held-out rows. All rows of one text land on the same side, so a
    probe is never scored on another position of a sentence it was trained on."""
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be a fraction between 0 and 1, got {test_size}")
    texts = np.unique(text_index)
    if len(texts) < 2:
        raise ValueError("the dataset has a single distinct text; a held-out split needs two")
    order = np.random.default_rng(seed).permutation(texts)
    rows_per_text = np.bincount(text_index, minlength=int(texts.max()) + 1)[order]
    n_test_texts = int(np.searchsorted(np.cumsum(rows_per_text), test_size * len(text_index)))
    n_test_texts = min(max(n_test_texts + 1, 1), len(texts) - 1)
    return np.isin(text_index, order[:n_test_texts])


def control_labels(
    word_types: np.ndarray, labels: np.ndarray, n_classes: int, seed: int
) -> np.ndarray:
    """Hewitt & Liang (2019) control task: each word type gets one label, drawn at random from
    the empirical label distribution (fixed by ``seed``); each row gets its type's label.

    A probe that scores well here is memorizing word types, not reading the representation.
    """
    frequencies = np.bincount(labels, minlength=n_classes) / len(labels)
    types = np.unique(word_types)
    rng = np.random.default_rng([seed, _CONTROL_STREAM])
    drawn = rng.choice(n_classes, size=len(types), p=frequencies)
    return drawn[np.searchsorted(types, word_types)].astype(np.int64)


def probe(
    model: Any,
    dataset: Any,
    *,
    layers: Layers = "all",
    positions: Positions | None = None,
    control: bool = True,
    seed: int = 0,
    test_size: float = 0.25,
    l2: float = 1e-2,
    max_iter: int = 200,
    batch_size: int = 32,
    out: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
    client: Any = None,
) -> ProbeResult:
    """Train one linear probe per layer on residual-stream activations.

    Args:
        model: an :class:`~llmasos_widgets.models.ExplainableModel`.
        dataset: a :class:`ProbeDataset`, a DataFrame with columns ``text``, ``label`` and
            optionally ``position``, or a list of ``(text, label[, position])`` tuples
            (see :func:`subject_number_dataset`, :func:`part_of_speech_dataset`).
        layers: residual layers to probe, as in :func:`activations` (0 = embeddings).
        positions: token positions, when the dataset has none (default ``"last"``).
        control: also train on the control task, for ``control_accuracy`` and selectivity.
            The control task's word type is the token id at the probed position.
        seed: fixes the held-out split and the control labels; the trainer is deterministic.
        test_size: fraction of rows held out (whole texts are held out together).
        l2: L2 penalty on standardized features (``mean CE + l2/2 ||W||^2``). Stronger
            penalties keep the probe from memorizing word types, which raises selectivity
            (Hewitt & Liang 2019); the default suits the bundled model (docs/probing.md).
        max_iter: L-BFGS iterations per probe.
        batch_size: texts per forward pass while collecting activations.
        out: stream the activations to this directory instead of memory (see
            :func:`activations`).
        device: where the probes are trained.
        progress: show a progress bar while collecting activations.
        client: a Dask client to collect the activations on its workers (see
            :func:`activations`); the probes are then trained here, layer by layer.
    """
    data = as_probe_dataset(dataset)
    if data.positions is not None and positions is not None:
        raise ValueError(
            "the dataset already has a position per row; drop positions=, or build the "
            "dataset without positions"
        )
    if l2 < 0:
        raise ValueError(f"l2 must be >= 0, got {l2}")
    classes: list[Hashable] = data.classes()
    class_of = {label: k for k, label in enumerate(classes)}
    row_positions: Positions = data.positions if data.positions is not None else "last"
    if positions is not None:
        row_positions = positions
    acts = activations(
        model,
        data.texts,
        layers=layers,
        positions=row_positions,
        batch_size=batch_size,
        out=out,
        progress=progress,
        client=client,
    )
    if len(acts) != len(data):
        raise ValueError(
            f"positions={positions!r} reads {len(acts)} tokens from {len(data)} labelled texts; "
            "a probe needs exactly one position per label (use 'last', an int, or one int per row)"
        )
    labels = np.array([class_of[label] for label in data.labels], dtype=np.int64)
    hf_model = getattr(model, "hf_model", None)  # absent when a Dask client loads it by name
    n_layers = len(decoder_layers(hf_model)) if hf_model is not None else max(acts.layers)
    return probe_activations(
        acts, labels, [str(c) for c in classes],
        control=control, seed=seed, test_size=test_size, l2=l2, max_iter=max_iter,
        device=device,
        metadata={
            "model": str(model if isinstance(model, (str, os.PathLike)) else model.name),
            "dataset": data.name,
            "n_layers": n_layers,
            "positions": row_positions if isinstance(row_positions, (str, int)) else "per row",
        },
    )  # fmt: skip


def probe_activations(
    acts: Activations,
    labels: np.ndarray,
    label_names: list[str],
    *,
    control: bool = True,
    seed: int = 0,
    test_size: float = 0.25,
    l2: float = 1e-2,
    max_iter: int = 200,
    device: str | torch.device = "cpu",
    metadata: dict[str, Any] | None = None,
) -> ProbeResult:
    """Probes on already collected activations; ``labels`` int64 [row] index ``label_names``."""
    n_classes = len(label_names)
    is_test = split_by_text(acts.text_index, test_size, seed)
    train, test = ~is_test, is_test
    control_y = control_labels(acts.token_ids, labels, n_classes, seed) if control else None

    majority = int(np.bincount(labels[train], minlength=n_classes).argmax())
    train_acc, test_acc, control_acc, weights, biases = [], [], [], [], []
    for layer in acts.layers:
        features = np.asarray(acts[layer])
        fitted = fit_linear_probe(
            features[train], labels[train], n_classes, l2=l2, max_iter=max_iter, device=device
        )
        train_acc.append(fitted.accuracy(features[train], labels[train]))
        test_acc.append(fitted.accuracy(features[test], labels[test]))
        weights.append(fitted.weight)
        biases.append(fitted.bias)
        if control_y is not None:
            control_fit = fit_linear_probe(
                features[train], control_y[train], n_classes, l2=l2, max_iter=max_iter,
                device=device,
            )  # fmt: skip
            control_acc.append(control_fit.accuracy(features[test], control_y[test]))

    return ProbeResult(
        layers=np.array(acts.layers, dtype=np.int64),
        labels=tuple(label_names),
        train_accuracy=np.array(train_acc),
        test_accuracy=np.array(test_acc),
        control_accuracy=np.array(control_acc) if control_y is not None else None,
        majority_baseline=float((labels[test] == majority).mean()),
        weights=np.stack(weights).astype(np.float32),
        bias=np.stack(biases).astype(np.float32),
        n_train=int(train.sum()),
        n_test=int(test.sum()),
        metadata={**(metadata or {}), "seed": seed, "l2": l2, "test_size": test_size},
    )
