"""LogitLensWidget, the SaliencyWidget's faithfulness button and the AttentionWidget's q·k
panel in a real JupyterLab + Chromium, asserting Python-side state after real clicks.

* Clicking the logit lens row ``after L1`` selects decoder layer 1 in the lens and, through
  ``link_selection``, in the AttentionWidget (Python state), whose grid then highlights it.
* Clicking "faithfulness" computes it in the kernel; the score the view shows is exactly the
  one Python holds, and it equals ``lw.faithfulness(model, saliency)`` computed afresh.
* Setting ``selected_cell`` (and a layer/heads) in Python shows the q·k panel; per head the sum
  of the drawn products equals the score sent, which equals ``qk_breakdown``'s.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.browser._jupyter import (
    ATTENTION_MODEL,
    ATTENTION_TEXT,
    UI_STEP_S,
    JupyterServer,
    KernelClient,
    open_notebook_and_run_all,
    wait_for_widget,
    write_notebook,
)

pytestmark = pytest.mark.browser

STEP_MS = UI_STEP_S * 1000

CELL = f"""\
import llmasos_widgets as lw
from llmasos_widgets import AttentionWidget, LogitLensWidget, SaliencyWidget, link_selection

model = lw.load_model({ATTENTION_MODEL!r}, device="cpu")
explanation = model.explain({ATTENTION_TEXT!r}, saliency=False)
lens = LogitLensWidget(explanation)
attention = AttentionWidget(explanation)
saliency = SaliencyWidget(model, {ATTENTION_TEXT!r})
link_selection(lens, attention)
display(lens, attention, saliency)
"""


def test_lens_row_click_faithfulness_button_and_qk_panel(
    jupyter_server: JupyterServer, page: Any
) -> None:
    from playwright.sync_api import expect

    name = "lens_qk_faithfulness.ipynb"
    write_notebook(jupyter_server.root_dir, name, [CELL])
    kernel_id = open_notebook_and_run_all(page, jupyter_server, f"/lab/tree/{name}")
    lens_view = wait_for_widget(page, jupyter_server, "logit-lens-widget")
    attention_view = wait_for_widget(page, jupyter_server, "attention-widget")
    saliency_view = wait_for_widget(page, jupyter_server, "saliency-widget")
    kernel = KernelClient.connect(jupyter_server, kernel_id)
    try:
        # 1. the lens: rows are residual sites; a row click selects its layer everywhere
        names = kernel.evaluate("lens.site_names")
        assert names[:3] == ["emb", "after L0", "after L1"]
        svg = lens_view.get_by_test_id("logit-lens")
        expect(svg).to_have_attribute("data-figure", "logit-lens", timeout=STEP_MS)
        top = kernel.evaluate("lens.lens_tokens[2][3]")
        expect(lens_view.get_by_test_id("lens-cell-2-3")).to_contain_text(top[:8], timeout=STEP_MS)
        lens_view.get_by_test_id("lens-row-2").click()
        kernel.wait_for(
            "[lens.selected_layer, attention.selected_layer]",
            lambda v: v == [1, 1],
            what="selected_layer after clicking the lens row 'after L1'",
        )
        expect(lens_view.get_by_test_id("lens-row-2")).to_have_attribute(
            "data-selected", "true", timeout=STEP_MS
        )
        expect(attention_view.get_by_test_id("layer-label-1")).to_have_class(
            re.compile(r"\bllmw-layer-label--selected\b"), timeout=STEP_MS
        )
        lens_view.get_by_test_id("lens-col-4").click()
        kernel.wait_for(
            "attention.selected_tokens", lambda v: v == [4], what="token brushed in the lens"
        )

        # 2. the faithfulness button: computed in the kernel, shown with Python's exact score
        saliency_view.get_by_test_id("faithfulness-button").click()
        kernel.wait_for(
            "saliency.faithfulness.get('status')",
            lambda v: v == "ready",
            what="faithfulness status after the button click",
            timeout=4 * UI_STEP_S,
        )
        python_score = kernel.evaluate("saliency.faithfulness['score']")
        fresh = kernel.evaluate("lw.faithfulness(model, saliency.saliency).score")
        assert fresh == pytest.approx(python_score, rel=1e-9)
        score = saliency_view.get_by_test_id("faithfulness-score")
        expect(score).to_have_attribute("data-score", re.compile(r".+"), timeout=STEP_MS)
        assert float(score.get_attribute("data-score")) == pytest.approx(python_score, rel=1e-12)
        expect(saliency_view.locator('svg[data-figure="faithfulness"]')).to_be_visible(
            timeout=STEP_MS
        )
        line = kernel.evaluate("saliency.faithfulness['line']")
        expect(saliency_view.get_by_test_id("faithfulness-comparison")).to_have_text(
            line, timeout=STEP_MS
        )

        # 3. the q·k panel for a cell selected in Python
        kernel.evaluate(
            "(setattr(attention, 'selected_heads', [0, 2]), "
            "setattr(attention, 'selected_cell', [6, 2]))[-1]"
        )
        panel = attention_view.get_by_test_id("qk-panel")
        expect(panel).to_have_attribute("data-query", "6", timeout=STEP_MS)
        expected = kernel.evaluate(
            "[lw.qk_breakdown(explanation, 1, h, 6, 2).score for h in (0, 2)]"
        )
        for head, value in zip((0, 2), expected, strict=True):
            block = panel.get_by_test_id(f"qk-head-{head}")
            expect(block).to_be_visible(timeout=STEP_MS)
            assert float(block.get_attribute("data-score")) == pytest.approx(value, rel=1e-9)
            # the products drawn are float32: their sum matches to float32 rounding
            assert float(block.get_attribute("data-sum")) == pytest.approx(
                value, rel=1e-4, abs=1e-5
            )
    finally:
        kernel.close()
