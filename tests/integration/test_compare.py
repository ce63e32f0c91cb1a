"""compare(): two models on one text, lined up by [layer, head] and [site, token].

Known answers: a model compared with itself differs by exactly zero everywhere; a copy with
one head's queries zeroed (its pattern becomes uniform, nothing before it changes) has that
head first in ``changed_heads`` and every earlier-layer head at exactly zero; models that
tokenize differently or have other shapes are refused with the difference named.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import llmasos_widgets as lw
from llmasos_widgets.comparison import Comparison, compare
from llmasos_widgets.models import as_explainable
from tests.conftest import WORDS, random_llama, word_tokenizer

TEXT = "the key near the cabinets"


def _zero_query_head(model, layer: int, head: int):
    """A copy of ``model`` whose head (layer, head) has zero queries: uniform causal attention."""
    tuned = copy.deepcopy(model.hf_model)
    attention = tuned.model.layers[layer].self_attn
    d = attention.head_dim
    with torch.no_grad():
        attention.q_proj.weight[head * d : (head + 1) * d] = 0
    return lw.models.ExplainableModel(
        tuned, model.tokenizer, name="zeroed", copy_tokens=model.copy_tokens
    )


@pytest.fixture(scope="module")
def zeroed(bundled):
    """The bundled model against a copy whose head L2H1 has zero queries."""
    return compare(bundled, _zero_query_head(bundled, 2, 1), TEXT)


def test_identical_models_differ_by_exactly_zero(bundled):
    comparison = compare(bundled, bundled, TEXT)
    assert isinstance(comparison, Comparison)
    for name, difference in comparison.head_differences.items():
        assert np.array_equal(difference, np.zeros_like(difference)), name
    assert np.array_equal(comparison.lens_distance, np.zeros_like(comparison.lens_distance))
    assert np.array_equal(comparison.lens_target_difference, np.zeros((4, 6), np.float32))
    assert comparison.saliency_difference is not None
    assert np.array_equal(comparison.saliency_difference, np.zeros((4, 6), np.float32))
    # the same target in both: model A's own prediction after the last token
    assert comparison.a.saliency.target_token_ids == comparison.b.saliency.target_token_ids
    assert comparison.target_token in ("is", "was", "has")  # singular: the subject is "key"


def test_a_head_with_zeroed_queries_ranks_first(zeroed):
    comparison = zeroed
    top = comparison.changed_heads(k=3)
    assert top[0][:2] == (2, 1)
    assert top[0][2] > 0.1
    distance = comparison.attention_distance()
    # the last layer: no other head's input changed, so no other pattern did
    assert np.count_nonzero(distance) == 1
    pattern = comparison.b.attention(2, 1)
    rows = np.arange(1, 7)
    assert np.allclose(pattern[rows - 1, :].sum(1), 1)
    assert np.allclose(pattern[5, :6], 1 / 6, atol=1e-6)  # uniform over the causal prefix
    # its output changed: the lens after L2 moved, the earlier sites did not
    assert np.all(comparison.lens_distance[:3] == 0)
    assert comparison.changed_sites(1)[0][0] == 3


def test_an_earlier_head_ranks_first_and_leaves_earlier_layers_alone(bundled):
    comparison = compare(bundled, _zero_query_head(bundled, 1, 2), TEXT, saliency=False)
    assert comparison.changed_heads(k=1)[0][:2] == (1, 2)
    distance = comparison.attention_distance()
    assert np.all(distance[0] == 0)
    assert np.count_nonzero(distance[1]) == 1


def test_differently_tokenized_models_are_refused_naming_the_token():
    model = random_llama()
    reordered = word_tokenizer(list(reversed(WORDS)))
    a = as_explainable(model, word_tokenizer())
    b = as_explainable(model, reordered)
    with pytest.raises(ValueError, match=r"tokenize the text differently: token 1 is 'w3' \(id"):
        compare(a, b, "w3 w4")


def test_models_of_other_shapes_are_refused():
    a = as_explainable(random_llama(layers=2), word_tokenizer())
    b = as_explainable(random_llama(layers=3), word_tokenizer())
    with pytest.raises(ValueError, match="2 layers x 4 heads but model B .* has 3 x 4"):
        compare(a, b, "w1 w2")


def test_save_and_load_round_trip(zeroed, tmp_path):
    comparison = zeroed
    loaded = Comparison.load(comparison.save(tmp_path / "run"))
    assert loaded.target_token == comparison.target_token
    assert np.array_equal(loaded.lens_distance, comparison.lens_distance)
    assert np.array_equal(loaded.attention_distance(), comparison.attention_distance())
    assert loaded.changed_heads(k=2) == comparison.changed_heads(k=2)
    assert np.array_equal(loaded.saliency_difference, comparison.saliency_difference)
    with pytest.raises(FileNotFoundError, match="no comparison.json"):
        Comparison.load(tmp_path)


def test_changed_heads_by_summary_and_bad_arguments(zeroed):
    comparison = zeroed
    entropy = comparison.changed_heads("entropy", k=1)[0]
    assert entropy[:2] == (2, 1) and entropy[2] > 0  # uniform attention: entropy went up
    with pytest.raises(ValueError, match="unknown summary 'entropie'; available"):
        comparison.changed_heads("entropie")
    with pytest.raises(ValueError, match="query 9 is out of range"):
        comparison.attention_distance(query=9)


def test_compare_widget_links_both_sides_and_the_difference(zeroed):
    comparison = zeroed
    widget = lw.CompareWidget(comparison)
    a, b, difference = widget.parts
    a.selected_layer, a.selected_heads = 2, [1]
    assert (b.selected_layer, b.selected_heads) == (2, [1])
    assert (difference.selected_layer, difference.selected_heads) == (2, [1])
    difference.selected_tokens = [3]
    assert a.selected_tokens == b.selected_tokens == [3]
    assert difference.metric == "entropy"
    assert difference.saliency_a["shape"] == [4, 6]
    bundle = comparison._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    widget.close()


def test_html_report_shows_what_moved_and_both_reports(zeroed, tmp_path):
    page = zeroed.to_html(tmp_path / "compare.html").read_text("utf-8")
    assert "attention moved" in page and "top: L2H1" in page
    assert page.count("<iframe") == 2
    assert "B − A probability of" in page


def test_nearest_noun_examples_agree_with_the_attractor():
    from llmasos_widgets.language import agreement_examples
    from llmasos_widgets.language._variants import nearest_noun_examples

    new, old = nearest_noun_examples(40, seed=5), agreement_examples(40, seed=5)
    assert [e.text for e in new] == [e.text for e in old]  # same prompts, same draws
    for e_new, e_old in zip(new, old, strict=True):
        same = e_new.number == e_new.attractor_number
        assert (e_new.correct_verb == e_old.correct_verb) == same
        plural = e_new.correct_verb in ("are", "were", "have")
        assert plural == (e_new.attractor_number == "plural")
