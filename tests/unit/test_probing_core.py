"""Probing without a model: the probe trainer, control task, split, datasets, ProbeResult."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from llmasos_widgets.probing import (
    Activations,
    ProbeDataset,
    ProbeResult,
    as_probe_dataset,
    control_labels,
    fit_linear_probe,
    part_of_speech_dataset,
    probe_activations,
    subject_number_dataset,
)
from llmasos_widgets.probing._probe import split_by_text


def separable(n: int, d: int, n_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs whose class means are 8 standard deviations apart: linearly separable."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_classes, d)) * 8
    labels = rng.integers(n_classes, size=n)
    features = centers[labels] + rng.normal(size=(n, d))
    return (features * 3 + 10).astype(np.float32), labels  # shifted/scaled: standardization


def synthetic_activations(features: dict[int, np.ndarray], token_ids: np.ndarray) -> Activations:
    n = len(token_ids)
    return Activations(
        layers=sorted(features),
        hidden_size=next(iter(features.values())).shape[1],
        text_index=np.arange(n),
        positions=np.zeros(n, dtype=np.int64),
        token_ids=token_ids,
        arrays=features,
    )


# --- trainer --------------------------------------------------------------------------------


def test_trainer_separates_separable_data_perfectly():
    x, y = separable(400, 10, 3, seed=0)
    fitted = fit_linear_probe(x[:300], y[:300], 3, l2=1e-3)
    assert fitted.accuracy(x[:300], y[:300]) == 1.0
    assert fitted.accuracy(x[300:], y[300:]) == 1.0
    assert fitted.weight.shape == (3, 10) and fitted.weight.dtype == np.float32


def test_trainer_leaves_the_process_thread_count_alone(monkeypatch: pytest.MonkeyPatch):
    """The thread count is process-wide: other threads and the user's code share it."""
    import torch

    def refuse(_n: int) -> None:
        raise AssertionError("fit_linear_probe changed torch's process-wide thread count")

    monkeypatch.setattr(torch, "set_num_threads", refuse)
    x, y = separable(200, 10, 2, seed=1)
    assert fit_linear_probe(x, y, 2, l2=1e-3).accuracy(x, y) == 1.0


def test_trainer_matches_sklearn_logistic_regression():
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(1)
    n, d, k, l2 = 600, 12, 3, 1e-2
    x = (rng.normal(size=(n, d)) * rng.uniform(0.1, 10, size=d) + 5).astype(np.float32)
    y = (x @ rng.normal(size=(k, d)).T / 5 + rng.normal(size=(n, k)) * 2).argmax(axis=1)
    ours = fit_linear_probe(x[:450], y[:450], k, l2=l2)
    scaler = StandardScaler().fit(x[:450])
    reference = LogisticRegression(C=1 / (l2 * 450), max_iter=5000, tol=1e-10)
    reference.fit(scaler.transform(x[:450]), y[:450])
    test_x = scaler.transform(x[450:])
    assert ours.accuracy(x[450:], y[450:]) == pytest.approx(reference.score(test_x, y[450:]))
    assert (ours.predict(x[450:]) == reference.predict(test_x)).mean() >= 0.99
    # Same objective → same optimum: compare the (softmax-invariant) centered coefficients.
    ours_std = ours.weight * scaler.scale_
    centered = ours_std - ours_std.mean(axis=0)
    assert np.abs(centered - (reference.coef_ - reference.coef_.mean(axis=0))).max() < 2e-3


def test_trainer_is_deterministic():
    x, y = separable(200, 8, 2, seed=3)
    a = fit_linear_probe(x, y, 2, l2=1e-2)
    b = fit_linear_probe(x, y, 2, l2=1e-2)
    np.testing.assert_array_equal(a.weight, b.weight)
    np.testing.assert_array_equal(a.bias, b.bias)


def test_trainer_rejects_bad_input():
    with pytest.raises(ValueError, match="one row per label"):
        fit_linear_probe(np.zeros((4, 2), np.float32), np.zeros(3, np.int64), 2, l2=0.1)
    with pytest.raises(ValueError, match="l2 must be >= 0"):
        fit_linear_probe(np.zeros((4, 2), np.float32), np.zeros(4, np.int64), 2, l2=-1)


# --- control task and split -----------------------------------------------------------------


def test_control_labels_one_label_per_word_type_fixed_by_seed():
    rng = np.random.default_rng(0)
    types = rng.integers(0, 2000, size=20_000)
    labels = (rng.random(20_000) < 0.2).astype(np.int64)  # 80% class 0, 20% class 1
    control = control_labels(types, labels, 2, seed=5)
    for t in np.unique(types)[:50]:
        assert len(set(control[types == t])) == 1
    np.testing.assert_array_equal(control, control_labels(types, labels, 2, seed=5))
    assert not np.array_equal(control, control_labels(types, labels, 2, seed=6))
    # Types draw from the label distribution: ~20% of the ~2000 types are class 1 (±4 sd).
    per_type = control[np.unique(types, return_index=True)[1]]
    assert abs(per_type.mean() - 0.2) < 4 * np.sqrt(0.2 * 0.8 / len(per_type))


