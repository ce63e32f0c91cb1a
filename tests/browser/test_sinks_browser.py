"""Attention sinks in a real JupyterLab + Chromium (issue 20): on a real-model explanation the
sink mark is visible on token 0 (strip and the pattern's key axis), and a real click on the
"sinks out of the color scale" checkbox sets the Python trait and rescales the pattern."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.browser._jupyter import (
    REPO_ROOT,
    UI_STEP_S,
    JupyterServer,
    KernelClient,
    open_notebook_and_run_all,
    wait_for_widget,
    write_notebook,
)

pytestmark = [pytest.mark.browser, pytest.mark.real_model]

SINK_CELL = f"""\
import sys
sys.path.insert(0, {str(REPO_ROOT)!r})
from tests._real_model import smollm2_checkpoint
from llmasos_widgets import AttentionWidget, load_model

model = load_model(str(smollm2_checkpoint()), device="cpu", dtype="float32")
explanation = model.explain("The capital of France is", saliency=False)
widget = AttentionWidget(explanation, selected_layer=18, selected_heads=[8])
widget
"""


def test_sink_marked_and_left_out_of_the_scale(
    jupyter_server: JupyterServer, page: Any, output_dir: Path
) -> None:
    name = "sinks.ipynb"
    write_notebook(jupyter_server.root_dir, name, [SINK_CELL])
    kernel_id = open_notebook_and_run_all(page, jupyter_server, f"/lab/tree/{name}")
    widget = wait_for_widget(page, jupyter_server, "attention-widget")
    kernel = KernelClient.connect(jupyter_server, kernel_id)
    try:
        assert kernel.evaluate("widget.attention_sinks['positions']") == [0]
        assert widget.get_attribute("data-sinks") == "0"
        token = widget.get_by_test_id("token-0")
        token.wait_for(state="visible", timeout=UI_STEP_S * 1000)
        assert "llmw-token--sink" in (token.get_attribute("class") or "")
        assert "attention sink" in (token.get_attribute("title") or "")
        assert token.text_content() == "The"  # the badge is not the token's text
        badge = page.evaluate(
            "(el) => { const s = getComputedStyle(el, '::after');"
            " return [s.content, s.display, s.visibility, parseFloat(s.width)]; }",
            token.element_handle(),
        )
        assert badge[0] == '"sink"' and badge[1] != "none" and badge[2] == "visible"
        assert badge[3] > 0
        other = widget.get_by_test_id("token-1")
        assert "llmw-token--sink" not in (other.get_attribute("class") or "")

        # the pattern of L18.H8 (first_token 1.00): key 0 marked on the axis, scale over all
        matrix = widget.locator('[data-testid="pattern-matrix"][data-layer="18"][data-heads="8"]')
        matrix.wait_for(state="visible", timeout=UI_STEP_S * 1000)
        page.wait_for_function(
            "(el) => el.dataset.loadedRequest !== undefined && el.dataset.scaleMax !== undefined",
            arg=matrix.element_handle(),
            timeout=UI_STEP_S * 1000,
        )
        assert widget.get_by_test_id("pattern-x-axis").get_attribute("data-sinks") == "0"
        assert matrix.get_attribute("data-sinks-excluded") == "false"
        before = float(matrix.get_attribute("data-scale-max") or "nan")
        legend = widget.get_by_test_id("pattern-view").get_by_test_id("legend-note")
        assert "key 0: attention sink" in legend.text_content()
        assert kernel.evaluate("widget.exclude_sinks_from_scale") is False

        # a real click on the checkbox: the trait in Python, the scale and the legend
        widget.get_by_test_id("exclude-sinks").click()
        kernel.wait_for(
            "widget.exclude_sinks_from_scale",
            lambda v: v is True,
            what="exclude_sinks_from_scale after clicking the checkbox",
        )
        page.wait_for_function(
            "(el) => el.dataset.sinksExcluded === 'true'",
            arg=matrix.element_handle(),
            timeout=UI_STEP_S * 1000,
        )
        after = float(matrix.get_attribute("data-scale-max") or "nan")
        assert after < before / 2, (before, after)  # the sink took ~all of the weight
        assert "scale max over the keys that are not attention sinks" in legend.text_content()
        assert "sink key 0 capped at the top color" in legend.text_content()
        assert "llmw-token--sink" in (token.get_attribute("class") or "")  # still shown
        widget.screenshot(path=str(output_dir / "attention_sinks_widget.png"))

        # and back from Python
        kernel.evaluate("setattr(widget, 'exclude_sinks_from_scale', False) or True")
        page.wait_for_function(
            "(el) => el.dataset.sinksExcluded === 'false'",
            arg=matrix.element_handle(),
            timeout=UI_STEP_S * 1000,
        )
        assert not widget.get_by_test_id("exclude-sinks").is_checked()
    finally:
        kernel.close()
        jupyter_server.shutdown_kernels()
