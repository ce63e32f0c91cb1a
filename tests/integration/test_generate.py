"""``generate()`` on the bundled model: the tokens are transformers' own, the reported
probabilities are those they were chosen from, the one-forward attention equals the per-step
patterns, the saliency matrix equals separate ``attribute()`` calls, and
generation fields survive save/load."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import llmasos_widgets as lw
from llmasos_widgets.attribution import (
    ConvergenceWarning,
    NextToken,
    attribute,
    available_methods,
)
from llmasos_widgets.attribution._saliency_matrix import attribute_generation
from llmasos_widgets.explanation import Explanation, ExplanationFileError
from llmasos_widgets.tracing import trace
from tests._induction_peaks import induction_peaks

PROMPT = "coins box cabinet doors foot child dog pens coins"
NEW = 6
# Known answer (docs/generation.md; the bench measures a larger held-out set)
INDUCTION_PEAK_RATE = 0.90
COPY = "coins box cabinet doors coins box cabinet doors"


@pytest.fixture(scope="module")
def generated(bundled) -> Explanation:
    return lw.generate(bundled, PROMPT, max_new_tokens=NEW)


def test_greedy_tokens_are_transformers_own_and_probabilities_are_reported(
    bundled, generated
) -> None:
    ids = bundled.encode(PROMPT)
    with torch.no_grad():
        expected = bundled.hf_model.generate(
            ids, max_new_tokens=NEW, do_sample=False, pad_token_id=0
        )[0]
    assert generated.token_ids.tolist() == expected.tolist()
    generation = generated.generation
    assert generation is not None
    assert generated.prompt_length == generation.prompt_length == ids.shape[1]
    assert generation.n_generated == NEW
    # greedy: the chosen token is the top alternative, alternatives are sorted
    assert (generation.alternative_ids[:, 0] == generated.token_ids[ids.shape[1] :]).all()
    assert (np.diff(generation.alternative_probs, axis=1) <= 0).all()
    # greedy with no logits processor: the step distribution is the model's own, so the
    # scores' probabilities equal the one forward's P(token | prefix) up to float rounding
    np.testing.assert_allclose(
        generation.step_probabilities,
        generation.token_probabilities[ids.shape[1] :],
        atol=1e-5,
    )
    assert generation.token_probabilities[0] == -1.0
    assert (
        (generation.token_probabilities[1:] > 0) & (generation.token_probabilities[1:] <= 1)
    ).all()
    # copying: the bundled model is sure of each copied word
    assert generation.step_probabilities.min() > 0.9
    text = str(generated)
    assert "completion (6 tokens after 10, greedy): 'box cabinet doors foot child dog'" in text


def test_one_forward_attention_equals_each_decode_steps_patterns(bundled, generated) -> None:
    """Causality: row q of the one-forward pattern is what step q saw during generate()."""
    ids = bundled.encode(PROMPT)
    prompt_length = ids.shape[1]
    with torch.no_grad(), trace(bundled.hf_model) as traced:
        bundled.hf_model.generate(ids, max_new_tokens=NEW, do_sample=False, pad_token_id=0)
    assert len(traced.forwards) == NEW  # the prompt, then one step per token but the last
    for step in range(NEW):
        first = 0 if step == 0 else prompt_length + step - 1
        queries = range(first, prompt_length + step)
        for layer in range(generated.n_layers):
            keys = traced.key_positions(layer, forward=step)
            assert keys == range(0, queries.stop)
            seen = traced.attention(layer, forward=step)  # [head, this step's queries, key]
            rows = generated.layer_attention(layer)[:, queries.start : queries.stop, : keys.stop]
            torch.testing.assert_close(seen, rows.to(seen.dtype), atol=1e-5, rtol=0)


def test_sampling_is_seeded_and_reports_the_distribution_it_drew_from(bundled) -> None:
    prompt = "the cat near the"
    options = dict(max_new_tokens=4, do_sample=True, temperature=0.7, saliency_method=None)
    state = torch.random.get_rng_state()
    first = lw.generate(bundled, prompt, seed=3, **options)
    again = lw.generate(bundled, prompt, seed=3, **options)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's RNG is untouched
    assert first.token_ids.tolist() == again.token_ids.tolist()
    generation = first.generation
    assert generation is not None and generation.settings["do_sample"] is True
    assert generation.settings["temperature"] == 0.7 and generation.settings["seed"] == 3
    # the reported distribution is the processed one: temperature 0.7, then transformers'
    # default top-k 50 (the vocabulary has 125 tokens)
    ids = torch.from_numpy(first.token_ids)[None]
    with torch.no_grad():
        logits = bundled.hf_model(input_ids=ids).logits[0].float()
    for step in range(generation.n_generated):
        position = generation.prompt_length + step
        scaled = logits[position - 1] / 0.7
        kth = scaled.topk(50).values[-1]
        probs = scaled.masked_fill(scaled < kth, -float("inf")).softmax(-1)
        token = int(first.token_ids[position])
        assert generation.step_probabilities[step] == pytest.approx(float(probs[token]), abs=1e-5)
        np.testing.assert_allclose(
            generation.alternative_probs[step],
            probs.topk(generation.alternative_ids.shape[1]).values.numpy(),
            atol=1e-5,
        )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (dict(max_new_tokens=0), "max_new_tokens must be at least 1"),
        (dict(max_new_tokens=200), "takes at most 128 tokens"),
        (dict(max_new_tokens=3, saliency_method="gradients"), "did you mean 'gradient'"),
        (dict(max_new_tokens=3, num_beams=2), "num_beams=2 asks for several sequences"),
        (dict(max_new_tokens=3, output_scores=False), "output_scores is set by"),
    ],
)
def test_bad_input_fails_before_any_work(bundled, monkeypatch, arguments, message) -> None:
    def no_work(*_args, **_kwargs):
        raise AssertionError("generate ran before the input was checked")

    monkeypatch.setattr(bundled.hf_model, "generate", no_work)
    with pytest.raises(ValueError, match=message):
        lw.generate(bundled, PROMPT, **arguments)


@pytest.mark.parametrize("method", available_methods())
def test_batched_matrix_equals_separate_attribute_calls(bundled, method) -> None:
    ids = bundled.encode(COPY)[0]
    prompt_length = 5
    options: dict = (
        dict(n_steps=8, integration="gausslegendre") if method == "integrated_gradients" else {}
    )
    options["layers"] = "all"  # every site (IG and occlusion default to the embeddings)
    # 8 steps do not converge (ConvergenceWarning): equality, not convergence, is tested here
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        matrix = attribute_generation(bundled, ids, prompt_length, method=method, **options)
        positions = range(prompt_length - 1, len(ids) - 1)
        separate = [
            attribute(
                bundled,
                ids,
                target=NextToken(int(ids[position + 1])),
                method=method,
                position=position,
                **options,
            )
            for position in positions
        ]
    assert matrix.scores.shape == (len(ids) - prompt_length, 4, len(ids))  # 3 layers: 4 sites
    for row, one in enumerate(separate):
        np.testing.assert_allclose(matrix.scores[row], one.scores, rtol=1e-4, atol=2e-6)
        assert matrix.f_x[row] == pytest.approx(one.f_x, abs=1e-5)
        shown = matrix.row(row)
        assert shown.target == one.target
        assert shown.target_position == one.target_position
        assert shown.baseline == one.baseline


def test_batched_matrix_does_not_depend_on_the_batch_size(bundled) -> None:
    ids = bundled.encode(COPY)[0]
    whole = attribute_generation(bundled, ids, 3, method="gradient")
    pieces = attribute_generation(bundled, ids, 3, method="gradient", batch_size=2)
    np.testing.assert_allclose(whole.scores, pieces.scores, rtol=1e-5, atol=1e-7)


def test_recomputed_layers_give_the_same_matrix(bundled, monkeypatch) -> None:
    """Above ~1 GiB of activations per sequence the layers are recomputed in the backward
    (forced here): the same numbers."""
    from llmasos_widgets.attribution import _attribute, _residual

    ids = bundled.encode(COPY)[0]
    kept = attribute_generation(bundled, ids, 3, method="input_x_gradient")
    entered = []
    original = _residual.recomputed_in_backward

    def counted(layers):
        entered.append(len(layers))
        return original(layers)

    monkeypatch.setattr(_attribute, "_RECOMPUTE_ABOVE", 0)
    monkeypatch.setattr(
        "llmasos_widgets.attribution._saliency_matrix.recomputed_in_backward", counted
    )
    recomputed = attribute_generation(bundled, ids, 3, method="input_x_gradient")
    assert entered == [3]
    np.testing.assert_allclose(recomputed.scores, kept.scores, rtol=1e-6, atol=1e-8)


def test_saliency_peaks_on_the_earlier_copy_when_generating_a_copy(bundled) -> None:
    peaks = induction_peaks(bundled, n=6, length=8, seed=5, site=0)
    assert peaks.copied == 1.0
    assert peaks.steps == 6 * 7
    assert peaks.rate >= INDUCTION_PEAK_RATE, peaks


def test_generation_round_trips_through_save_and_load(generated, tmp_path) -> None:
    path = generated.save(tmp_path / "generated.safetensors")
    loaded = Explanation.load(path)
    before, after = generated.generation, loaded.generation
    assert before is not None and after is not None
    assert after.prompt_length == before.prompt_length
    for name in (
        "token_probabilities",
        "step_probabilities",
        "alternative_ids",
        "alternative_probs",
    ):
        np.testing.assert_array_equal(getattr(after, name), getattr(before, name))
        assert getattr(after, name).dtype == getattr(before, name).dtype
    assert after.alternative_tokens == before.alternative_tokens
    assert after.settings == before.settings
    assert before.saliency is not None and after.saliency is not None
    for name, array in before.saliency.to_arrays().items():
        np.testing.assert_array_equal(after.saliency.to_arrays()[name], array)
    assert after.saliency.metadata() == before.saliency.metadata()
    assert loaded.saliency is not None and loaded.saliency.target == generated.saliency.target
    assert str(loaded) == str(generated)


def _rewrite(path, out, *, drop_tensor: str | None = None, header_edit=None) -> None:
    with safe_open(str(path), framework="pt") as file:
        meta = dict(file.metadata())
        tensors = {name: file.get_tensor(name) for name in file.keys() if name != drop_tensor}  # noqa: SIM118
    header = json.loads(meta["header"])
    if header_edit is not None:
        header_edit(header)
    meta["header"] = json.dumps(header)
    save_file(tensors, str(out), metadata=meta)


def test_files_without_generation_still_load_and_broken_ones_say_so(generated, tmp_path) -> None:
    path = generated.save(tmp_path / "generated.safetensors")
    old = tmp_path / "old.safetensors"
    _rewrite(path, old, header_edit=lambda header: header.pop("generation"))
    assert Explanation.load(old).generation is None
    broken = tmp_path / "broken.safetensors"
    _rewrite(path, broken, drop_tensor="generation.step_probabilities")
    with pytest.raises(ExplanationFileError, match="not a readable explanation"):
        Explanation.load(broken)
