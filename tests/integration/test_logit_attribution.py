"""Direct logit attribution against known answers: the contributions add up to the logit the
model computed (conservation, on the bundled model and a random GQA model), each layer's
attention + MLP rows equal that layer's residual update from ``output_hidden_states``, and the
bundled model's agreement mechanism (the last layer carries the subject's number to the verb)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import llmasos_widgets as lw
from llmasos_widgets.interventions import LogitAttribution, agreement_twins
from llmasos_widgets.models import UnsupportedArchitectureError
from tests.conftest import random_llama, word_tokenizer

EPS32 = float(np.finfo(np.float32).eps)


def summation_bound(result: LogitAttribution) -> np.ndarray:
    """Float32 rounding of a sum of n terms: n * eps * sum(|term|), per position."""
    terms = [
        result.embeddings[None],
        result.heads.reshape(-1, len(result.tokens)),
        result.mlps,
        result.attention_biases,
    ]
    stacked = np.concatenate(terms)
    return stacked.shape[0] * EPS32 * np.abs(stacked).sum(0) + EPS32 * np.abs(result.logits)


def test_contributions_add_up_to_the_logit_on_the_bundled_model(bundled) -> None:
    for target in [(" are", " is"), None, " are"]:
        result = lw.logit_attribution(bundled, "the keys near the cabinet", target=target)
        assert np.all(np.abs(result.unexplained) <= summation_bound(result)), result.unexplained
        assert result.target.startswith("logit(")  # a token's logit, never its log-probability
    # the logits are the model's own, at every position
    ids = bundled.encode("the keys near the cabinet")
    with torch.no_grad():
        logits = bundled.hf_model(input_ids=ids).logits[0].float()
    are = bundled.tokenizer.convert_tokens_to_ids("are")
    plain = lw.logit_attribution(bundled, "the keys near the cabinet", target=" are")
    np.testing.assert_allclose(plain.logits, logits[:, are].numpy(), rtol=1e-6, atol=1e-6)


def test_contributions_add_up_on_a_random_gqa_model_and_match_each_layers_update() -> None:
    model, tokenizer = random_llama(layers=4, heads=8, kv_heads=2, seed=3), word_tokenizer()
    result = lw.logit_attribution(model, "the cat sat on the mat", tokenizer=tokenizer)
    assert result.heads.shape == (4, 8, len(result.tokens))
    assert np.all(np.abs(result.unexplained) <= summation_bound(result))
    # each layer's attention and MLP rows are its residual update, read from transformers'
    # own hidden states (not our hooks) through the same frozen norm
    ids = tokenizer("the cat sat on the mat", return_tensors="pt").input_ids
    with torch.no_grad():
        hidden = model(input_ids=ids, output_hidden_states=True).hidden_states
    unembedding = model.lm_head.weight[result_token_id(result, tokenizer)]
    read = (model.model.norm(torch.ones(1, 32)) * unembedding).detach()[0]
    components = result.component_map
    for layer in range(3):  # hidden_states[4] is after the final norm: layers 0-2 are checked
        update = hidden[layer + 1][0] - hidden[layer][0]
        expected = result.norm_scale * (update @ read).numpy()
        got = components[1 + 2 * layer] + components[2 + 2 * layer]
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        components[0], result.norm_scale * (hidden[0][0] @ read).numpy(), rtol=1e-4, atol=1e-5
    )


def result_token_id(result: LogitAttribution, tokenizer) -> int:
    token = result.target.split("'")[1]
    return int(tokenizer.convert_tokens_to_ids(token))


def test_the_last_layer_carries_agreement_to_the_verb_and_earlier_heads_do_not(bundled) -> None:
    """Known mechanism (docs/interventions.md, patching): after L2 the subject's number sits at
    the last token. Directly, the L2 heads push the logit difference toward the subject's
    verb in every prompt, L0/L1 heads are at chance and ~40x smaller (measured: 100% vs
    50-51%, mean |.| 2.03 vs 0.04-0.05 over 80 prompts)."""
    signs, per_layer = [], []
    for twin in agreement_twins(40, seed=0):
        for text, sign in ((twin.clean, 1.0), (twin.corrupted, -1.0)):
            result = lw.logit_attribution(bundled, text, target=twin.target)
            assert np.sign(result.logits[-1]) == sign  # the model gets these right
            signs.append(sign)
            per_layer.append(result.head_map.sum(1))
    signs_array, heads = np.array(signs), np.stack(per_layer)
    agree = (np.sign(heads) == signs_array[:, None]).mean(0)
    assert agree[2] >= 0.95
    assert agree[0] <= 0.75 and agree[1] <= 0.75
    size = np.abs(heads).mean(0)
    assert size[2] >= 10 * max(size[0], size[1])


def test_refuses_what_it_cannot_split_with_a_clear_error() -> None:
    from transformers import Gemma2Config, Gemma2ForCausalLM

    config = Gemma2Config(
        vocab_size=68, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=8, final_logit_softcapping=None,
    )  # fmt: skip
    gemma = Gemma2ForCausalLM(config).eval()
    with pytest.raises(UnsupportedArchitectureError, match="residual stream unnormalised"):
        lw.logit_attribution(gemma, "the cat", tokenizer=word_tokenizer())
    model = random_llama()
    with pytest.raises(ValueError, match="out of range"):
        lw.logit_attribution(model, "the cat", position=9, tokenizer=word_tokenizer())
    with pytest.raises(ValueError, match="not one"):
        lw.logit_attribution(model, "the cat", target="the cat", tokenizer=word_tokenizer())


def test_shows_in_the_patching_view_and_as_a_page(bundled, tmp_path) -> None:
    result = lw.logit_attribution(bundled, "the keys near the cabinet", target=(" are", " is"))
    widget = lw.PatchingWidget(result)
    n = len(result.tokens)
    assert widget.residual["shape"] == [1 + 2 * result.n_layers, n]
    assert widget.residual_layers == [-1, 0, 0, 1, 1, 2, 2]
    assert widget.head_positions["shape"] == [result.n_layers, result.n_heads, n]
    assert widget.corrupted_tokens == [] and widget.token_kinds[0] == "special"
    widget.select_residual(6, 2)  # "L2 MLP" at token 2
    assert (widget.selected_layer, widget.selected_tokens) == (2, [2])
    attention = lw.AttentionWidget(bundled, "the keys near the cabinet")
    lw.link_selection(widget, attention)
    widget.select_head(2, 3)
    assert (attention.selected_layer, attention.selected_heads) == (2, [3])
    hostile = dataclasses.replace(
        result, tokens=("<bos>", "<script>x()</script>", *result.tokens[2:])
    )
    page = hostile.to_html(tmp_path / "dla.html").read_text(encoding="utf-8")
    assert "<script>" not in page and "&lt;script&gt;x()" in page  # tokens are text
    assert "Direct logit attribution" in page and "L2 MLP" in page
    data, _metadata = result._repr_mimebundle_()  # in a notebook: the PatchingWidget
    assert "application/vnd.jupyter.widget-view+json" in data
