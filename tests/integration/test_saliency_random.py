"""``attribute`` on random-init LLaMA models: Captum agreement, completeness and contracts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llmasos_widgets._hooks import count_hooks
from llmasos_widgets.attribution import Contrast, NextToken, attribute

TEXT = "w1 w5 w7 w3 w9 w2 w11"
TARGET = "w4"
IG = "integrated_gradients"


def _target_fn(hf_model, token_id: int):
    """Captum's forward: log p(token) after the last position, from input embeddings."""

    def forward(embeds: torch.Tensor) -> torch.Tensor:
        logits = hf_model(inputs_embeds=embeds, use_cache=False).logits[:, -1].float()
        return torch.log_softmax(logits, dim=-1)[:, token_id]

    return forward


def _captum_inputs(model):
    ids = model.encode(TEXT)
    embeds = model.hf_model.get_input_embeddings()(ids).detach().requires_grad_(True)
    zero_keep_bos = torch.zeros_like(embeds).detach()
    zero_keep_bos[:, 0] = embeds[:, 0].detach()  # our named baselines keep <bos>
    token_id = model.tokenizer.convert_tokens_to_ids(TARGET)
    return ids, embeds, zero_keep_bos, _target_fn(model.hf_model, token_id)


def test_integrated_gradients_match_captum_at_every_site(tiny_random) -> None:
    from captum.attr import IntegratedGradients, LayerIntegratedGradients

    _, embeds, baseline, forward = _captum_inputs(tiny_random)
    ours = attribute(
        tiny_random, TEXT, method=IG, integration="gausslegendre", target=TARGET, n_steps=50,
        baseline="zero", layers="all",
    )  # fmt: skip
    theirs = [IntegratedGradients(forward).attribute(embeds, baselines=baseline, n_steps=50)]
    for layer in tiny_random.hf_model.model.layers:
        lig = LayerIntegratedGradients(forward, layer)
        theirs.append(lig.attribute(embeds, baselines=baseline, n_steps=50))
    expected = torch.stack([a.sum(-1)[0] for a in theirs]).detach().numpy()
    assert ours.scores.shape == (3, 8)
    np.testing.assert_allclose(ours.scores, expected, rtol=1e-4, atol=1e-6)
    assert np.abs(ours.scores).max() > 1e-3  # not trivially zero


def test_embedding_ig_with_pad_baseline_matches_captum_on_token_ids(tiny_random) -> None:
    from captum.attr import LayerIntegratedGradients

    hf_model, tokenizer = tiny_random.hf_model, tiny_random.tokenizer
    ids = tiny_random.encode(TEXT)
    baseline_ids = torch.full_like(ids, tokenizer.pad_token_id)
    baseline_ids[:, 0] = ids[:, 0]
    token_id = tokenizer.convert_tokens_to_ids(TARGET)

    def forward(input_ids: torch.Tensor) -> torch.Tensor:
        logits = hf_model(input_ids=input_ids, use_cache=False).logits[:, -1]
        return torch.log_softmax(logits, dim=-1)[:, token_id]

    lig = LayerIntegratedGradients(forward, hf_model.get_input_embeddings())
    expected = lig.attribute(ids, baselines=baseline_ids, n_steps=32).sum(-1)[0].detach()
    ours = attribute(
        tiny_random,
        TEXT,
        method=IG,
        integration="gausslegendre",
        target=TARGET,
        baseline="pad",
        n_steps=32,
        layers=0,
    )
    np.testing.assert_allclose(ours.scores[0], expected.numpy(), rtol=1e-4, atol=1e-6)


def test_gradient_methods_match_captum(tiny_random) -> None:
    from captum.attr import InputXGradient, LayerGradientXActivation
    from captum.attr import Saliency as CaptumSaliency

    _, embeds, _, forward = _captum_inputs(tiny_random)
    gradient = attribute(tiny_random, TEXT, target=TARGET, method="gradient")
    signed_grad = CaptumSaliency(forward).attribute(embeds, abs=False)
    np.testing.assert_allclose(gradient.scores[0], signed_grad.norm(dim=-1)[0], rtol=1e-5)

    ixg = attribute(tiny_random, TEXT, target=TARGET, method="input_x_gradient")
    np.testing.assert_allclose(
        ixg.scores[0], InputXGradient(forward).attribute(embeds).sum(-1)[0].detach(), atol=1e-7
    )
    for site, layer in enumerate(tiny_random.hf_model.model.layers, start=1):
        expected = LayerGradientXActivation(forward, layer).attribute(embeds).sum(-1)[0]
        np.testing.assert_allclose(ixg.scores[site], expected.detach(), rtol=1e-4, atol=1e-7)


