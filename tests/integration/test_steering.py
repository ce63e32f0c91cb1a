"""steer / ablate_features on the bundled model: the subject-number latent's direction flips
agreement (figures in docs/features_training.md); hooks and flags are given back."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llmasos_widgets import ablate_features, steer
from llmasos_widgets._hooks import count_hooks
from llmasos_widgets.features import SAEConfig, SparseAutoencoder
from llmasos_widgets.models import as_explainable
from tests._sae_known import (
    held_out_prompts,
    number_latent,
    one_thread,
    train_number_sae,
    verb_preference,
)

# Measured flip rates on 400 held-out prompts (both subject numbers, each pushed toward the
# other): alpha 8: 0.14, 12: 0.68, 14: 0.94, 16: 1.00, 24: 1.00.
FLIP_ALPHA = 24.0
SMALL_ALPHA = 4.0  # flips 0.005: the effect is the direction's, not any perturbation's


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def number(bundled):
    sae = train_number_sae(bundled).sae
    latent, sign = number_latent(bundled, sae)
    return sae, latent, sign


def _flip_rate(model, sae, latent, sign, alpha):
    """Fraction of held-out prompts whose verb preference flips when the latent's direction is
    added with the sign that points to the other number."""
    prompts = held_out_prompts()
    on = [e for e in prompts if (e.number == "plural") == (sign > 0)]  # the latent fires
    off = [e for e in prompts if (e.number == "plural") != (sign > 0)]
    with steer(model, sae, latent, -alpha):
        flipped_on = (verb_preference(model, on) < 0).sum()
    with steer(model, sae, latent, alpha):
        flipped_off = (verb_preference(model, off) < 0).sum()
    return (flipped_on + flipped_off) / len(prompts)


@pytest.mark.slow
def test_steering_along_the_number_latent_flips_agreement(bundled, number):
    sae, latent, sign = number
    assert _flip_rate(bundled, sae, latent, sign, FLIP_ALPHA) >= 0.9
    assert _flip_rate(bundled, sae, latent, sign, SMALL_ALPHA) <= 0.1


@pytest.mark.slow
def test_steering_reaches_generate_explain_and_bare_models(bundled, number):
    sae, latent, sign = number
    prompt = next(e for e in held_out_prompts() if (e.number == "plural") == (sign > 0))
    push = -FLIP_ALPHA  # the latent fires on this prompt: remove it, and more
    ids = bundled.encode(prompt.text)
    with steer(bundled, sae, latent, push):
        assert verb_preference(bundled, [prompt])[0] < 0  # flipped
        logits = bundled.hf_model(input_ids=ids).logits[0, -1]
        explained = bundled.explain(prompt.text, saliency_method=None)
        generated = bundled.generate(prompt.text, max_new_tokens=2, saliency_method=None)
    steered_top = bundled.tokenizer.convert_ids_to_tokens(logits.topk(3).indices.tolist())
    assert list(explained.top_tokens[-1][:3]) == steered_top
    assert generated.tokens[ids.shape[1]] == steered_top[0]
    plain = bundled.explain(prompt.text, saliency_method=None)
    assert list(plain.top_tokens[-1][:3]) != steered_top
    hf_model = bundled.hf_model
    wrapped = as_explainable(hf_model, bundled.tokenizer)
    for target in (hf_model, wrapped):
        with steer(target, sae, latent, push):
            assert verb_preference(bundled, [prompt])[0] < 0
    assert verb_preference(bundled, [prompt])[0] > 0
    assert count_hooks(hf_model) == 0


def test_hooks_and_flags_are_given_back_after_an_error(bundled):
    sae = SparseAutoencoder(SAEConfig(d_in=64, d_sae=16, site=2, k=2))
    hf_model = bundled.hf_model
    before = count_hooks(hf_model)
    hf_model.train()
    try:
        with pytest.raises(RuntimeError, match="boom"), steer(bundled, sae, 3, 1.0):
            assert count_hooks(hf_model) == before + 1
            raise RuntimeError("boom")
        with ablate_features(bundled, sae, [1, 2]):
            bundled.hf_model(input_ids=bundled.encode("the key is old"))
        assert count_hooks(hf_model) == before
        assert all(module.training for module in hf_model.modules())
    finally:
        hf_model.eval()


def test_an_sae_of_another_width_or_site_is_refused(bundled, tiny_random):
    sae = SparseAutoencoder(SAEConfig(d_in=64, d_sae=16, site=2, k=2))
    with pytest.raises(ValueError, match="d_in=64 but .* hidden_size=32"):
        steer(tiny_random, sae, 0, 1.0)
    deep = SparseAutoencoder(SAEConfig(d_in=64, d_sae=16, site=7, k=2))
    with pytest.raises(ValueError, match="reads site 7"):
        ablate_features(bundled, deep, [0])
    with pytest.raises(ValueError, match="does not exist"):
        steer(bundled, sae, 16, 1.0)


@pytest.mark.slow
def test_ablating_the_number_latent_keeps_everything_else(bundled, number):
    """Removing the latent only where it fires: prompts of the other number are untouched
    (the error term and every other latent stay), and its own prompts lose agreement margin."""
    sae, latent, sign = number
    prompts = held_out_prompts()[:40]
    on = [e for e in prompts if (e.number == "plural") == (sign > 0)]
    off = [e for e in prompts if (e.number == "plural") != (sign > 0)]
    targets = [(e.correct_verb, e.wrong_verb) for e in on]
    result = ablate_features(bundled, sae, [latent], [e.text for e in on], target=targets)
    assert count_hooks(bundled.hf_model) == 0
    assert result.change < 0 and result.latents == (latent,)
    untouched = ablate_features(
        bundled,
        sae,
        latent,
        [e.text for e in off],
        target=[(e.correct_verb, e.wrong_verb) for e in off],
    )
    np.testing.assert_allclose(untouched.values_after, untouched.values_before, atol=1e-5)
    with torch.no_grad(), ablate_features(bundled, sae, [latent]):
        inside = verb_preference(bundled, on)
    np.testing.assert_allclose(inside, result.values_after, atol=1e-4)


def test_saliency_runs_through_the_blocks_and_leaves_no_grad(bundled):
    """The rewrites keep the autograd graph (saliency under an ablation is exact) and nothing
    accumulates in the model's or the SAE's ``.grad``."""
    sae = SparseAutoencoder(SAEConfig(d_in=64, d_sae=16, site=2, k=2))
    plain = bundled.explain("the keys near the old cabinet").saliency
    with steer(bundled, sae, 0, 3.0):
        steered = bundled.explain("the keys near the old cabinet").saliency
    assert plain is not None and steered is not None
    assert not np.allclose(np.asarray(plain.scores), np.asarray(steered.scores))
    with ablate_features(bundled, sae, [0, 1]):
        assert bundled.explain("the keys near the old cabinet").saliency is not None
    assert all(p.grad is None for p in (*bundled.hf_model.parameters(), *sae.parameters()))
