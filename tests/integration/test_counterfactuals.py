"""counterfactuals() against a planted, known effect: on the bundled model the subject's
number decides the verb, so over singular and plural subject fills the logit difference
logit(" are") - logit(" is") flips sign with the fill's number and the gap arises in layer 2
(docs/interventions.md). Also: batched values equal one-at-a-time forwards, the Dask path
equals the local one, the progress bar counts every prompt, the views escape text, and every
error a user can cause says what to do."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import llmasos_widgets as lw
from llmasos_widgets.interventions import AttributionPatchingResult, CounterfactualResult
from llmasos_widgets.language import ADJECTIVES, NOUN_PAIRS

TEMPLATE = "the {noun} near the cabinet"
NOUNS = [noun for pair in NOUN_PAIRS for noun in pair]
PLURAL = {plural for _, plural in NOUN_PAIRS}
AGREEMENT = (" are", " is")
# float32 logits of magnitude <= ~10 after 3 layers: padding changes only how attention sums
# (masked columns add exact zeros, the batch shape picks another matmul blocking), measured
# 4e-6; 1e-4 leaves 25x margin and is still far below any gap between fills
BATCH_TOLERANCE = 1e-4


def direct_value(model, prompt: str, position: int = -1) -> float:
    """The logit difference from one plain forward of one prompt (no padding, no batch)."""
    with torch.no_grad():
        logits = model.hf_model(input_ids=model.encode(prompt)).logits[0, position].float()
    are, is_ = model.tokenizer.convert_tokens_to_ids(["are", "is"])
    return float(logits[are] - logits[is_])


def test_the_planted_effect_flips_sign_with_number_and_arises_in_layer_2(bundled) -> None:
    """Measured: every plural fill > +2.6, every singular < -5.5; the extremes are 'cats' and
    'cup' (12.9 apart), L2's four heads carry 5.1 of it directly and L2's MLP 7.8, L0/L1 heads
    below 0.01."""
    result = lw.counterfactuals(bundled, TEMPLATE, {"noun": NOUNS}, target=AGREEMENT)
    assert isinstance(result, CounterfactualResult) and result.score == "logit difference"
    for noun in NOUNS:
        assert (result.value(noun) > 0) == (noun in PLURAL), noun
    ranked = [fill for fill, _ in result.ranked()]
    assert set(ranked[: len(PLURAL)]) == PLURAL  # every plural above every singular
    assert result.range == pytest.approx(result.max - result.min)
    assert result.std > 0 and result.min < 0 < result.max
    (pair,) = result.pairs  # "extremes": one pair by default
    assert pair.clean in PLURAL and pair.corrupted not in PLURAL
    assert (pair.clean_value, pair.corrupted_value) == (result.max, result.min)
    # DLA: the largest head differences are all L2's, and the per-component differences add
    # up to the gap (exact, up to float rounding and zero biases)
    assert {layer for layer, _, _ in pair.top_heads(4)} == {2}
    by_layer = np.abs(pair.dla_difference).sum(1)
    assert by_layer[2] >= 100 * max(by_layer[0], by_layer[1])
    gap = pair.clean_value - pair.corrupted_value
    assert float(pair.component_difference.sum()) == pytest.approx(gap, abs=1e-3)
    # AtP: an estimate, labelled; its top head is an L2 head, and exact patching agrees on
    # the direction there (the estimate is too small on this saturated circuit, as documented)
    assert isinstance(pair.atp, AttributionPatchingResult) and pair.atp_skipped is None
    assert pair.atp.metadata["estimate"] is True
    check = pair.atp.verify(k=3)
    heads = [(a, b) for kind, a, b in check.cells if kind == "head"]
    assert heads[0][0] == 2
    assert all(
        e > 0 for (kind, *_), e in zip(check.cells, check.exact, strict=True) if kind == "head"
    )


def test_batched_values_equal_one_prompt_at_a_time(bundled) -> None:
    fills = ["keys", "key", "old keys", "big old key", "dark red old doors", "cup"]
    results = [
        lw.counterfactuals(
            bundled,
            TEMPLATE,
            fills,
            target=AGREEMENT,
            batch_size=size,
            attribute=None,
            progress=False,
        )
        for size in (1, 4, 64)
    ]
    direct = np.array([direct_value(bundled, TEMPLATE.format(noun=f)) for f in fills])
    assert len(set(results[0].n_tokens.tolist())) == 4  # left padding is exercised
    for result in results:
        np.testing.assert_allclose(result.values, direct, rtol=0, atol=BATCH_TOLERANCE)
    # a position counted from the start, in each prompt's own tokens: after "the"
    early = lw.counterfactuals(bundled, TEMPLATE, fills, target=AGREEMENT, position=1,
                               attribute=None, progress=False)  # fmt: skip
    expected = [direct_value(bundled, TEMPLATE.format(noun=f), 1) for f in fills]
    np.testing.assert_allclose(early.values, expected, rtol=0, atol=BATCH_TOLERANCE)
    assert np.ptp(early.values) < BATCH_TOLERANCE  # nothing differs before the slot


def test_a_token_target_is_a_log_probability_and_pairs_of_unequal_length_skip_patching(
    bundled,
) -> None:
    result = lw.counterfactuals(
        bundled, TEMPLATE, ["keys", "old key"], target=" are", reference="old key",
        attribute=["keys"], progress=False,
    )  # fmt: skip
    assert result.score == "log-probability" and result.target.startswith("log p('are')")
    assert np.all((result.probabilities > 0) & (result.probabilities < 1))
    assert result.differences[1] == 0 and result.differences[0] > 0
    (pair,) = result.pairs
    assert (pair.clean, pair.corrupted) == ("keys", "old key")
    assert pair.atp is None and "equal token count" in (pair.atp_skipped or "")
    assert pair.dla_difference.shape == (3, 4)  # DLA works at any length
    frame = result.to_pandas()
    assert list(frame.index) == ["keys", "old key"] and "difference" in frame.columns


def test_the_views_show_values_and_maps_with_every_string_escaped(bundled, tmp_path) -> None:
    result = lw.counterfactuals(
        bundled, TEMPLATE, ["keys", "key"], target=AGREEMENT, progress=False
    )
    hostile = dataclasses.replace(
        result, fills=("<script>x()</script>", "key"), template="<b>{noun}</b>"
    )
    page = hostile.to_html(tmp_path / "cf.html").read_text(encoding="utf-8")
    assert "<script>" not in page and "&lt;script&gt;x()" in page and "<b>{" not in page
    assert "Estimate by attribution patching" in page and "Direct logit attribution" in page
    data = result._repr_mimebundle_()
    assert "Counterfactuals" in data["text/html"] and "CounterfactualResult" in data["text/plain"]
    widget = lw.PatchingWidget(result.pairs[0].atp)  # the pairs reuse the patching view
    assert widget.caption.startswith("estimate by attribution patching")
    assert lw.PatchingWidget(result.pairs[0].dla_clean).heads["shape"] == [3, 4]


def test_the_progress_bar_counts_every_prompt_and_progress_false_shows_none(bundled, bars) -> None:
    fills = [f"{adjective} {noun}" for adjective in ADJECTIVES for noun in NOUNS]  # 1280
    result = lw.counterfactuals(bundled, TEMPLATE, fills, target=AGREEMENT, batch_size=256)
    (bar,) = bars
    assert bar.total == len(fills) == bar.n and bar.closed and bar.desc == "counterfactuals"
    assert len(bar.updates) == 5  # one update per batch
    assert len(result.pairs) == 1  # a large set still attributes one pair by default
    bars.clear()
    lw.counterfactuals(bundled, TEMPLATE, ["keys", "key"], target=AGREEMENT, progress=False,
                       attribute=None)  # fmt: skip
    assert bars == []


def test_errors_say_what_was_wrong(bundled) -> None:
    def run(template=TEMPLATE, fills=("keys", "key"), **kwargs):
        kwargs.setdefault("target", AGREEMENT)
        return lw.counterfactuals(bundled, template, fills, progress=False, **kwargs)

    with pytest.raises(ValueError, match="has no slot"):
        run("the keys near the cabinet")
    with pytest.raises(ValueError, match=r"no values for \['noun'\]"):
        run(fills={"occupation": ["keys"]})
    with pytest.raises(ValueError, match="is empty"):
        run(fills={"noun": []})
    with pytest.raises(ValueError, match="listed twice"):
        run(fills=["keys", "keys"])
    with pytest.raises(ValueError, match="equal lengths"):
        run("the {adj} {noun}", {"adj": ["old"], "noun": ["keys", "key"]})
    with pytest.raises(ValueError, match=r"fill 'key key.*' makes a prompt of \d+ tokens"):
        run(fills=["keys", " ".join(["key"] * 200)])
    with pytest.raises(ValueError, match="not in the vocabulary"):
        run(target=(" are", " zebra"))
    with pytest.raises(ValueError, match="pass target="):
        run(target=None)
    with pytest.raises(ValueError, match="outside the prompt of fill"):
        run(position=9)
    with pytest.raises(ValueError, match="pass reference="):
        run(attribute=["keys"])
    with pytest.raises(ValueError, match="not one of the fills"):
        run(attribute=[("keys", "cats")])
    with pytest.raises(TypeError, match="did you mean"):
        run(attribute="keys")


def test_zipped_slots_fill_together(bundled) -> None:
    result = lw.counterfactuals(
        bundled, "the {adjective} {noun} near the cabinet",
        {"adjective": ["old", "big"], "noun": ["keys", "key"]}, target=AGREEMENT,
        attribute=None, progress=False,
    )  # fmt: skip
    assert result.fills == ("old | keys", "big | key")
    assert result.prompts == ("the old keys near the cabinet", "the big key near the cabinet")
    assert result.values[0] > 0 > result.values[1]


@pytest.mark.slow
@pytest.mark.slow_tier
def test_ten_thousand_fills_run_in_batches_with_one_bar_and_one_attributed_pair(
    bundled, bars
) -> None:
    """test_the_progress_bar_counts_every_prompt_and_progress_false_shows_none at 10,240 fills
    (~3 s on a quiet machine, 10-20 s on a busy one): every prompt counted, DLA and patching
    for the extremes only, and the values equal those of another batch size."""
    fills = [f"{a} {b} {noun}" for a in ADJECTIVES[:8] for b in ADJECTIVES for noun in NOUNS]
    result = lw.counterfactuals(bundled, TEMPLATE, fills, target=AGREEMENT, batch_size=512)
    (bar,) = bars
    assert bar.total == bar.n == len(fills) == 10_240 and len(bar.updates) == 20
    assert len(result.pairs) == 1 and result.pairs[0].atp is not None
    other = lw.counterfactuals(
        bundled, TEMPLATE, fills[::97], target=AGREEMENT, batch_size=7, attribute=None,
        progress=False,
    )  # fmt: skip
    np.testing.assert_allclose(other.values, result.values[::97], rtol=0, atol=BATCH_TOLERANCE)


@pytest.mark.slow  # the two worker processes (dask_client) start in ~20 s on 2 CPU cores
def test_a_dask_cluster_gives_the_same_numbers_as_in_process(bundled, bars, dask_client) -> None:
    fills = [f"{adjective} {noun}" for adjective in ADJECTIVES[:4] for noun in NOUNS]  # 320
    local = lw.counterfactuals(
        bundled, TEMPLATE, fills, target=AGREEMENT, batch_size=32, progress=False
    )
    assert bars == []
    scattered = lw.counterfactuals(
        bundled, TEMPLATE, fills, target=AGREEMENT, batch_size=32, client=dask_client,
    )  # fmt: skip
    (bar,) = bars  # counts prompts as the workers' chunks come back
    assert bar.total == bar.n == len(fills) and len(bar.updates) == 4 and bar.closed
    loaded_by_workers = lw.counterfactuals(
        "tiny-llama", TEMPLATE, fills, target=AGREEMENT, batch_size=32, client=dask_client,
        progress=False, load_kwargs={"device": "cpu"}, chunk_size=100,
    )  # fmt: skip
    assert scattered.metadata["chunks"] == 4 and loaded_by_workers.metadata["chunks"] == 4
    for result in (scattered, loaded_by_workers):
        assert result.fills == local.fills
        # same weights, same prompts (all of one token length, so no padding): bitwise equal,
        # though chunks regroup the batches (measured also with chunk_size=32)
        np.testing.assert_array_equal(result.values, local.values)
        assert [(p.clean, p.corrupted) for p in result.pairs] == [
            (p.clean, p.corrupted) for p in local.pairs
        ]


def test_a_transformers_model_with_its_tokenizer_and_a_gqa_random_model() -> None:
    from tests.conftest import random_llama, word_tokenizer

    model, tokenizer = random_llama(layers=2, heads=4, kv_heads=2, seed=1), word_tokenizer()
    fills = ["w3", "w4", "w5 w6", "w7 w8 w9"]
    result = lw.counterfactuals(
        model, "w1 {x} w2", fills, target=(" w10", " w11"), tokenizer=tokenizer,
        attribute=[("w3", "w4"), ("w3", "w5 w6")], batch_size=3, progress=False,
    )  # fmt: skip
    ids = [tokenizer(f"w1 {fill} w2", return_tensors="pt").input_ids for fill in fills]
    w10, w11 = tokenizer.convert_tokens_to_ids(["w10", "w11"])
    with torch.no_grad():
        direct = [float(d[w10] - d[w11]) for d in (model(input_ids=i).logits[0, -1] for i in ids)]
    np.testing.assert_allclose(result.values, direct, rtol=0, atol=BATCH_TOLERANCE)
    same_length, other_length = result.pairs
    assert same_length.atp is not None and other_length.atp is None
    gap = same_length.clean_value - same_length.corrupted_value
    assert float(same_length.component_difference.sum()) == pytest.approx(gap, abs=1e-4)
