"""AttentionWidget at T = 8192 in a real JupyterLab + Chromium (issue 11, level of detail).

A planted Explanation (tests/_long_context.py): query 8000 of layer 0 head 1 puts ~all of its
weight on key 100. Asserted after real pointer and keyboard input:

* the virtualised token strip keeps fewer than MAX_STRIP_SPANS token spans in the DOM, also
  after scrolling token 5000 into view; hovering it reaches Python and the overview bar marks
  it; a click on the overview bar scrolls the strip there;
* the grid's legend names its units and the estimate note (``summary_notes``);
* the pattern view at full zoom states its pooling and legend; hovering the planted block shows
  the block's max at the argmax cell (8000, 100) with Python's exact weight; zooming with the
  wheel at that cell reaches single cells, where hover shows Python's exact weights, axis labels
  name every row, a click sets ``selected_cell``; arrow keys pan; reset shows all tokens.
"""

from __future__ import annotations

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

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
T = 8192
QUERY, KEY = 8000, 100
MAX_STRIP_SPANS = 600
VIEW_MS = 120_000  # one pooled view of a T = 8192 head, computed on a busy CPU

CELL = f"""\
import sys
sys.path.insert(0, {str(REPO)!r})
from tests._long_context import planted_explanation
from llmasos_widgets.widgets import AttentionWidget

explanation = planted_explanation(
    {T}, 1, 2, planted=[(0, 1, {QUERY}, {KEY})],
    summary_notes={{"entropy": "estimated from 512 of {T} query rows (seed 0)"}},
)
w = AttentionWidget(explanation)
display(w)
"""


def cell_point(matrix: Any, query: int, key: int) -> tuple[float, float]:
    """Viewport point of cell (query, key) in the matrix's current region (scrolled into view)."""
    matrix.scroll_into_view_if_needed()
    q0, q1 = (int(v) for v in matrix.get_attribute("data-rows").split(","))
    k0, k1 = (int(v) for v in matrix.get_attribute("data-cols").split(","))
    assert q0 <= query < q1 and k0 <= key < k1, f"({query}, {key}) is outside the view"
    box = matrix.bounding_box()
    return (
        box["x"] + (key - k0 + 0.5) / (k1 - k0) * box["width"],
        box["y"] + (query - q0 + 0.5) / (q1 - q0) * box["height"],
    )


def hover_block_of(page: Any, matrix: Any, tooltip: Any, query: int, key: int) -> None:
    """Hover the pooled block holding cell (query, key): blocks are about a pixel wide at full
    zoom, so the pointer is nudged by a pixel until the tooltip's block holds the cell."""
    x, y = cell_point(matrix, query, key)
    block = None
    for dx, dy in [(0, 0), (1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, -1), (1, -1), (-1, 1)]:
        page.mouse.move(x + dx, y + dy)  # the tooltip is written in the mousemove handler
        block = tooltip.get_attribute("data-block")
        if block:
            q0, q1, k0, k1 = (int(v) for v in block.split(","))
            if q0 <= query < q1 and k0 <= key < k1:
                return
    raise AssertionError(f"no block around ({query}, {key}) reached; last block {block}")


def wait_loaded_after(page: Any, matrix: Any, previous: str | None) -> None:
    """Until the matrix paints a view newer than request ``previous``."""
    page.wait_for_function(
        "([el, prev]) => el.dataset.loadedRequest && el.dataset.loadedRequest !== prev",
        arg=[matrix.element_handle(), previous],
        timeout=VIEW_MS,
        polling=100,
    )


