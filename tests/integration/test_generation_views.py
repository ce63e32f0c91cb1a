"""Views of a generated Explanation: the generation traits of the widgets, the SaliencyWidget's
matrix (rows picked by generated token, recomputed for a new method) and the HTML report."""

from __future__ import annotations

import re

import numpy as np
import pytest

import llmasos_widgets as lw
from llmasos_widgets.attribution._saliency_matrix import attribute_generation

PROMPT = "coins box cabinet doors foot child dog pens coins"
NEW = 5


@pytest.fixture(scope="module")
def generated(bundled):
    return lw.generate(bundled, PROMPT, max_new_tokens=NEW)


def _payload(trait: dict) -> np.ndarray:
    return np.frombuffer(trait["view"], dtype=trait["dtype"]).reshape(trait["shape"])


def test_widgets_carry_the_prompt_boundary_and_probabilities(bundled, generated) -> None:
    generation = generated.generation
    expected = [float(p) for p in generation.token_probabilities]
    attention = lw.AttentionWidget(generated)
    saliency = lw.SaliencyWidget(bundled, generated)
    for widget in (attention, saliency):
        assert widget.prompt_length == generation.prompt_length == 10
        assert widget.token_probabilities == expected
        widget.close()
    plain = lw.AttentionWidget(lw.explain(bundled, PROMPT, saliency=False))
    assert plain.prompt_length == -1 and plain.token_probabilities == []
    plain.close()


def test_saliency_widget_shows_the_matrix_and_the_row_of_the_chosen_token(
    bundled, generated
) -> None:
    matrix = generated.generation.saliency
    widget = lw.SaliencyWidget(bundled, generated)
    np.testing.assert_array_equal(_payload(widget.generated_scores), matrix.scores)
    # the last generated token's row is shown first, without recomputing
    assert widget.generated_token == generated.n_tokens - 1
    np.testing.assert_array_equal(widget.saliency.scores, matrix.scores[-1])
    widget.generated_token = 11  # what a click on generated token 11 sets
    assert widget.target_position == 10
    np.testing.assert_array_equal(widget.saliency.scores, matrix.scores[1])
    assert widget.target == "log p('cabinet') after token 10"
    with pytest.raises(Exception, match="not a generated token"):
        widget.generated_token = 3
    widget.method = "input_x_gradient"  # the whole matrix, recomputed for the method
    again = attribute_generation(bundled, generated.token_ids, 10, method="input_x_gradient")
    np.testing.assert_allclose(_payload(widget.generated_scores), again.scores, rtol=1e-5)
    np.testing.assert_allclose(widget.saliency.scores, again.scores[1], rtol=1e-5)
    widget.target_position = 4  # a prompt token: its own prediction, as without generation
    assert widget.generated_token == -1
    assert widget.target.endswith("(predicted) after token 4")
    widget.close()


def test_report_shows_boundary_probabilities_alternatives_and_matrix(generated, tmp_path) -> None:
    page = generated.to_html(tmp_path / "report.html").read_text()
    generation = generated.generation
    assert "data-testid='report-generation-boundary'" in page
    assert page.count("data-kind='generated'") >= NEW
    for step in range(NEW):
        row = re.search(rf"<tr data-testid='report-generated-{10 + step}'>(.*?)</tr>", page)
        assert row is not None
        assert f"{generation.step_probabilities[step]:.3f}" in row.group(1)
        assert generation.alternative_tokens[step][1] in row.group(1)
    canvas = re.search(r"<canvas data-figure='saliency-matrix'[^>]*>", page)
    assert canvas is not None
    assert f"data-rows='{NEW}'" in canvas.group(0)
    assert f"data-cols='{generated.n_tokens}'" in canvas.group(0)
