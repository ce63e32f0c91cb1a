"""Head ablation and activation patching: batched patching equals the one-run-per-cell loop,
hooks are given back, flags restored, logits outside an intervention bitwise unchanged, and
the errors a user can cause say what to do."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from llmasos_widgets._hooks import count_hooks
from llmasos_widgets.interventions import (
    CopyingAccuracy,
    _patching,
    ablate_heads,
    ablation_map,
    activation_patching,
)
from tests._naive_patching import naive_patching

CLEAN = "w1 w2 w3 w4 w5 w6"
CORRUPTED = "w1 w2 w9 w4 w5 w6"
TARGET = ("w7", "w8")


def _logits(explainable, text: str) -> torch.Tensor:
    with torch.no_grad():
        return explainable.hf_model(input_ids=explainable.encode(text)).logits


def test_batched_patching_equals_the_naive_loop_with_fewer_forward_passes(tiny_random) -> None:
    result = activation_patching(tiny_random, CLEAN, CORRUPTED, target=TARGET, batch_size=16)
    residual, heads, clean, corrupted, naive_passes = naive_patching(
        tiny_random, CLEAN, CORRUPTED, target=TARGET
    )
    n_sites, n_tokens = 3, 7
    assert result.residual_values.shape == (n_sites, n_tokens)
    assert result.head_values.shape == (2, 4)
    np.testing.assert_allclose(result.residual_values, residual, atol=2e-5)
    np.testing.assert_allclose(result.head_values, heads, atol=2e-5)
    assert result.clean_value == pytest.approx(clean, abs=2e-5)
    assert result.corrupted_value == pytest.approx(corrupted, abs=2e-5)
    assert naive_passes == 2 + n_sites * n_tokens + 2 * 4
    # cells equal in both runs are not run: positions 0-2 (before the changed token 3) at
    # every site and the unchanged embeddings, so emb@3 + 2 sites x positions 3-6 + 8 heads
    assert result.metadata["patched_runs"] == 1 + 2 * 4 + 8
    assert result.forward_passes == 1 + 2  # 17 rows in batches of 16
    # normalised: patching the changed token's embedding restores the clean run exactly
    assert result.residual[0, 3] == pytest.approx(1.0, abs=1e-5)
    assert result.residual[0, 0] == 0.0
    assert result.differing_positions == (3,)
    assert result.site_names == ("emb", "after L0", "after L1")


def test_patching_does_not_depend_on_batch_size(tiny_random) -> None:
    one = activation_patching(tiny_random, CLEAN, CORRUPTED, target=TARGET, batch_size=1)
    many = activation_patching(tiny_random, CLEAN, CORRUPTED, target=TARGET, batch_size=64)
    assert (one.forward_passes, many.forward_passes) == (1 + 17, 1 + 1)
    np.testing.assert_allclose(one.residual, many.residual, atol=2e-5)
    np.testing.assert_allclose(one.heads, many.heads, atol=2e-5)


def test_an_earlier_target_position_skips_the_later_tokens(tiny_random) -> None:
    result = activation_patching(tiny_random, CLEAN, CORRUPTED, target=TARGET, position=4)
    assert result.target_position == 4
    assert "after token 4" in result.target
    assert np.all(result.residual[:, 5:] == 0.0)


def test_zero_ablation_equals_zeroing_the_heads_output_projection_columns(tiny_random) -> None:
    texts = ["w1 w2 w3 w4", "w5 w6 w7 w8 w9", "w3 w3 w3 w3"]
    result = ablate_heads(tiny_random, texts, [(1, 2), (0, 1)], target=("w7", "w8"))
    edited = copy.deepcopy(tiny_random.hf_model)
    with torch.no_grad():
        for layer, head in [(1, 2), (0, 1)]:
            weight = edited.model.layers[layer].self_attn.o_proj.weight
            weight[:, head * 8 : (head + 1) * 8] = 0  # head_dim 32 / 4 = 8
    for index, text in enumerate(texts):
        ids = tiny_random.encode(text)
        with torch.no_grad():
            logits = edited(input_ids=ids).logits[0, -1]
            plain = tiny_random.hf_model(input_ids=ids).logits[0, -1]
        w7, w8 = (tiny_random.tokenizer.convert_tokens_to_ids(t) for t in TARGET)
        assert result.values_after[index] == pytest.approx(float(logits[w7] - logits[w8]), abs=1e-4)
        assert result.values_before[index] == pytest.approx(float(plain[w7] - plain[w8]), abs=1e-4)
    assert result.heads == ((0, 1), (1, 2))
    assert result.change == pytest.approx(result.after - result.before)


def test_zero_and_mean_ablation_over_two_references_are_three_different_runs(tiny_random) -> None:
    # the reference defaults to the texts themselves; another reference gives another mean
    texts = ["w1 w2 w3 w4 w5"]
    zero = ablate_heads(tiny_random, texts, [(0, 0)], target="w7")
    mean = ablate_heads(tiny_random, texts, [(0, 0)], mode="mean", target="w7")
    other = ablate_heads(
        tiny_random, texts, [(0, 0)], mode="mean", reference=["w9 w9"], target="w7"
    )
    assert zero.values_before[0] == mean.values_before[0] == other.values_before[0]
    assert len({zero.after, mean.after, other.after}) == 3
    assert mean.metadata["n_reference"] == 1
    assert "log p('w7')" in zero.target


def test_hooks_flags_and_logits_are_left_as_they_were(tiny_random) -> None:
    hf_model = tiny_random.hf_model
    hf_model.train()
    hf_model.model.layers[0].eval()  # mixed flags must come back as they were
    flags = [module.training for module in hf_model.modules()]
    hf_model.eval()
    before = _logits(tiny_random, CLEAN)
    hf_model.train()
    hf_model.model.layers[0].eval()
    activation_patching(tiny_random, CLEAN, CORRUPTED, target=TARGET)
    ablate_heads(tiny_random, [CLEAN], [(0, 0)], mode="mean", target=TARGET)
    assert count_hooks(hf_model) == 0
    assert [module.training for module in hf_model.modules()] == flags
    hf_model.eval()
    assert torch.equal(_logits(tiny_random, CLEAN), before)


def test_hooks_are_given_back_after_an_exception(tiny_random, monkeypatch) -> None:
    calls = []

    def failing(hf_model, input_ids, *, keep):
        calls.append(input_ids.shape[0])
        if len(calls) == 2:  # inside the patch hooks
            raise RuntimeError("boom")
        return hf_model(input_ids=input_ids, use_cache=False, logits_to_keep=keep).logits

    monkeypatch.setattr(_patching, "forward_logits", failing)
    with pytest.raises(RuntimeError, match="boom"):
        activation_patching(tiny_random, CLEAN, CORRUPTED, target=TARGET)
    assert count_hooks(tiny_random.hf_model) == 0
    assert not tiny_random.hf_model.training


def test_prompts_of_different_lengths_are_refused_naming_both(tiny_random) -> None:
    with pytest.raises(ValueError, match=r"clean has 5 .* corrupted has 4"):
        activation_patching(tiny_random, "w1 w2 w3 w4", "w1 w2 w3", target=TARGET)


@pytest.mark.parametrize(
    ("heads", "kwargs", "error", "match"),
    [
        ([(2, 0)], {}, ValueError, r"head \(2, 0\) does not exist: .* layers 0..1 and heads 0..3"),
        ([(0, 4)], {}, ValueError, r"heads 0..3"),
        ([(0, 1), (0, 1)], {}, ValueError, "listed twice"),
        ((0, 1), {}, TypeError, r"did you mean \[\(0, 1\)\]"),
        ([], {}, ValueError, "heads is empty"),
        (
            [(0, 1)],
            {"mode": "random"},
            ValueError,
            "unknown mode 'random'; valid modes: zero, mean",
        ),
        ([(0, 1)], {"reference": ["w1"]}, ValueError, "only used with mode='mean'"),
        ([(0, 1)], {"mode": "mean", "reference": []}, ValueError, "reference is empty"),
        ([(0, 1)], {"target": ["w1", "w2"]}, ValueError, "2 entries for 1 texts"),
        ([(0, 1)], {"target": CopyingAccuracy()}, ValueError, "written\ntwice|written twice"),
    ],
)
def test_ablation_errors_say_what_to_do(tiny_random, heads, kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        ablate_heads(tiny_random, ["w1 w2 w3 w4"], heads, **kwargs)
    assert count_hooks(tiny_random.hf_model) == 0


def test_empty_inputs_and_targets_that_cannot_move_are_refused(tiny_random) -> None:
    with pytest.raises(ValueError, match="texts is empty"):
        ablate_heads(tiny_random, [], [(0, 1)])
    with pytest.raises(ValueError, match="text is empty"):
        activation_patching(tiny_random, "", "", target=TARGET)
    with pytest.raises(ValueError, match="on both prompts"):
        activation_patching(tiny_random, CLEAN, CLEAN, target=TARGET)
    with pytest.raises(ValueError, match="nothing to patch"):
        activation_patching(
            tiny_random, CLEAN, CORRUPTED, target=TARGET, residual=False, heads=False
        )


def test_the_ablation_map_is_each_head_ablated_alone(tiny_random) -> None:
    texts = ["w1 w2 w3 w4", "w5 w6 w7 w8 w9"]
    head_map = ablation_map(tiny_random, texts, mode="mean", target=TARGET)
    assert head_map.values.shape == (2, 4)
    for layer, head in [(0, 2), (1, 3)]:
        alone = ablate_heads(tiny_random, texts, [(layer, head)], mode="mean", target=TARGET)
        assert head_map.values[layer, head] == pytest.approx(alone.after, abs=1e-5)
        assert head_map.before == pytest.approx(alone.before, abs=1e-6)
    assert head_map.metadata["forward_passes"] == 9
    assert count_hooks(tiny_random.hf_model) == 0
