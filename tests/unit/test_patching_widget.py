"""PatchingWidget without a model: traits from a PatchingResult, clicks as selections, links."""

from __future__ import annotations

import numpy as np
import pytest

from llmasos_widgets.interventions import AblationMap, PatchingResult
from llmasos_widgets.widgets import PatchingWidget, link_selection


def _result(clean_value: float = 2.0, corrupted_value: float = -2.0) -> PatchingResult:
    residual = np.full((3, 4), corrupted_value, np.float32)
    residual[0, 2] = clean_value
    return PatchingResult(
        clean_text="a <b>keys</b> x",
        corrupted_text="a key x",
        clean_tokens=("<bos>", "a", "<b>keys</b>", "x"),
        corrupted_tokens=("<bos>", "a", "key", "x"),
        target="logit('are') - logit('is') after token 3",
        target_position=3,
        clean_value=clean_value,
        corrupted_value=corrupted_value,
        residual_values=residual,
        head_values=np.array([[0.0, 2.0], [-2.0, -6.0]], np.float32),
        n_layers=2,
        n_heads=2,
        forward_passes=2,
    )


def test_traits_carry_the_normalised_maps_and_both_prompts() -> None:
    widget = PatchingWidget(_result())
    assert widget.site_names == ["emb", "after L0", "after L1"]
    assert widget.differing == [2]
    assert widget.tokens[2] == "<b>keys</b>"  # data: the view sets it as text
    assert widget.corrupted_tokens[2] == "key"
    residual = np.frombuffer(widget.residual["view"], np.float32).reshape(widget.residual["shape"])
    heads = np.frombuffer(widget.heads["view"], np.float32).reshape(widget.heads["shape"])
    assert residual[0, 2] == 1.0 and residual[1, 1] == 0.0
    np.testing.assert_allclose(heads, [[0.5, 1.0], [0.0, -1.0]])
    assert widget.target.startswith("logit('are')")


def test_clicks_select_layer_head_and_token_and_reach_a_linked_widget() -> None:
    a, b = PatchingWidget(_result()), PatchingWidget(_result())
    link_selection(a, b)
    a.select_head(1, 0)
    assert (b.selected_layer, b.selected_heads) == (1, [0])
    a.select_residual(2, 3)  # after L1 -> decoder layer 1, token 3
    assert (b.selected_layer, b.selected_tokens) == (1, [3])
    a.select_residual(0, 1)  # emb belongs to no layer
    assert (b.selected_layer, b.selected_tokens) == (-1, [1])
    with pytest.raises(ValueError, match="site 3 is out of range"):
        a.select_residual(3, 0)
    with pytest.raises(ValueError, match="selected_heads"):
        a.selected_heads = [2]


def test_results_are_validated_and_widgets_take_only_results() -> None:
    with pytest.raises(ValueError, match="nothing to normalise"):
        _result(1.0, 1.0)
    with pytest.raises(TypeError, match="takes a PatchingResult"):
        PatchingWidget(object())
    result = _result()
    assert result.flips(result.residual_values)[0, 2]
    assert not result.flips(result.residual_values)[1, 2]
    assert "best residual cell emb @ 2" in repr(result)


def test_html_report_shows_both_maps_and_escapes_tokens(tmp_path) -> None:
    path = _result().to_html(tmp_path / "patching.html")
    page = path.read_text(encoding="utf-8")
    assert "<b>keys</b>" not in page and "&lt;b&gt;keys&lt;/b&gt;" in page
    assert page.count('<table class="map">') == 2
    assert '<span class="diff">key</span>' in page
    assert "+1.00" in page and "<script" not in page


def test_an_ablation_map_shows_as_the_head_map_alone() -> None:
    values = np.array([[1.0, 0.0], [0.5, 1.0]], np.float32)
    head_map = AblationMap(
        target="copying accuracy", mode="zero", n_texts=3, before=1.0, values=values
    )
    widget = PatchingWidget(head_map)
    heads = np.frombuffer(widget.heads["view"], np.float32).reshape(widget.heads["shape"])
    np.testing.assert_array_equal(heads, [[0.0, -1.0], [-0.5, 0.0]])
    assert widget.residual == {} and widget.tokens == []
    assert "zero-ablating one head at a time over 3 text(s)" in widget.caption
    assert widget.legend["label"] == "change when the head is ablated"
    assert "largest drop L0H1" in repr(head_map)
    widget.select_head(1, 1)
    assert (widget.selected_layer, widget.selected_heads) == (1, [1])
