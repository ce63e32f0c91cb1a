"""SaliencyWidget in the kernel: payloads, recomputation on setting changes, linking, cleanup."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

from llmasos_widgets._hooks import count_hooks
from llmasos_widgets.attribution import attribute
from llmasos_widgets.widgets import link_selection
from llmasos_widgets.widgets.saliency import SaliencyWidget

TEXT = "w1 w5 w7 w3 w9"


def _scores(widget: SaliencyWidget) -> np.ndarray:
    payload = widget.scores
    assert payload["dtype"] == "float32" and isinstance(payload["view"], memoryview)
    return np.frombuffer(payload["view"], dtype="<f4").reshape(payload["shape"])


def test_widget_shows_what_attribute_computes(tiny_random) -> None:
    widget = SaliencyWidget(
        tiny_random, TEXT, method="integrated_gradients", target="w4", n_steps=16, layers="all"
    )
    expected = attribute(
        tiny_random, TEXT, method="integrated_gradients", target="w4", n_steps=16, layers="all"
    )
    np.testing.assert_array_equal(_scores(widget), expected.scores)
    assert widget.tokens == list(expected.tokens)
    assert widget.sites == [0, 1, 2]
    assert widget.target == expected.target
    assert widget.target_probability == pytest.approx(expected.target_probability)
    assert widget.target_position == 5
    assert widget.status == "ready" and widget.progress == 1.0
    assert widget.method_options == [
        "gradient",
        "input_x_gradient",
        "integrated_gradients",
        "occlusion",
    ]
    assert widget.baseline_options == ["zero", "pad", "unk"]
    delta = np.frombuffer(widget.convergence_delta["view"], dtype="<f4")
    np.testing.assert_array_equal(delta, expected.convergence_delta)


def test_changing_settings_recomputes_with_progress(tiny_random) -> None:
    widget = SaliencyWidget(
        tiny_random, TEXT, method="integrated_gradients", target="w4", n_steps=8
    )
    seen: list[tuple[str, float]] = []
    widget.observe(lambda c: seen.append((c["name"], c["new"])), names=["status", "progress"])

    widget.method = "gradient"
    assert not widget.uses_baseline and not widget.signed
    expected = attribute(tiny_random, TEXT, target="w4", method="gradient")
    np.testing.assert_array_equal(_scores(widget), expected.scores)
    assert ("status", "computing gradient …") in seen and seen[-1] == ("status", "ready")

    widget.method = "integrated_gradients"
    widget.target_position = 2  # what a click on token 2 in the view sets
    assert "after token 2" in widget.target
    assert (_scores(widget)[:, 3:] == 0).all()
    widget.baseline = "pad"
    expected = attribute(
        tiny_random,
        TEXT,
        method="integrated_gradients",
        target="w4",
        baseline="pad",
        n_steps=8,
        position=2,
    )
    np.testing.assert_array_equal(_scores(widget), expected.scores)
    assert widget.saliency.baseline == "pad"
    assert count_hooks(tiny_random.hf_model) == 0


def test_bad_settings_raise_with_suggestions(tiny_random) -> None:
    widget = SaliencyWidget(tiny_random, TEXT, method="integrated_gradients", n_steps=4)
    with pytest.raises(Exception, match="did you mean 'occlusion'"):
        widget.method = "oclusion"
    with pytest.raises(Exception, match="unknown baseline 'mean'"):
        widget.baseline = "mean"
    with pytest.raises(Exception, match="target_position=9 is out of range"):
        widget.target_position = 9
    with pytest.raises(ValueError, match="is 2 tokens"):
        SaliencyWidget(tiny_random, TEXT, target="w1 w2")


def test_selection_links_with_another_widget(tiny_random) -> None:
    first = SaliencyWidget(tiny_random, TEXT, method="integrated_gradients", n_steps=4)
    second = SaliencyWidget(tiny_random, TEXT, method="gradient")
    link_selection(first, second)
    first.selected_layer = 1
    first.selected_tokens = [1, 3]
    second.hovered_token = 2
    assert (second.selected_layer, second.selected_tokens) == (1, [1, 3])
    assert first.hovered_token == 2
    assert first.target_position == 5  # brushing elsewhere does not retarget
    with pytest.raises(Exception, match="selected_layer=2 is out of range"):
        first.selected_layer = 2  # two decoder layers: 0..1


def test_model_is_collectable_after_close() -> None:
    from llmasos_widgets.models import as_explainable
    from tests.conftest import random_llama, word_tokenizer

    hf_model = random_llama()
    widget = SaliencyWidget(as_explainable(hf_model, word_tokenizer()), TEXT, method="gradient")
    ref = weakref.ref(hf_model)
    del hf_model
    gc.collect()
    assert ref() is not None  # the open widget holds it
    widget.close()  # `widget` itself stays referenced here: close() must drop the model
    gc.collect()
    assert ref() is None
    with pytest.raises(RuntimeError, match="closed"):
        widget.recompute()
