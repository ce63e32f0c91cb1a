"""explain(): known answers on random-init models and on the bundled model's mechanisms."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from llmasos_widgets.explanation import Explanation, ExplanationFileError, explain, final_logits
from llmasos_widgets.models import BUNDLED_MODELS

TEXT = "w1 w2 w3 w4 w5 w6 w1 w2 w3 w4"


@pytest.fixture
def explanation(tiny_random):
    return explain(tiny_random, TEXT, saliency=False)


def test_tokens_are_exactly_the_tokenizers_split(tiny_random, explanation):
    ids = tiny_random.tokenizer(TEXT)["input_ids"]
    assert explanation.tokens == tuple(tiny_random.tokenizer.convert_ids_to_tokens(ids))
    assert explanation.token_ids.tolist() == ids


def test_every_heads_pattern_equals_eager_attention(tiny_random, explanation):
    hf_model = tiny_random.hf_model
    hf_model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            eager = hf_model(
                torch.from_numpy(explanation.token_ids)[None], output_attentions=True
            ).attentions
    finally:
        hf_model.set_attn_implementation("sdpa")
    for layer in range(explanation.n_layers):
        for head in range(explanation.n_heads):
            ours = explanation.attention(layer, head)
            np.testing.assert_allclose(ours, eager[layer][0, head].numpy(), atol=1e-5, rtol=0)


def test_summaries_follow_their_definitions(explanation):
    pattern = explanation.attention(1, 2)
    rows = np.arange(1, explanation.n_tokens)
    summaries = explanation.head_summaries
    assert summaries["previous_token"][1, 2] == pytest.approx(
        pattern[rows, rows - 1].mean(), abs=1e-6
    )
    assert summaries["first_token"][1, 2] == pytest.approx(pattern[rows, 0].mean(), abs=1e-6)
    entropy = -(pattern[1:] * np.log(np.where(pattern[1:] > 0, pattern[1:], 1))).sum(-1).mean()
    assert summaries["entropy"][1, 2] == pytest.approx(entropy, abs=1e-5)


def test_logit_lens_last_row_is_the_models_own_prediction(tiny_random, explanation):
    with torch.no_grad():
        logits = tiny_random.hf_model(torch.from_numpy(explanation.token_ids)[None]).logits[0]
    assert explanation.lens_token_ids[-1].tolist() == logits.argmax(-1).tolist()
    assert explanation.top_token_ids[:, 0].tolist() == logits.argmax(-1).tolist()
    np.testing.assert_allclose(explanation.lens_probs[-1], explanation.top_probs[:, 0], atol=1e-6)


def test_final_logits_reproduce_the_model_head(tiny_random):
    ids = tiny_random.encode("w3 w4 w5")
    with torch.no_grad():
        out = tiny_random.hf_model(ids, output_hidden_states=True)
        # hidden_states[-1] is after the final norm in HF; rebuild from the pre-norm residual
        from llmasos_widgets.tracing import trace

        with trace(tiny_random.hf_model) as captured:
            tiny_random.hf_model(ids)
        assert torch.allclose(final_logits(tiny_random.hf_model, captured.residual[-1]), out.logits)


def test_save_load_round_trips_exactly(explanation, tmp_path):
    path = explanation.save(tmp_path / "run.llmx")
    loaded = Explanation.load(path)
    assert loaded.tokens == explanation.tokens
    assert loaded.specs == explanation.specs
    assert (
        loaded.top_tokens == explanation.top_tokens
        and loaded.lens_tokens == explanation.lens_tokens
    )
    for name in ("token_ids", "top_token_ids", "top_probs", "lens_token_ids", "lens_probs"):
        original, restored = getattr(explanation, name), getattr(loaded, name)
        assert restored.dtype == original.dtype and np.array_equal(restored, original), name
    for a, b in zip(
        explanation.queries + explanation.keys, loaded.queries + loaded.keys, strict=True
    ):
        assert a.dtype == b.dtype and torch.equal(a, b)
    for name, summary in explanation.head_summaries.items():
        assert np.array_equal(loaded.head_summaries[name], summary)
    assert np.array_equal(loaded.attention(1, 3), explanation.attention(1, 3))
    assert dict(loaded.metadata) == dict(explanation.metadata)


def test_saliency_is_saved_with_the_explanation(tiny_random, tmp_path):
    exp = explain(tiny_random, TEXT, saliency_method="input_x_gradient")
    assert exp.saliency is not None
    loaded = Explanation.load(exp.save(tmp_path / "run.llmx"))
    assert loaded.saliency is not None
    assert np.array_equal(loaded.saliency.scores, exp.saliency.scores)
    assert loaded.saliency.metadata() == exp.saliency.metadata()


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_files_get_a_clear_error(explanation, tmp_path, damage):
    path = explanation.save(tmp_path / "run.llmx")
    data = path.read_bytes()
    path.write_bytes(
        {"truncate": data[: len(data) // 2], "garbage": b"\x00\xff" * 50, "empty": b""}[damage]
    )
    with pytest.raises(ExplanationFileError, match="not a readable explanation"):
        Explanation.load(path)


def test_foreign_safetensors_file_is_named_as_such(tmp_path):
    from safetensors.torch import save_file

    save_file({"weight": torch.zeros(2)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(ExplanationFileError, match="not an explanation"):
        Explanation.load(tmp_path / "model.safetensors")


def test_an_explanation_displays_as_an_attention_widget(explanation):
    bundle = explanation._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert "application/vnd.jupyter.widget-view+json" in data


def test_out_of_range_heads_are_clear(explanation):
    with pytest.raises(ValueError, match="layers 0..1"):
        explanation.attention(2, 0)
    with pytest.raises(ValueError, match="heads 0..3"):
        explanation.attention(0, 4)


def test_html_report_is_standalone_and_renders_tokens_as_text(tiny_random, tmp_path):
    from tests.conftest import word_tokenizer

    hostile = "<img/src=x/onerror=alert(1)>"
    tokenizer = word_tokenizer(["w1", "w2", hostile])
    tiny_random.tokenizer = tokenizer
    exp = explain(tiny_random, f"w1 {hostile} w2", saliency=False)
    assert hostile in exp.tokens
    page = exp.to_html(tmp_path / "report.html").read_text()
    assert hostile not in page and "&lt;img/src=x/onerror=alert(1)&gt;" in page
    assert "http://" not in page and "https://" not in page


# ---- the bundled model's known mechanisms -------------------------------------------------


def _model_card_facts() -> dict:
    return json.loads((Path(BUNDLED_MODELS["tiny-llama"]) / "eval.json").read_text())


def test_bundled_induction_heads_rank_first(bundled):
    exp = explain(bundled, "the key near the cabinets is on the table .", saliency=False)
    known = {tuple(head) for head in _model_card_facts()["induction_heads_above_half"]}
    top = exp.top_heads("induction", len(known))
    assert {(layer, head) for layer, head, _ in top} == known
    assert min(score for *_, score in top) > 0.5
    assert exp.top_heads("induction", len(known) + 1)[-1][2] < 0.5


@pytest.mark.parametrize(
    ("text", "card_key"),
    [
        ("the keys near the cabinet are on the table .", "previous_token_head_on_sentences"),
        (
            "red doors old key tables lamp cold red doors old key tables lamp cold",
            "previous_token_head",
        ),
    ],
)
def test_bundled_previous_token_head_is_found(bundled, text, card_key):
    exp = explain(bundled, text, saliency=False)
    layer, head, score = exp.top_heads("previous_token", 1)[0]
    assert [layer, head] == list(_model_card_facts()[card_key])
    runner_up = exp.top_heads("previous_token", 2)[1][2]
    assert score > runner_up + 0.05


def test_print_shows_predictions_salient_tokens_and_notable_heads(bundled) -> None:
    """``print(explanation)`` reads as an explanation of the bundled model's known mechanisms;
    ``repr`` stays one short line."""
    # gradient saliency: the model card's known answer (explain's default, "auto", picks
    # occlusion for short texts, which ranks the attractor first here: docs/saliency.md)
    explanation = bundled.explain(
        "the keys near the cabinet", target=("are", "is"), saliency_method="gradient"
    )
    text = str(explanation)
    lines = text.splitlines()
    assert lines[0] == repr(explanation) and len(repr(explanation)) < 200
    assert len(lines) == 3 + len(explanation.head_summaries)
    next_tokens = lines[1].removeprefix("  next token: ").split(", ")
    assert next_tokens[0].split(" ")[0] == explanation.top_tokens[-1][0]
    # agreement: the subject noun is the most salient token for are-vs-is (model card)
    assert lines[2].startswith("  most salient for ") and ": keys " in lines[2]
    induction_line = next(line for line in lines if line.startswith("  top induction heads: "))
    layer, head, _ = explanation.top_heads("induction", 1)[0]
    assert induction_line.startswith(f"  top induction heads: L{layer}.H{head} ")
    assert layer == 1  # the model card's induction heads are all of layer 1