def test_split_keeps_texts_together_and_honours_test_size():
    text_index = np.repeat(np.arange(100), 3)  # three rows per text
    is_test = split_by_text(text_index, 0.25, seed=0)
    for t in range(100):
        assert len(set(is_test[text_index == t])) == 1
    assert 0.25 <= is_test.mean() <= 0.25 + 3 / 300
    np.testing.assert_array_equal(is_test, split_by_text(text_index, 0.25, seed=0))
    with pytest.raises(ValueError, match="test_size"):
        split_by_text(text_index, 1.5, seed=0)


# --- probe on synthetic activations ---------------------------------------------------------


def test_probe_on_random_labels_stays_at_chance():
    rng = np.random.default_rng(0)
    n = 800
    acts = synthetic_activations(
        {0: rng.normal(size=(n, 16)).astype(np.float32)}, rng.integers(0, 50, size=n)
    )
    labels = rng.integers(0, 2, size=n)
    result = probe_activations(acts, labels, ["a", "b"], seed=0, l2=1e-2)
    half_width = 3 * np.sqrt(0.25 / result.n_test)  # 3-sigma binomial interval around 0.5
    assert abs(result.test_accuracy[0] - 0.5) < half_width
    assert result.train_accuracy[0] > result.test_accuracy[0]  # it fits noise in training


def test_probe_finds_the_informative_layer_and_selectivity():
    rng = np.random.default_rng(2)
    n = 600
    labels = rng.integers(0, 2, size=n)
    token_ids = rng.integers(0, 300, size=n)  # label independent of the word type
    noise = rng.normal(size=(n, 8)).astype(np.float32)
    informative = noise.copy()
    informative[:, 0] += 6 * labels  # the label is linearly readable only in layer 2
    acts = synthetic_activations({0: noise, 2: informative}, token_ids)
    result = probe_activations(acts, labels, ["neg", "pos"], seed=0)
    assert result.best_layer == 2
    assert result.test_accuracy[1] > 0.97
    assert abs(result.test_accuracy[0] - 0.5) < 3 * np.sqrt(0.25 / result.n_test)
    assert result.control_accuracy is not None and result.selectivity is not None
    assert result.selectivity[1] > 0.3  # types are unseen/unreadable: control stays near chance


# --- datasets -------------------------------------------------------------------------------


def test_dataset_validation_errors_say_what_to_do():
    with pytest.raises(ValueError, match="one label per text"):
        ProbeDataset(texts=("a", "b"), labels=("x",))
    with pytest.raises(ValueError, match="one token position per text"):
        ProbeDataset(texts=("a", "b"), labels=("x", "y"), positions=(1,))
    with pytest.raises(ValueError, match="at least two classes"):
        ProbeDataset(texts=("a", "b"), labels=("x", "x"))
    with pytest.raises(ValueError, match="empty"):
        as_probe_dataset([])
    with pytest.raises(ValueError, match="same length"):
        as_probe_dataset([("a", 0), ("b", 1, 2)])
    with pytest.raises(TypeError, match="positions must be ints"):
        ProbeDataset(texts=("a", "b"), labels=(0, 1), positions=(1, "2"))


def test_dataset_from_dataframe_and_tuples():
    import pandas as pd

    frame = pd.DataFrame({"text": ["a b", "c d"], "label": [0, 1], "position": [1, -1]})
    data = as_probe_dataset(frame)
    assert data.labels == (0, 1) and type(data.labels[0]) is int  # plain, JSON-safe
    assert data.positions == (1, -1)
    with pytest.raises(ValueError, match="lacks column"):
        as_probe_dataset(pd.DataFrame({"sentence": ["a"], "label": [0]}))
    assert as_probe_dataset([("a", "x"), ("b", "y")]).positions is None


def test_bundled_language_datasets_point_at_the_right_words():
    from llmasos_widgets.language import number_probe_examples

    data = subject_number_dataset(40, seed=3)
    assert set(data.labels) == {"singular", "plural"} and data.labels.count("plural") == 20
    for text, position, example in zip(
        data.texts, data.positions or (), number_probe_examples(40, seed=3), strict=True
    ):
        assert position == len(text.split())  # the last prompt word, token index after <bos>
        assert example.label == data.labels[data.texts.index(text)]
    pos = part_of_speech_dataset(5, seed=0)
    first = pos.texts[0]
    rows = [i for i, t in enumerate(pos.texts) if t == first]
    assert [pos.positions[i] for i in rows] == list(range(1, len(first.split()) + 1))  # type: ignore[index]
    assert pos.labels[rows[0]] == "det" and pos.labels[rows[-1]] == "punct"


