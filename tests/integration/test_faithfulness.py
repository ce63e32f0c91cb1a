"""Faithfulness (deletion/insertion curves) of saliency maps on the bundled model.

Known answers: an order that puts the measured true cause first beats its reverse; the curves
start at f(x) and end at f(baseline) whatever the order; and on held-out agreement prompts the
method that ranks the subject above the attractor most often (``gradient``, 95 %) is *not* the
most faithful one: ``occlusion`` scores higher by a wide margin (measured in
docs/faithfulness.md; the issue expected the opposite).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from llmasos_widgets.attribution import Contrast, attribute
from llmasos_widgets.attribution._faithfulness import (
    Faithfulness,
    compare_faithfulness,
    faithfulness,
)
from llmasos_widgets.language import agreement_examples

HELD_OUT_SEED = 2025  # not the seeds the docs' figures were measured on (7, 11)
HELD_OUT_PROMPTS = 32
# Measured mean score occlusion - gradient: +0.26 (seed 7, 20 prompts), +0.34 (seed 11, 40),
# +0.33 (seed 3, 60), +0.18 (this set); subject ranked first, gradient vs occlusion: 0.63 vs
# 0.28 (seed 11), 0.60 vs 0.20 (seed 3), 0.69 vs 0.25 (this set). Per-prompt scores spread
# widely (sd 0.3-0.5), hence 32 prompts: the first 16 of this set alone give only +0.03.
SCORE_MARGIN = 0.1
SUBJECT_FIRST_MARGIN = 0.2


def _contrast(example) -> Contrast:
    return Contrast(example.correct_verb, example.wrong_verb)


def _with_scores(saliency, emb_scores: np.ndarray):
    scores = np.zeros_like(saliency.scores)
    scores[0] = emb_scores
    return dataclasses.replace(saliency, scores=scores.astype(np.float32))


def test_curves_run_from_f_x_to_f_baseline(bundled) -> None:
    example = agreement_examples(1, seed=HELD_OUT_SEED, split="test")[0]
    saliency = attribute(bundled, example.text, target=_contrast(example), layers=0)
    result = faithfulness(bundled, saliency, n_random=4)
    n = len(example.words)  # every word is one token; <bos> is kept
    assert result.order.shape == (n,)
    assert sorted(result.order.tolist()) == list(range(1, n + 1))
    assert result.f_x == pytest.approx(saliency.f_x, rel=1e-4)
    for curve in (result.deletion, result.deletion_random):
        assert curve[0] == pytest.approx(result.f_x, rel=1e-5)
        assert curve[-1] == pytest.approx(result.f_baseline, rel=1e-5)
    for curve in (result.insertion, result.insertion_random):
        assert curve[0] == pytest.approx(result.f_baseline, rel=1e-5)
        assert curve[-1] == pytest.approx(result.f_x, rel=1e-5)
    assert result.score == pytest.approx((result.comprehensiveness + result.sufficiency) / 2)
    # the same seed gives the same random reference
    again = faithfulness(bundled, saliency, n_random=4)
    np.testing.assert_array_equal(again.deletion_random, result.deletion_random)


def test_true_cause_first_beats_its_reverse(bundled) -> None:
    """The true cause is measured: the token whose deletion alone lowers f the most."""
    for example in agreement_examples(6, seed=HELD_OUT_SEED + 1, split="test"):
        saliency = attribute(bundled, example.text, target=_contrast(example), layers=0)
        # one-token deletion effects = the first step of each single-token order
        n = saliency.n_tokens
        effects = np.zeros(n)
        for position in range(1, n):
            scores = np.zeros(n)
            scores[position] = 1.0
            effects[position] = saliency.f_x - float(
                faithfulness(bundled, _with_scores(saliency, scores), n_random=1).deletion[1]
            )
        ranked = effects.copy()
        ranked[0] = 0.0
        true_first = faithfulness(bundled, _with_scores(saliency, ranked))
        reverse = faithfulness(bundled, _with_scores(saliency, -ranked))
        cause = int(np.argmax(effects[1:])) + 1
        assert int(true_first.order[0]) == cause and int(reverse.order[-1]) == cause
        assert true_first.deletion[1] < reverse.deletion[1]
        assert true_first.score > max(0.0, reverse.score + 0.1)


def test_the_method_that_finds_the_subject_is_not_the_most_faithful(bundled) -> None:
    """Measured known answer (the issue expected the opposite): ``gradient`` ranks the subject
    first far more often than ``occlusion`` but scores lower on deletion/insertion."""
    examples = agreement_examples(HELD_OUT_PROMPTS, seed=HELD_OUT_SEED, split="test")
    scores: dict[str, list[float]] = {"gradient": [], "occlusion": []}
    subject_first: dict[str, list[bool]] = {"gradient": [], "occlusion": []}
    for example in examples:
        comparison = compare_faithfulness(
            bundled, example.text, methods=list(scores), target=_contrast(example)
        )
        for method in scores:
            scores[method].append(comparison[method].score)
            subject_first[method].append(
                int(comparison[method].order[0]) == example.subject_index + 1
            )
    first = {method: float(np.mean(hits)) for method, hits in subject_first.items()}
    mean = {method: float(np.mean(values)) for method, values in scores.items()}
    print(f"subject ranked first: {first}; mean faithfulness: {mean}")
    assert first["gradient"] > first["occlusion"] + SUBJECT_FIRST_MARGIN
    assert mean["occlusion"] > mean["gradient"] + SCORE_MARGIN


def test_comparison_line_and_errors(bundled) -> None:
    comparison = compare_faithfulness(
        bundled, "the keys to the cabinet", methods=["gradient", "occlusion"], n_random=4
    )
    assert [r.method for r in comparison.results] == sorted(
        ["gradient", "occlusion"], key=lambda m: -comparison[m].score
    )
    assert comparison.line.startswith("faithfulness (vs random order): " + comparison.best)
    assert isinstance(comparison.results[0], Faithfulness)
    with pytest.raises(KeyError, match="was not compared"):
        comparison["integrated_gradients"]
    saliency = comparison["gradient"]
    with pytest.raises(ValueError, match="n_random"):
        faithfulness(bundled, attribute(bundled, "the keys to the cabinet"), n_random=0)
    with pytest.raises(KeyError, match="not computed"):
        faithfulness(bundled, attribute(bundled, "the keys", layers=1), site=0)
    assert saliency.to_json()["score"] == pytest.approx(saliency.score)
