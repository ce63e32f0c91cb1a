"""Chat models (issue 20) on the real checkpoint, SmolLM2-135M-Instruct: docs/chat.md runs as
written (its snippets assert the template's ids, the spans and the per-message sums), and
generate's tokens equal transformers' greedy generate on the templated prompt."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.fake_hub import hub_for_tests
from tests.integration.test_doc_snippets import ROOT, _run_blocks

pytestmark = pytest.mark.real_model

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is 2+2?"},
]


def test_chat_doc_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests._real_model import smollm2_checkpoint

    monkeypatch.chdir(tmp_path)
    with hub_for_tests(monkeypatch, tmp_path) as hub:
        hub.add("HuggingFaceTB/SmolLM2-135M-Instruct", smollm2_checkpoint())
        _run_blocks(ROOT / "docs" / "chat.md")
    assert (tmp_path / "chat.html").is_file()


def test_generate_follows_the_assistant_header_and_equals_hf_greedy(real_model) -> None:
    tokenizer = real_model.tokenizer
    prompt = tokenizer.apply_chat_template(
        MESSAGES, tokenize=True, return_dict=True, add_generation_prompt=True
    )["input_ids"]
    reply = real_model.generate(messages=MESSAGES, max_new_tokens=4, saliency_method=None)
    assert reply.token_ids[: reply.prompt_length].tolist() == list(prompt)
    assert reply.tokens[reply.prompt_length - 4 : reply.prompt_length] == (
        "<|im_start|>",
        "ass",
        "istant",
        "Ċ",
    )
    assert [m.role for m in reply.messages] == ["system", "user", "assistant"]
    assert reply.messages[-1].generated and reply.messages[-1].start == reply.prompt_length - 4
    ids = torch.tensor([prompt])
    with torch.no_grad():
        greedy = real_model.hf_model.generate(
            ids, attention_mask=torch.ones_like(ids), max_new_tokens=4, do_sample=False
        )
    np.testing.assert_array_equal(reply.token_ids, greedy[0].numpy())
