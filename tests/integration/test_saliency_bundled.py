"""``attribute`` on the bundled tiny LLaMA: Captum agreement, completeness, and the known
mechanism of subject-verb agreement (the subject noun, not the attractor, sets the verb)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llmasos_widgets.attribution import Contrast, ConvergenceWarning, attribute
from llmasos_widgets.language import agreement_examples

# Held-out agreement prompts; the figures in docs/saliency.md are measured on the slow set.
FAST_SET = 40
SLOW_SET = 400
SUBJECT_MAJORITY = 0.90
# The default method (the gradient norm) is the one tested for the agreement mechanism;
# integrated gradients do not reach the bar on this model (see docs/saliency.md).
MECHANISM_METHOD = "gradient"
# Integrated gradients with the <pad> baseline, default adaptive rule, 50 steps:
# |delta| / |f(x) - f(baseline)| at the embeddings (measured on 200 prompts: median 0.002,
# max 0.046; see the docs).
MEDIAN_RELATIVE_DELTA = 0.01
MAX_RELATIVE_DELTA = 0.05


def _contrast(example) -> Contrast:
    """logit(correct verb) - logit(wrong verb): positive = the model agrees correctly."""
    return Contrast(example.correct_verb, example.wrong_verb)


def _subject_wins(bundled, example, method: str | None) -> bool:
    options = {} if method is None else {"method": method}
    saliency = attribute(bundled, example.text, target=_contrast(example), layers=0, **options)
    scores = saliency.at(0)
    # token position = word index + 1 (<bos> first)
    return bool(scores[example.subject_index + 1] > scores[example.attractor_index + 1])


def _subject_share(bundled, n: int, seed: int, method: str | None = None) -> float:
    examples = agreement_examples(n, seed=seed, split="test")
    return float(np.mean([_subject_wins(bundled, example, method) for example in examples]))


def test_the_default_method_is_the_tested_one() -> None:
    import inspect

    assert inspect.signature(attribute).parameters["method"].default == MECHANISM_METHOD


def test_subject_gets_more_attribution_than_the_attractor(bundled) -> None:
    assert _subject_share(bundled, FAST_SET, seed=11) >= SUBJECT_MAJORITY


@pytest.mark.slow
def test_subject_majority_on_a_large_held_out_set(bundled) -> None:
    assert _subject_share(bundled, SLOW_SET, seed=2024) >= SUBJECT_MAJORITY


@pytest.mark.slow  # 12 prompts x 50 steps: ~6 s; the fast tier has test_ig_convergence's
def test_integrated_gradients_converge_on_agreement_prompts(bundled) -> None:
    relative = []
    for example in agreement_examples(12, seed=5, split="test"):
        saliency = attribute(
            bundled,
            example.text,
            target=_contrast(example),
            method="integrated_gradients",
            baseline="pad",
            layers=0,
            n_steps=50,
        )
        gap = saliency.f_x - saliency.f_baseline
        assert abs(gap) > 0.1, "the baseline should change the verb preference"
        row_sum = float(saliency.scores[0].sum(dtype=np.float64))
        assert row_sum - gap == pytest.approx(float(saliency.convergence_delta[0]), abs=1e-4)
        relative.append(abs(saliency.convergence_delta[0]) / abs(gap))
    assert np.median(relative) <= MEDIAN_RELATIVE_DELTA
    assert max(relative) <= MAX_RELATIVE_DELTA


def test_agreement_with_captum_on_the_bundled_model(bundled) -> None:
    from captum.attr import InputXGradient, IntegratedGradients, LayerIntegratedGradients

    example = agreement_examples(1, seed=7, split="test")[0]
    hf_model, tokenizer = bundled.hf_model, bundled.tokenizer
    good, bad = tokenizer.convert_tokens_to_ids([example.correct_verb, example.wrong_verb])

    def forward(embeds: torch.Tensor) -> torch.Tensor:
        logits = hf_model(inputs_embeds=embeds, use_cache=False).logits[:, -1].float()
        return logits[:, good] - logits[:, bad]

    ids = bundled.encode(example.text)
    embeds = hf_model.get_input_embeddings()(ids).detach().requires_grad_(True)
    baseline = torch.zeros_like(embeds).detach()
    baseline[:, 0] = embeds[:, 0].detach()  # <bos> kept

    # Captum's rule, baseline and step count; from zero embeddings the path does not
    # converge on this model (|delta| ≈ |f(x) − f(b)| at the embeddings), and we say so
    with pytest.warns(ConvergenceWarning, match="did not converge at emb"):
        ours = attribute(
            bundled,
            example.text,
            target=_contrast(example),
            method="integrated_gradients",
            integration="gausslegendre",
            baseline="zero",
            n_steps=50,
            layers="all",  # every site, as Captum is run below (IG defaults to emb)
        )
    expected = [IntegratedGradients(forward).attribute(embeds, baselines=baseline)]
    for layer in hf_model.model.layers:
        lig = LayerIntegratedGradients(forward, layer)
        expected.append(lig.attribute(embeds, baselines=baseline))
    expected_rows = torch.stack([a.sum(-1)[0] for a in expected]).detach().numpy()
    scale = np.abs(expected_rows).max()
    np.testing.assert_allclose(ours.scores, expected_rows, rtol=1e-3, atol=1e-5 * scale)

    ixg = attribute(bundled, example.text, target=_contrast(example), method="input_x_gradient")
    captum_ixg = InputXGradient(forward).attribute(embeds).sum(-1)[0].detach().numpy()
    np.testing.assert_allclose(ixg.scores[0], captum_ixg, rtol=1e-3, atol=1e-6)
