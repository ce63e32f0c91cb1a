"""Attention sinks (issue 20) with their known answers: none on the bundled model's texts,
position 0 on the real checkpoint (SmolLM2-135M-Instruct), saved and loaded, older files
measured on demand, shown by the widgets and the report."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from llmasos_widgets import AttentionWidget, SaliencyWidget
from llmasos_widgets.explanation import Explanation
from llmasos_widgets.explanation._sinks import SINK_HEAD_SHARE, SINK_THRESHOLD, measure_sinks

TINY_TEXT = "the keys near the cabinet are on the table ."


def test_the_bundled_model_has_no_sink(bundled, tmp_path):
    """Measured: on this text at most 4 of the 12 heads (3 layers x 4) sink into any key
    (position 6, "are"), not more than half; none is a sink with a threshold of 0.1 either."""
    explanation = bundled.explain(TINY_TEXT, saliency=False)
    sinks = explanation.attention_sinks
    assert sinks is not None
    assert (sinks.threshold, sinks.min_share) == (SINK_THRESHOLD, SINK_HEAD_SHARE)
    assert sinks.positions == ()
    assert float(sinks.head_share.max()) == pytest.approx(4 / 12)
    assert int(sinks.head_share.argmax()) == 6
    assert explanation.find_attention_sinks(threshold=0.1).positions == ()
    # key 0's received weight is the first_token summary (same rows, same weights)
    np.testing.assert_allclose(
        sinks.received[:, :, 0], explanation.head_summaries["first_token"], atol=1e-6
    )

    path = explanation.save(tmp_path / "run.llmx")
    loaded = Explanation.load(path)
    assert loaded.attention_sinks is not None
    np.testing.assert_array_equal(loaded.attention_sinks.received, sinks.received)
    assert loaded.attention_sinks.summary() == sinks.summary()

    # a file saved before sinks were measured loads with none; they are measured on demand
    older = dataclasses.replace(explanation, attention_sinks=None)
    loaded_older = Explanation.load(older.save(tmp_path / "older.llmx"))
    assert loaded_older.attention_sinks is None
    again = loaded_older.find_attention_sinks()
    np.testing.assert_allclose(again.received, sinks.received, atol=1e-6)

    widget = AttentionWidget(explanation)
    assert widget.attention_sinks["positions"] == []
    assert widget.exclude_sinks_from_scale is False
    report = explanation.to_html(tmp_path / "report.html").read_text(encoding="utf-8")
    assert "No attention sink in this text." in report
    assert "data-sink=" not in report


@pytest.mark.real_model
def test_position_zero_is_the_real_models_sink(real_model, tmp_path):
    """SmolLM2-135M-Instruct: position 0 is the one sink of each text. Measured shares of the
    270 heads (30 layers x 9) sinking into it: 0.83 ("The capital of France is"), 0.82 (a
    code line) -- e.g. L18.H8, whose first_token summary is 1.00; gradient saliency is largest
    there too, which is what the marks are for."""
    explanation = real_model.explain("The capital of France is", saliency=False)
    code = "def add(a, b):\n    return a + b\n"  # measured without a whole explain
    for sinks, share in (
        (explanation.attention_sinks, 0.83),
        (measure_sinks(real_model, real_model.encode(code)), 0.82),
    ):
        assert sinks is not None
        assert sinks.positions == (0,)
        assert float(sinks.head_share[0]) == pytest.approx(share, abs=0.01)
        assert bool(sinks.sinking[18, 8, 0])
        assert float(sinks.mass[0]) > 0.6

    saliency = SaliencyWidget(real_model, "The capital of France is")
    assert saliency.attention_sinks["positions"] == [0]
    assert saliency.attention_sinks["head_share"][0] == pytest.approx(0.83, abs=0.01)
    assert int(np.abs(saliency.saliency.scores[0]).argmax()) == 0  # the embeddings row

    attention = AttentionWidget(explanation)
    assert attention.attention_sinks["positions"] == [0]
    attention.exclude_sinks_from_scale = True  # a plain trait: sinks are never hidden
    report = explanation.to_html(tmp_path / "report.html").read_text(encoding="utf-8")
    assert report.count("data-sink='true'") == 1
    assert "Attention sinks (marked <i>sink</i> above): position 0" in report
