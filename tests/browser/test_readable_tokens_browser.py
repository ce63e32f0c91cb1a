"""Real tokenizers read as text in the real browser: an AttentionWidget on the seed's Chinese
example with a SentencePiece (LLaMA-2-like) and a byte-level BPE (LLaMA-3-like) tokenizer, both
built offline (tests/_tokenizers.py) and paired with random-init LLaMAs. The token strip in
JupyterLab and the HTML report opened from file in Chromium show the Chinese characters (each
on the token holding its first byte, ◌ on the rest), ␣/⏎ as faded marks, and the special
token marked; the raw strings stay in the tooltips."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llmasos_widgets._readable_tokens import ShownToken, token_label
from tests._tokenizers import CHINESE_EXAMPLE
from tests.browser._jupyter import (
    UI_STEP_S,
    JupyterServer,
    KernelClient,
    open_notebook_and_run_all,
    wait_for_widget,
    write_notebook,
)

pytestmark = pytest.mark.browser

TEXT = f"{CHINESE_EXAMPLE}\nThe keys"
KINDS = ("sentencepiece", "byte_level")

SETUP_CELL = f"""\
from llmasos_widgets import AttentionWidget, explain
from llmasos_widgets.models import as_explainable
from tests._tokenizers import byte_level_tokenizer, llama_for, sentencepiece_tokenizer

TEXT = {TEXT!r}

def show(build, name):
    tokenizer = build()
    exp = explain(as_explainable(llama_for(tokenizer), tokenizer), TEXT)
    exp.to_html(f"report_{{name}}.html")
    return AttentionWidget(exp)
"""
WIDGET_CELLS = [
    "sentencepiece = show(sentencepiece_tokenizer, 'sentencepiece')\nsentencepiece",
    "byte_level = show(byte_level_tokenizer, 'byte_level')\nbyte_level",
]

# Per token span: its text, kind, class list, tooltip, and the opacity of its mark children.
STRIP_STATE = """(strip) => [...strip.querySelectorAll('.llmw-token')].map((el) => ({
  text: el.textContent,
  kind: el.dataset.kind,
  classes: [...el.classList],
  title: el.title,
  marks: [...el.children].map((m) => [m.className, m.textContent,
                                      Number(getComputedStyle(m).opacity)]),
}))"""


def _expected(kernel: KernelClient, name: str) -> tuple[list[str], list[ShownToken]]:
    raw = kernel.evaluate(f"{name}.tokens")
    texts = kernel.evaluate(f"{name}.display_tokens")
    kinds = kernel.evaluate(f"{name}.token_kinds")
    shown = [ShownToken(t, k, i) for i, (t, k) in enumerate(zip(texts, kinds, strict=True))]
    return raw, shown


def _check_reads_as_text(labels: list[str], shown: list[ShownToken], name: str) -> None:
    assert labels == [token_label(token) for token in shown], name
    joined = "".join(labels)
    assert CHINESE_EXAMPLE in joined.replace("\u25cc", ""), joined  # ◌ = continuation
    assert "\u23ceThe\u2423keys" in joined, joined  # ⏎ newline, ␣ space
    assert "<0x" not in joined and "\u00e8" not in joined, joined  # no byte pieces, no mojibake


def test_chinese_reads_as_characters_in_the_strip_and_the_report(
    jupyter_server: JupyterServer, page: Any, browser: Any, output_dir: Path
) -> None:
    write_notebook(jupyter_server.root_dir, "readable.ipynb", [SETUP_CELL, *WIDGET_CELLS])
    kernel_id = open_notebook_and_run_all(page, jupyter_server, "/lab/tree/readable.ipynb")
    wait_for_widget(page, jupyter_server, "attention-widget")
    widgets = page.locator('[data-testid="attention-widget"]')
    widgets.nth(1).wait_for(state="visible", timeout=UI_STEP_S * 4000)
    kernel = KernelClient.connect(jupyter_server, kernel_id)
    expected: dict[str, list[ShownToken]] = {}
    try:
        for index, name in enumerate(KINDS):
            raw, shown = _expected(kernel, name)
            expected[name] = shown
            strip = widgets.nth(index).get_by_test_id("token-strip")
            state = strip.evaluate(STRIP_STATE)
            _check_reads_as_text([s["text"] for s in state], shown, name)
            assert [s["kind"] for s in state] == [t.kind for t in shown]
            assert "llmw-token--special" in state[0]["classes"]
            continuations = [i for i, t in enumerate(shown) if t.kind == "continuation"]
            assert continuations, f"{name}: the example should split a character"
            first = continuations[0]
            assert "llmw-token--continuation" in state[first]["classes"]
            assert state[first]["title"].startswith(
                f"{first}: {json.dumps(raw[first], ensure_ascii=False)}"
            )
            assert "rest of" in state[first]["title"]
            marks = [m for s in state for m in s["marks"]]
            assert marks and all(cls == "llmw-mark" and opacity < 1 for cls, _, opacity in marks)
            assert {text for _, text, _ in marks} >= {"\u2423", "\u23ce", "\u25cc"}
        widgets.nth(1).screenshot(path=str(output_dir / "readable_tokens_widget.png"))
    finally:
        kernel.close()
        jupyter_server.shutdown_kernels()

    # the HTML reports, opened from file in Chromium (no server involved): same labels
    for name in KINDS:
        report = jupyter_server.root_dir / f"report_{name}.html"
        assert report.is_file(), f"the kernel did not write {report}"
        report_page = browser.new_page()
        try:
            report_page.goto(report.as_uri())
            tokens = report_page.get_by_test_id("report-tokens")
            labels = tokens.evaluate("(el) => [...el.children].map((t) => t.textContent)")
            kinds = tokens.evaluate("(el) => [...el.children].map((t) => t.dataset.kind)")
            assert kinds == [t.kind for t in expected[name]]
            _check_reads_as_text(labels, expected[name], f"report {name}")
            report_page.screenshot(path=str(output_dir / f"readable_tokens_report_{name}.png"))
        finally:
            report_page.close()
