"""ProbeWidget without a model: binary series, layer mapping, linking with other widgets."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
from ipywidgets.widgets.widget import _remove_buffers

from llmasos_widgets.probing import ProbeResult
from llmasos_widgets.widgets import link_selection
from llmasos_widgets.widgets._base import STATIC_DIR
from llmasos_widgets.widgets.probe import ProbeWidget


def make_result(control: bool = True) -> ProbeResult:
    return ProbeResult(
        layers=np.array([0, 1, 2, 3]),
        labels=("singular", "plural"),
        train_accuracy=np.array([0.6, 0.9, 1.0, 1.0]),
        test_accuracy=np.array([0.5, 0.85, 0.97, 0.93]),
        control_accuracy=np.array([0.52, 0.6, 0.61, 0.6]) if control else None,
        majority_baseline=0.5,
        weights=np.zeros((4, 2, 8), np.float32),
        bias=np.zeros((4, 2), np.float32),
        n_train=30,
        n_test=10,
        metadata={"dataset": "subject number", "n_layers": 3},
    )


def decode(payload: dict) -> np.ndarray:
    return np.frombuffer(bytes(payload["view"]), dtype=payload["dtype"]).reshape(payload["shape"])


def test_series_travel_as_float32_binary_buffers():
    widget = ProbeWidget(make_result())
    assert widget.layers == [0, 1, 2, 3]
    np.testing.assert_array_equal(
        decode(widget.series["test_accuracy"]), np.float32([0.5, 0.85, 0.97, 0.93])
    )
    np.testing.assert_allclose(
        decode(widget.series["selectivity"]), [-0.02, 0.25, 0.36, 0.33], atol=1e-6
    )
    # what ipywidgets sends: JSON state without floats, the values in binary buffers
    state, _, buffers = _remove_buffers(widget.get_state())
    assert len(buffers) == 4 and "0.97" not in repr(state)
    assert ProbeWidget(make_result(control=False)).series.keys() == {
        "test_accuracy",
        "train_accuracy",
    }
    assert widget._esm == (STATIC_DIR / "probe.js").read_text()  # the built bundle, not inline


def test_probe_points_map_to_decoder_layers():
    widget = ProbeWidget(make_result())
    widget.select_residual(3)  # output of decoder layer 2
    assert widget.selected_layer == 2
    widget.select_residual(0)  # embeddings: no decoder layer
    assert widget.selected_layer == -1
    with pytest.raises(ValueError, match="not probed"):
        widget.select_residual(7)
    with pytest.raises(ValueError, match="out of range"):
        widget.selected_layer = 3  # the model has decoder layers 0..2


def test_linked_widgets_follow_the_selected_layer():
    probe_widget, other = ProbeWidget(make_result()), ProbeWidget(make_result())
    selection = link_selection(probe_widget, other)
    probe_widget.select_residual(2)
    assert other.selected_layer == 1
    other.selected_layer = 0  # set from Python elsewhere: highlighted here
    assert probe_widget.selected_layer == 0
    selection.unlink()


def test_metric_names_the_emphasized_series():
    widget = ProbeWidget(make_result())
    widget.metric = "selectivity"
    with pytest.raises(ValueError, match="unknown metric"):
        widget.metric = "entropy"
    with pytest.raises(TypeError, match="ProbeResult"):
        ProbeWidget({"test_accuracy": [0.5]})


def test_result_is_collectable_after_close():
    result = make_result()
    ref = weakref.ref(result)
    widget = ProbeWidget(result)
    del result
    gc.collect()
    assert ref() is not None  # the open widget holds it
    widget.close()  # `widget` itself stays referenced here: close() must drop the result
    gc.collect()
    assert ref() is None and widget.result is None
