"""Token strings are data: markup in a vocabulary renders as literal text in the real browser,
creates no element and runs no script, also after a head's pattern view draws them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.browser._jupyter import (
    UI_STEP_S,
    JupyterServer,
    KernelClient,
    click_head,
    open_notebook_and_run_all,
    wait_for_widget,
    write_notebook,
)

pytestmark = pytest.mark.browser

# Each would run script or create an element if a view ever assigned it as HTML.
HOSTILE = [
    "<img src=x onerror=window.__xss=1>",
    "<img/src/onerror=window.__xss=2>",
    "<svg/onload=window.__xss=3>",
    "<script>window.__xss=4</script>",
    '"><iframe srcdoc=x onload=window.__xss=5>',
    "<b>bold</b>",
    "&lt;b&gt;&amp;",
]

# A real tokenizer built in the kernel: word level over exactly these strings, split on "|",
# so every hostile string is one token; a random-init LLaMA over that vocabulary.
CELL = f"""\
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
from llmasos_widgets import AttentionWidget

HOSTILE = {HOSTILE!r}
vocab = {{t: i for i, t in enumerate(["<pad>", "<unk>", "<bos>", "<eos>", *HOSTILE])}}
backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
backend.pre_tokenizer = pre_tokenizers.Split("|", behavior="removed")
backend.post_processor = processors.TemplateProcessing(
    single="<bos> $A", special_tokens=[("<bos>", vocab["<bos>"])]
)
tok = PreTrainedTokenizerFast(
    tokenizer_object=backend, bos_token="<bos>", eos_token="<eos>",
    pad_token="<pad>", unk_token="<unk>",
)
torch.manual_seed(0)
config = LlamaConfig(
    vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
    attn_implementation="sdpa",
)
hf_model = LlamaForCausalLM(config).eval()
widget = AttentionWidget(hf_model, "|".join(HOSTILE), tokenizer=tok)
assert widget.tokens == ["<bos>", *HOSTILE], widget.tokens
widget
"""

ONLY_MARKS = """(el) => [...el.children].every(
  (c) => c.tagName === "SPAN" && c.className === "llmw-mark" && c.children.length === 0
)"""

NO_INJECTION = """(root) => ({
  xss: typeof window.__xss === "undefined" ? null : String(window.__xss),
  elements: root.querySelectorAll("img, svg, script, iframe, b").length,
  anywhere: [...document.querySelectorAll("img, svg, script, iframe, b")].filter(
    (el) => el.outerHTML.includes("__xss") || el.textContent === "bold"
  ).length,
})"""


def displayed(raw: str) -> str:
    """The token strip's documented rendering: spaces shown as ␣ (lib/token_strip.ts)."""
    return raw.replace(" ", "\u2423")


def test_hostile_tokens_render_as_text(
    jupyter_server: JupyterServer, page: Any, output_dir: Path
) -> None:
    write_notebook(jupyter_server.root_dir, "hostile.ipynb", [CELL])
    kernel_id = open_notebook_and_run_all(page, jupyter_server, "/lab/tree/hostile.ipynb")
    widget = wait_for_widget(page, jupyter_server, "attention-widget")
    kernel = KernelClient.connect(jupyter_server, kernel_id)
    try:
        assert kernel.evaluate("widget.tokens") == ["<bos>", *HOSTILE]
        strip = widget.get_by_test_id("token-strip")
        strip_text = strip.text_content()
        for i, raw in enumerate(HOSTILE, start=1):
            span = widget.get_by_test_id(f"token-{i}")
            assert span.text_content() == displayed(raw)
            assert displayed(raw) in strip_text
            # the tooltip carries the exact string, JSON-quoted (JSON.stringify == json.dumps)
            assert span.get_attribute("title") == f"{i}: {json.dumps(raw, ensure_ascii=False)}"
            # the only elements inside a token are its quiet whitespace marks (text only)
            assert span.evaluate(ONLY_MARKS), span.inner_html()
        assert page.evaluate(NO_INJECTION, widget.element_handle()) == {
            "xss": None,
            "elements": 0,
            "anywhere": 0,
        }

        # hover a token and open a head: the pattern and line views now draw the tokens too
        widget.get_by_test_id("token-1").hover()
        click_head(widget, 1, 2)
        kernel.wait_for(
            "[widget.selected_layer, widget.selected_heads]",
            lambda v: v == [1, [2]],
            what="selection after clicking the grid",
        )
        widget.locator('[data-testid="pattern-matrix"][data-layer="1"][data-heads="2"]').wait_for(
            state="visible", timeout=UI_STEP_S * 1000
        )
        widget.get_by_test_id("line-view").wait_for(state="visible", timeout=UI_STEP_S * 1000)
        assert page.evaluate(NO_INJECTION, widget.element_handle()) == {
            "xss": None,
            "elements": 0,
            "anywhere": 0,
        }
        widget.screenshot(path=str(output_dir / "hostile_tokens_widget.png"))
    finally:
        kernel.close()
        jupyter_server.shutdown_kernels()
