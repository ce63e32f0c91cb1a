"""LogitLensWidget (rows = residual sites, linked to layer/token selection) and the
SaliencyWidget's faithfulness hook, kernel side, on the bundled model."""

from __future__ import annotations

import numpy as np
import pytest

from llmasos_widgets.attribution import faithfulness
from llmasos_widgets.widgets import (
    AttentionWidget,
    LogitLensWidget,
    SaliencyWidget,
    _saliency_faithfulness,
    link_selection,
)

TEXT = "the keys to the old cabinet are on the table"


@pytest.fixture(scope="module")
def explanation(bundled):
    return bundled.explain(TEXT, saliency=False)


def test_logit_lens_rows_are_sites_and_cells_the_lens(explanation) -> None:
    widget = LogitLensWidget(explanation)
    n_layers = explanation.n_layers
    assert widget.site_names == ["emb", *(f"after L{i}" for i in range(n_layers))]
    payload = widget.lens_probs
    probs = np.frombuffer(payload["view"], dtype="<f4").reshape(payload["shape"])
    np.testing.assert_array_equal(probs, explanation.lens_probs)
    # the bundled tokenizer is word level: readable text = the raw token strings
    assert widget.lens_tokens == [list(row) for row in explanation.lens_tokens]
    assert widget.site_of_layer(-1) == 0 and widget.site_of_layer(2) == 3
    with pytest.raises(Exception, match="selected_layer=3 is out of range"):
        widget.selected_layer = n_layers


def test_logit_lens_links_layer_and_tokens_with_attention(explanation) -> None:
    lens = LogitLensWidget(explanation)
    attention = AttentionWidget(explanation)
    link_selection(lens, attention)
    lens.selected_layer = 1  # the view's click on row "after L1"
    lens.selected_tokens = [4]
    assert (attention.selected_layer, attention.selected_tokens) == (1, [4])
    attention.selected_layer = 0
    assert lens.selected_layer == 0


def test_faithfulness_button_sets_the_score_python_computes(bundled) -> None:
    widget = SaliencyWidget(bundled, TEXT)
    assert widget.faithfulness == {}
    _saliency_faithfulness.on_message(widget, {"type": "faithfulness"}, [])  # what the button sends
    value = widget.faithfulness
    assert value["status"] == "ready" and value["method"] == "gradient"
    expected = faithfulness(bundled, widget.saliency)
    assert value["score"] == pytest.approx(expected.score, rel=1e-6)
    curves = np.frombuffer(value["curves"]["view"], dtype="<f4").reshape(value["curves"]["shape"])
    np.testing.assert_array_equal(curves[0], expected.deletion)
    assert [entry["method"] for entry in value["comparison"]] == sorted(
        widget.method_options, key=lambda m: -(next(
            e["score"] for e in value["comparison"] if e["method"] == m
        ) or -np.inf)
    )
    assert value["line"].startswith("faithfulness (vs random order): ")
    widget.method = "occlusion"  # a new map: the old test no longer applies
    assert widget.faithfulness == {}


def test_report_shows_the_score_next_to_the_saliency_table(bundled, tmp_path) -> None:
    from llmasos_widgets.attribution import with_faithfulness
    from llmasos_widgets.explanation import Explanation

    explained = bundled.explain(TEXT, saliency_method="gradient")
    plain = explained.to_html(tmp_path / "plain.html").read_text(encoding="utf-8")
    assert "report-faithfulness" not in plain
    result = faithfulness(bundled, explained.saliency, n_random=4)
    carried = with_faithfulness(explained, result)
    report = carried.to_html(tmp_path / "report.html").read_text(encoding="utf-8")
    line = report[report.index("data-testid='report-faithfulness'") :]
    assert f"faithfulness <b>{result.score:.3f}</b>" in line[:300]
    assert report.index("report-faithfulness") > report.index("Gradient saliency")
    # saved and loaded with the explanation (metadata is JSON)
    carried.save(tmp_path / "run.llmx")
    loaded = Explanation.load(tmp_path / "run.llmx")
    assert loaded.metadata["faithfulness"]["score"] == pytest.approx(result.score)
    other = faithfulness(bundled, dataclasses_replace_method(explained.saliency), n_random=4)
    with pytest.raises(ValueError, match="explanation's map is gradient"):
        with_faithfulness(explained, other)


def dataclasses_replace_method(saliency):
    import dataclasses

    return dataclasses.replace(saliency, method="occlusion")
