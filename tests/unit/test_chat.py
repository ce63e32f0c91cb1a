"""Chat models (issue 20) on a random tiny LLaMA whose byte-level tokenizer adds its own BOS and
whose LLaMA-3-style template writes the BOS string too: exactly one BOS, message spans,
errors, save/load, print, report and widget traits. The real checkpoint:
tests/integration/test_chat_real.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import llmasos_widgets as lw
from llmasos_widgets.explanation._chat import MessageSpan
from tests._tokenizers import byte_level_tokenizer, llama_for

TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}"
    "<|end_header_id|>\n\n{{ m['content'] }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
MESSAGES = [
    {"role": "system", "content": "The cat sat."},
    {"role": "user", "content": "The keys?"},
    {"role": "assistant", "content": "On the table."},
]


@pytest.fixture(scope="module")
def chat_model():
    tokenizer = byte_level_tokenizer()
    tokenizer.add_special_tokens(
        {"additional_special_tokens": ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]}
    )
    tokenizer.chat_template = TEMPLATE
    return lw.load_model(llama_for(tokenizer), tokenizer=tokenizer)


def test_ids_are_the_templates_with_one_bos(chat_model):
    tokenizer = chat_model.tokenizer
    assert tokenizer("x")["input_ids"][0] == tokenizer.bos_token_id  # encoding adds a BOS
    exp = lw.explain(chat_model, messages=MESSAGES, saliency=False)
    expected = tokenizer.apply_chat_template(MESSAGES, tokenize=True, return_dict=True)
    assert exp.token_ids.tolist() == list(expected["input_ids"])
    assert exp.token_ids.tolist().count(tokenizer.bos_token_id) == 1
    assert exp.token_ids[0] == tokenizer.bos_token_id


def test_spans_cover_header_content_and_end_of_turn(chat_model):
    exp = chat_model.explain(messages=MESSAGES, saliency=False)
    assert [m.role for m in exp.messages] == ["system", "user", "assistant"]
    assert exp.messages[0].start == 1  # the BOS belongs to no message
    for before, after in zip(exp.messages, exp.messages[1:], strict=False):
        assert before.end == after.start
    assert exp.messages[-1].end == exp.n_tokens
    for message in exp.messages:
        tokens = exp.tokens[message.start : message.end]
        assert tokens[0] == "<|start_header_id|>" and tokens[-1] == "<|eot_id|>"


def test_generate_starts_after_the_assistant_header(chat_model):
    out = chat_model.generate(messages=MESSAGES[:2], max_new_tokens=3, saliency_method=None)
    expected = chat_model.tokenizer.apply_chat_template(
        MESSAGES[:2], tokenize=True, return_dict=True, add_generation_prompt=True
    )["input_ids"]
    assert out.token_ids[: out.prompt_length].tolist() == list(expected)
    *given, written = out.messages
    assert [m.role for m in given] == ["system", "user"]
    assert written == MessageSpan("assistant", given[-1].end, out.n_tokens, generated=True)
    assert out.tokens[written.start] == "<|start_header_id|>"


def test_saliency_by_message_adds_up(chat_model):
    exp = chat_model.explain(messages=MESSAGES)
    sums = exp.saliency_by_message()
    assert list(sums) == ["0 system", "1 user", "2 assistant", "template"]
    total = np.asarray(exp.saliency.scores, dtype=np.float64).sum(axis=1)
    np.testing.assert_allclose(sum(sums.values()), total, rtol=1e-12)


def test_print_report_widgets_and_round_trip(chat_model, tmp_path: Path):
    exp = chat_model.explain(messages=MESSAGES)
    text = str(exp)
    assert "[0 system] tokens 1.." in text and "[1 user]" in text and "[2 assistant]" in text
    html = exp.to_html(tmp_path / "r.html").read_text(encoding="utf-8")
    assert "data-testid='report-messages'" in html and "data-role='user'" in html
    attention = lw.AttentionWidget(exp)
    assert [m["role"] for m in attention.message_spans] == ["system", "user", "assistant"]
    saliency = lw.SaliencyWidget(chat_model, exp)
    assert saliency.message_spans == attention.message_spans
    assert saliency.tokens == list(exp.tokens)
    loaded = lw.Explanation.load(exp.save(tmp_path / "chat.llmx"))
    assert loaded.messages == exp.messages
    plain = lw.Explanation.load(chat_model.explain("The cat", saliency=False).save(tmp_path / "p"))
    assert plain.messages == ()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"text": "hi", "messages": MESSAGES}, TypeError, "not both"),
        ({}, TypeError, "messages="),
        ({"messages": []}, ValueError, "empty"),
        ({"messages": "hello"}, TypeError, "list of"),
        ({"messages": [{"content": "hi"}]}, ValueError, "no 'role'"),
        ({"messages": [{"role": "user"}]}, ValueError, "no 'content'"),
        ({"messages": [{"role": "user", "content": ["x"]}]}, TypeError, "must be a str"),
    ],
)
def test_bad_messages(chat_model, kwargs, error, match):
    with pytest.raises(error, match=match):
        lw.explain(chat_model, saliency=False, **kwargs)


def test_model_without_chat_template():
    model = lw.load_model("tiny-llama")
    with pytest.raises(ValueError, match="no chat template"):
        model.explain(messages=MESSAGES)
    with pytest.raises(ValueError, match="no chat template"):
        model.generate(messages=MESSAGES, max_new_tokens=2)