def test_integrated_gradients_are_complete(tiny_random) -> None:
    result = attribute(
        tiny_random, TEXT, method=IG, target=TARGET, baseline="zero", n_steps=50, layers="all"
    )
    gap = result.f_x - result.f_baseline
    assert abs(gap) > 1e-2
    row_sums = result.scores.sum(axis=1, dtype=np.float64)
    np.testing.assert_allclose(row_sums - gap, result.convergence_delta, atol=1e-6)
    # default adaptive rule, 50 steps: |delta| < 2e-3 · |f(x) − f(baseline)| at every site
    assert np.abs(result.convergence_delta).max() < 2e-3 * abs(gap), result.convergence_delta
    # plain Gauss-Legendre, 50 steps, on this smooth path: < 1e-4 · |f(x) − f(baseline)|
    plain = attribute(
        tiny_random, TEXT, method=IG, target=TARGET, integration="gausslegendre",
        baseline="zero", n_steps=50, layers="all",
    )  # fmt: skip
    assert np.abs(plain.convergence_delta).max() < 1e-4 * abs(gap)


def test_results_do_not_depend_on_the_internal_batch_size(tiny_random) -> None:
    for method in ("integrated_gradients", "occlusion"):
        runs = [
            attribute(
                tiny_random, TEXT, method=method, n_steps=20, internal_batch_size=size, layers="all"
            )
            for size in (1, 3, 20)
        ]
        for run in runs[1:]:
            np.testing.assert_allclose(run.scores, runs[0].scores, atol=1e-5, rtol=0)


def test_known_answers_of_causality_and_the_last_site(tiny_random) -> None:
    occlusion = attribute(
        tiny_random, TEXT, target=TARGET, method="occlusion", position=4, layers="all"
    )
    ig = attribute(tiny_random, TEXT, method=IG, target=TARGET, position=4, layers="all")
    assert (occlusion.scores[:, 5:] == 0).all() and (ig.scores[:, 5:] == 0).all()
    # At the last site only the target position's residual reaches the logits, so occluding
    # it alone moves f from f(x) to f(baseline), which IG distributes to that token alone.
    last_occ, last_ig = occlusion.scores[-1], ig.scores[-1]
    assert last_occ[4] == pytest.approx(occlusion.f_x - occlusion.f_baseline, abs=1e-5)
    assert np.abs(last_occ[:4]).max() < 1e-5 and np.abs(last_ig[:4]).max() < 1e-5
    # <bos> is kept in named baselines, so it gets exactly nothing
    assert (ig.scores[:, 0] == 0).all() and (occlusion.scores[:, 0] == 0).all()


def test_targets_compute_the_scalar_they_name(tiny_random) -> None:
    hf_model, tokenizer = tiny_random.hf_model, tiny_random.tokenizer
    with torch.no_grad():
        logits = hf_model(tiny_random.encode(TEXT)).logits[0, 3]
    a, b = tokenizer.convert_tokens_to_ids(["w4", "w8"])
    contrast = attribute(
        tiny_random, TEXT, method=IG, target=Contrast("w4", "w8"), position=3, n_steps=4
    )
    assert contrast.f_x == pytest.approx(float(logits[a] - logits[b]), abs=1e-5)
    assert contrast.target_token_ids == (a, b)
    logit = attribute(
        tiny_random, TEXT, method=IG, target=NextToken("w4", score="logit"), position=3
    )
    assert logit.f_x == pytest.approx(float(logits[a]), abs=1e-5)
    predicted = attribute(tiny_random, TEXT, position=3, method="gradient")
    top = int(logits.argmax())
    assert predicted.target_token_ids == (top,)
    assert predicted.target_probability == pytest.approx(float(logits.softmax(-1)[top]), abs=1e-6)
    assert "(predicted)" in predicted.target


def test_a_subset_of_layers_gives_the_same_rows(tiny_random) -> None:
    everything = attribute(tiny_random, TEXT, method=IG, target=TARGET, n_steps=16, layers="all")
    subset = attribute(tiny_random, TEXT, method=IG, target=TARGET, n_steps=16, layers=[-1, 1])
    assert subset.layers.tolist() == [1, 2]
    np.testing.assert_allclose(subset.scores, everything.scores[1:], atol=1e-6)