# --- ProbeResult ----------------------------------------------------------------------------


def make_result(control: bool = True) -> ProbeResult:
    rng = np.random.default_rng(0)
    return ProbeResult(
        layers=np.array([0, 1, 2]),
        labels=("singular", "plural"),
        train_accuracy=np.array([0.6, 0.9, 1.0]),
        test_accuracy=np.array([0.5, 0.85, 0.97]),
        control_accuracy=np.array([0.52, 0.6, 0.61]) if control else None,
        majority_baseline=0.5,
        weights=rng.normal(size=(3, 2, 4)).astype(np.float32),
        bias=rng.normal(size=(3, 2)).astype(np.float32),
        n_train=30,
        n_test=10,
        metadata={"dataset": "subject number", "n_layers": 2, "seed": 0},
    )


def test_result_validates_shapes_and_ranges():
    good = make_result()
    with pytest.raises(ValueError, match="test_accuracy has shape"):
        ProbeResult(**{**good.__dict__, "test_accuracy": np.array([0.5, 0.5])})
    with pytest.raises(ValueError, match="must lie in"):
        ProbeResult(**{**good.__dict__, "train_accuracy": np.array([0.5, 1.5, 0.5])})
    with pytest.raises(ValueError, match="weights has shape"):
        ProbeResult(**{**good.__dict__, "weights": np.zeros((3, 3, 4), np.float32)})
    with pytest.raises(TypeError):
        ProbeResult(np.array([0]))  # type: ignore[misc]  # keyword-only


def test_result_save_load_round_trip_is_exact(tmp_path: Path):
    for control in (True, False):
        result = make_result(control)
        result.save(tmp_path / "r.safetensors")
        loaded = ProbeResult.load(tmp_path / "r.safetensors")
        for name in ("layers", "train_accuracy", "test_accuracy", "weights", "bias"):
            a, b = getattr(result, name), getattr(loaded, name)
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)
        if control:
            np.testing.assert_array_equal(result.control_accuracy, loaded.control_accuracy)
        else:
            assert loaded.control_accuracy is None and loaded.selectivity is None
        assert loaded.labels == result.labels and loaded.metadata == result.metadata
        assert (loaded.majority_baseline, loaded.n_train, loaded.n_test) == (0.5, 30, 10)


def test_result_load_rejects_corrupt_and_foreign_files(tmp_path: Path):
    from safetensors.numpy import save_file

    (tmp_path / "junk").write_bytes(b"\x00\x01not safetensors" * 8)
    with pytest.raises(ValueError, match="not a readable ProbeResult"):
        ProbeResult.load(tmp_path / "junk")
    save_file({"x": np.zeros(2, np.float32)}, str(tmp_path / "other"), metadata={"format": "x"})
    with pytest.raises(ValueError, match="not a saved ProbeResult"):
        ProbeResult.load(tmp_path / "other")


def test_result_frame_and_selectivity():
    frame = make_result().to_frame()
    assert list(frame.index) == [0, 1, 2]
    np.testing.assert_allclose(frame["selectivity"], [-0.02, 0.25, 0.36])
    assert make_result().best_layer == 2


def test_result_to_html_is_standalone(tmp_path: Path):
    page = make_result().to_html(tmp_path / "probe.html").read_text()
    assert "<script src=" not in page and "cdn.bokeh.org" not in page
    assert "Bokeh" in page and "subject number" in page
    # the plotted values are in the embedded document
    doc = page[page.index('type="application/json"') :]
    assert "0.97" in doc and "0.61" in doc
    json.loads(doc[doc.index(">") + 1 : doc.index("</script>")])


def test_result_to_html_is_the_registered_html_view(tmp_path: Path, monkeypatch):
    from llmasos_widgets import _views

    written = []
    monkeypatch.setitem(
        _views._VIEWS, ("html", ProbeResult), lambda result, path: written.append(path) or path
    )
    assert make_result().to_html(tmp_path / "probe.html") == tmp_path / "probe.html"
    assert written == [tmp_path / "probe.html"]


def test_activations_open_refuses_incomplete_directory(tmp_path: Path):
    (tmp_path / "shard-00000").mkdir()
    with pytest.raises(FileNotFoundError, match="did not finish"):
        Activations.open(tmp_path)
    (tmp_path / "activations.json").write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match="not a llmasos-activations"):
        Activations.open(tmp_path)