def test_long_context_zoom_pan_hover_and_virtual_strip(
    jupyter_server: JupyterServer, page: Any
) -> None:
    from playwright.sync_api import expect

    name = "long_context.ipynb"
    write_notebook(jupyter_server.root_dir, name, [CELL])
    kernel_id = open_notebook_and_run_all(page, jupyter_server, f"/lab/tree/{name}")
    widget = wait_for_widget(page, jupyter_server, "attention-widget")
    kernel = KernelClient.connect(jupyter_server, kernel_id)
    step = UI_STEP_S * 1000
    try:
        exact = (
            "float(explanation.pooled_attention(0, 1, rows=({q}, {q} + 1), cols=({k}, {k} + 1),"
            " shape=(1, 1)).values[0, 0])"
        )
        # --- token strip: virtualised, overview bar -------------------------------------------
        strip = widget.get_by_test_id("token-strip")
        expect(strip.get_by_test_id("token-0")).to_be_visible(timeout=step)
        spans = strip.locator(".llmw-token")
        assert 0 < spans.count() < MAX_STRIP_SPANS
        strip.evaluate("(el) => el.dispatchEvent(new CustomEvent('llmw-reveal', {detail: 5000}))")
        token = strip.get_by_test_id("token-5000")
        expect(token).to_be_visible(timeout=step)
        assert token.text_content() == "▁w5000"
        assert spans.count() < MAX_STRIP_SPANS
        token.hover()
        kernel.wait_for("w.hovered_token", lambda v: v == 5000, what="hovered_token")
        overview = widget.get_by_test_id("token-overview")
        expect(overview).to_have_attribute("data-hovered", "5000", timeout=step)
        box = overview.bounding_box()
        overview.click(position={"x": box["width"] * 6000.5 / T, "y": box["height"] / 2})
        first, last = (int(v) for v in overview.get_attribute("data-window").split(","))
        assert first <= 6000 < last and last - first < MAX_STRIP_SPANS

        # --- grid legend with units and the estimate note ---------------------------------------
        grid_legend = widget.locator(".llmw-grid-column [data-testid='legend']")
        expect(grid_legend).to_have_attribute("data-units", "nats", timeout=step)
        expect(grid_legend.get_by_test_id("legend-note")).to_contain_text("estimated from 512")
        expect(widget.get_by_test_id("grid-caption")).to_contain_text("estimated from 512")

        # --- pattern view: pooled at full zoom --------------------------------------------------
        click_head(widget, 0, 1)
        kernel.wait_for("[w.selected_layer, w.selected_heads]", lambda v: v == [0, [1]], what="h")
        assert kernel.evaluate("len(w._sent)") == 0, "no whole [T, T] pattern was sent"
        matrix = widget.locator('[data-testid="pattern-matrix"][data-heads="1"]')
        wait_loaded_after(page, matrix, None)
        assert matrix.get_attribute("data-rows") == f"0,{T}"
        assert matrix.get_attribute("data-exact") == "false"
        expect(widget.get_by_test_id("pattern-pooling")).to_contain_text("max over")
        pattern_legend = widget.get_by_test_id("pattern-view").get_by_test_id("legend")
        expect(pattern_legend).to_have_attribute("data-units", "probability")
        expect(pattern_legend.get_by_test_id("legend-note")).to_contain_text("max over")
        tooltip = widget.get_by_test_id("pattern-tooltip")
        page.mouse.move(*cell_point(matrix, QUERY, KEY))
        expect(tooltip).to_have_attribute("data-pooled", "true", timeout=step)
        hover_block_of(page, matrix, tooltip, QUERY, KEY)
        assert (tooltip.get_attribute("data-query"), tooltip.get_attribute("data-key")) == (
            str(QUERY),
            str(KEY),
        )
        planted = kernel.evaluate(exact.format(q=QUERY, k=KEY))
        assert planted > 0.99
        assert float(tooltip.get_attribute("data-weight")) == planted

        # --- wheel zoom at the planted cell down to single cells --------------------------------
        for _ in range(20):
            if matrix.get_attribute("data-exact") == "true":
                break
            previous = matrix.get_attribute("data-loaded-request")
            page.mouse.move(*cell_point(matrix, QUERY, KEY))
            page.mouse.wheel(0, -100)
            wait_loaded_after(page, matrix, previous)
        assert matrix.get_attribute("data-exact") == "true"
        while True:  # zoom buttons until every row is wide enough for its token label
            q0, q1 = (int(v) for v in matrix.get_attribute("data-rows").split(","))
            if q1 - q0 <= 24:
                break
            previous = matrix.get_attribute("data-loaded-request")
            page.mouse.move(*cell_point(matrix, QUERY, KEY))
            page.mouse.wheel(0, -100)
            wait_loaded_after(page, matrix, previous)
        y_axis = widget.get_by_test_id("pattern-y-axis")
        assert int(y_axis.get_attribute("data-labels")) == q1 - q0
        for key in (KEY, KEY + 1):
            page.mouse.move(*cell_point(matrix, QUERY, key))
            expect(tooltip).to_have_attribute("data-key", str(key), timeout=step)
            assert tooltip.get_attribute("data-pooled") == "false"
            assert tooltip.get_attribute("data-query") == str(QUERY)
            weight = kernel.evaluate(exact.format(q=QUERY, k=key))
            assert float(tooltip.get_attribute("data-weight")) == weight
        expect(tooltip).to_contain_text("▁w8000")
        page.mouse.click(*cell_point(matrix, QUERY, KEY))
        kernel.wait_for("w.selected_cell", lambda v: v == [QUERY, KEY], what="selected_cell")

        # --- pan with the keyboard, then reset --------------------------------------------------
        k0, k1 = (int(v) for v in matrix.get_attribute("data-cols").split(","))
        previous = matrix.get_attribute("data-loaded-request")
        matrix.focus()
        page.keyboard.press("ArrowRight")
        wait_loaded_after(page, matrix, previous)
        span = k1 - k0
        shift = round(0.25 * span)
        assert matrix.get_attribute("data-cols") == f"{k0 + shift},{k1 + shift}"
        key = k1 + shift - 1
        page.mouse.move(*cell_point(matrix, QUERY, key))
        expect(tooltip).to_have_attribute("data-key", str(key), timeout=step)
        assert float(tooltip.get_attribute("data-weight")) == kernel.evaluate(
            exact.format(q=QUERY, k=key)
        )
        previous = matrix.get_attribute("data-loaded-request")
        widget.get_by_test_id("zoom-reset").click()
        wait_loaded_after(page, matrix, previous)
        assert matrix.get_attribute("data-rows") == f"0,{T}"
        assert matrix.get_attribute("data-cols") == f"0,{T}"
    finally:
        kernel.close()