def test_user_model_state_is_left_as_it_was(tiny_random) -> None:
    hf_model = tiny_random.hf_model
    hf_model.train()
    hf_model.model.layers[0].eval()  # mixed flags must come back exactly
    params = dict(hf_model.named_parameters())
    params["model.norm.weight"].requires_grad_(False)
    marker = torch.full_like(params["lm_head.weight"], 0.5)
    params["lm_head.weight"].grad = marker.clone()
    before = {name: (p.requires_grad, p.grad is None) for name, p in params.items()}
    flags = [m.training for m in hf_model.modules()]

    for method in ("gradient", "input_x_gradient", "integrated_gradients", "occlusion"):
        attribute(tiny_random, TEXT, target=TARGET, method=method, n_steps=8)

    assert {name: (p.requires_grad, p.grad is None) for name, p in params.items()} == before
    assert torch.equal(params["lm_head.weight"].grad, marker)
    assert [m.training for m in hf_model.modules()] == flags
    assert count_hooks(hf_model) == 0
    assert torch.is_grad_enabled()


def test_no_hooks_or_state_are_left_after_an_exception(tiny_random) -> None:
    hf_model = tiny_random.hf_model
    hf_model.train()

    def interrupt(fraction: float) -> None:
        raise KeyboardInterrupt

    for method in ("integrated_gradients", "occlusion"):
        with pytest.raises(KeyboardInterrupt):
            attribute(tiny_random, TEXT, method=method, n_steps=8, layers=[2], progress=interrupt)
        assert count_hooks(hf_model) == 0
        assert hf_model.training and all(m.training for m in hf_model.modules())


def test_a_plain_transformers_model_with_its_tokenizer_works(tiny_random) -> None:
    plain = attribute(
        tiny_random.hf_model, TEXT, tokenizer=tiny_random.tokenizer, method="gradient"
    )
    wrapped = attribute(tiny_random, TEXT, method="gradient")
    np.testing.assert_array_equal(plain.scores, wrapped.scores)
    with pytest.raises(TypeError, match="tokenizer"):
        attribute(tiny_random.hf_model, TEXT)


def test_progress_reaches_one(tiny_random) -> None:
    seen: list[float] = []
    attribute(
        tiny_random, TEXT, method=IG, n_steps=10, internal_batch_size=4, layers="all",
        progress=seen.append,
    )  # fmt: skip
    # 3 sites x (10 gradient evaluations in batches of 4, 4, 2 + the adaptive rule's 11 probe
    # points in 4, 4, 3): one report per batch, the first after 4 of the 3 x 21 evaluations
    assert seen == sorted(seen) and seen[-1] == pytest.approx(1.0) and len(seen) == 18
    assert seen[0] == pytest.approx(4 / 63)


def test_a_tensor_baseline_equals_the_named_one(tiny_random) -> None:
    embeds = tiny_random.hf_model.get_input_embeddings()(tiny_random.encode(TEXT)).detach()
    baseline = torch.zeros_like(embeds[0])
    baseline[0] = embeds[0, 0]
    named = attribute(tiny_random, TEXT, method=IG, target=TARGET, n_steps=16, baseline="zero")
    given = attribute(tiny_random, TEXT, method=IG, target=TARGET, n_steps=16, baseline=baseline)
    assert given.baseline == "tensor"
    np.testing.assert_allclose(given.scores, named.scores, atol=1e-7)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"target": "w1 w2"}, ValueError, r"is 2 tokens \['w1', 'w2'\]"),
        ({"target": "banana"}, ValueError, "not in the vocabulary"),
        ({"target": ("w4", "w4")}, ValueError, "two different tokens"),
        ({"target": 10_000}, ValueError, "out of range"),
        ({"position": 8}, ValueError, "position 8 is out of range for 8 tokens"),
        ({"method": "saliency"}, ValueError, "valid methods: gradient"),
        ({"baseline": "mean"}, ValueError, "unknown baseline 'mean'"),
        ({"baseline": torch.zeros(3, 5)}, ValueError, "baseline tensor must be"),
        ({"layers": 3}, ValueError, "layer 3 is out of range"),
        ({"layers": "every"}, ValueError, "layers must be 'all'"),
        ({"layers": []}, ValueError, "layers is empty"),
        ({"n_steps": 0}, ValueError, "n_steps must be a positive int"),
        ({"internal_batch_size": 0}, ValueError, "internal_batch_size"),
        ({"integration": "simpson"}, ValueError, "unknown integration rule"),
    ],
)
def test_bad_input_is_explained(tiny_random, kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        attribute(tiny_random, TEXT, **{"method": IG, **kwargs})
    assert count_hooks(tiny_random.hf_model) == 0


def test_bad_text_is_explained(tiny_random) -> None:
    with pytest.raises(ValueError, match="empty"):
        attribute(tiny_random, "   ")
    with pytest.raises(TypeError, match="int64"):
        attribute(tiny_random, torch.tensor([2, 5, 6], dtype=torch.int32))
