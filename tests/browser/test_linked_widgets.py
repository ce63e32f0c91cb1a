"""AttentionWidget, SaliencyWidget and ProbeWidget linked with ``link_selection`` in a real
JupyterLab + Chromium: a click in one widget's view reaches the kernel, the kernel-side links
carry it to the other widgets, and their views show it.

* Clicking probe point ``j`` sets ``selected_layer = j - 1`` everywhere (docs/probing.md: the
  residual after ``j`` decoder layers is decoder layer ``j - 1``'s output); the attention grid
  highlights that layer's label and the saliency heatmap marks the row of residual site ``j``.
* Clicking a token in the saliency view retargets it (``target_position``, one recomputation,
  status back to ``ready``) and brushes that token, which the attention view then shows.
"""

from __future__ import annotations

import re
from pathlib import Path
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

LINKED_CELL = f"""\
from llmasos_widgets import (
    AttentionWidget, ProbeWidget, SaliencyWidget, link_selection, load_model, probe,
)
from llmasos_widgets.probing import subject_number_dataset

model = load_model({ATTENTION_MODEL!r}, device="cpu")
result = probe(model, subject_number_dataset(200, seed=11), progress=False)

probe_widget = ProbeWidget(result)
saliency = SaliencyWidget(model, {ATTENTION_TEXT!r})
attention = AttentionWidget(model, {ATTENTION_TEXT!r})
selection = link_selection(attention, saliency, probe_widget)

# every status the saliency widget goes through after this cell: one entry per change
statuses = []
saliency.observe(lambda change: statuses.append(change["new"]), "status")
display(probe_widget, saliency, attention)
"""

# A point inside `el` that a real click reaches `el` at (grid lines and the baseline are drawn
# over the probe plot's column rects): scans the column's vertical center line outward from
# the middle. Viewport coordinates, or null.
HITTABLE_POINT = """(el) => {
  const box = el.getBoundingClientRect();
  const x = box.left + box.width / 2;
  const mid = box.top + box.height / 2;
  for (let d = 0; d < box.height / 2; d += 2) {
    for (const y of [mid - d, mid + d]) {
      const hit = document.elementFromPoint(x, y);
      if (hit === el || (hit && el.contains(hit))) return { x, y };
    }
  }
  return null;
}"""


def click_visible_part(page: Any, locator: Any) -> None:
    """A real mouse click on a point of ``locator`` that is not covered by another element."""
    locator.scroll_into_view_if_needed(timeout=STEP_MS)
    point = page.evaluate(HITTABLE_POINT, locator.element_handle())
    assert point is not None, "every point of the probe column is covered by another element"
    page.mouse.click(point["x"], point["y"])


def test_probe_click_and_saliency_token_click_reach_linked_widgets(
    jupyter_server: JupyterServer, page: Any, output_dir: Path
) -> None:
    from playwright.sync_api import expect

    name = "linked_widgets.ipynb"
    write_notebook(jupyter_server.root_dir, name, [LINKED_CELL])
    kernel_id = open_notebook_and_run_all(page, jupyter_server, f"/lab/tree/{name}")
    probe_view = wait_for_widget(page, jupyter_server, "probe-widget")
    saliency_view = wait_for_widget(page, jupyter_server, "saliency-widget")
    attention_view = wait_for_widget(page, jupyter_server, "attention-widget")
    kernel = KernelClient.connect(jupyter_server, kernel_id)
    try:
        layers = kernel.evaluate("[int(j) for j in result.layers]")
        n_layers = kernel.evaluate("attention.n_layers")
        n_heads = kernel.evaluate("attention.n_heads")
        assert layers == list(range(n_layers + 1)), "one probe point per residual stream"
        tokens = kernel.evaluate("attention.tokens")
        assert kernel.evaluate("saliency.tokens") == tokens
        assert kernel.evaluate("saliency.sites") == layers
        initial = kernel.evaluate(
            "[attention.selected_layer, saliency.selected_layer, probe_widget.selected_layer,"
            " saliency.target_position, saliency.status, statuses]"
        )
        assert initial == [-1, -1, -1, len(tokens) - 1, "ready", []]
        for view in (probe_view, saliency_view, attention_view):
            expect(view).to_be_visible(timeout=STEP_MS)
        expect(probe_view).to_have_attribute("data-selected-residual", "-1", timeout=STEP_MS)

        # 1. click probe point j (not the embeddings point, not the last): selected_layer j - 1
        point = 2
        layer = point - 1
        column = probe_view.get_by_test_id(f"layer-{point}")
        expect(column).to_have_attribute("data-selected", "false", timeout=STEP_MS)
        click_visible_part(page, column)
        kernel.wait_for(
            "[attention.selected_layer, saliency.selected_layer, probe_widget.selected_layer]",
            lambda v: v == [layer, layer, layer],
            what=f"selected_layer of the linked widgets after clicking probe point {point}",
        )
        # the probe plot highlights the clicked column
        expect(column).to_have_attribute("data-selected", "true", timeout=STEP_MS)
        expect(probe_view).to_have_attribute("data-selected-residual", str(point), timeout=STEP_MS)
        # the attention grid highlights that layer's label, and only it
        selected_label = re.compile(r"\bllmw-layer-label--selected\b")
        for other in range(n_layers):
            label = attention_view.get_by_test_id(f"layer-label-{other}")
            if other == layer:
                expect(label).to_have_class(selected_label, timeout=STEP_MS)
            else:
                expect(label).not_to_have_class(selected_label, timeout=STEP_MS)
        # a layer chosen elsewhere shows all of its heads in the attention widget, as a
        # layer-label click does: the heads reach the kernel and their patterns are drawn
        kernel.wait_for(
            "attention.selected_heads",
            lambda v: v == list(range(n_heads)),
            what="attention heads after a linked layer selection",
        )
        expect(attention_view.get_by_test_id("pattern-matrix")).to_have_attribute(
            "data-layer", str(layer), timeout=STEP_MS
        )
        # the saliency heatmap marks the row of residual site `point`, and only it
        for site in layers:
            expect(saliency_view.get_by_test_id(f"site-label-{site}")).to_have_attribute(
                "data-selected", str(site == point).lower(), timeout=STEP_MS
            )

        # 2. click a token of the saliency view: it becomes the target (one recomputation)
        # and the brushed token, which reaches the attention widget through the link
        target = 6  # "cabinet"
        assert target != len(tokens) - 1
        saliency_token = saliency_view.get_by_test_id("token-strip").get_by_test_id(
            f"token-{target}"
        )
        assert saliency_token.text_content() == tokens[target]
        saliency_token.click()
        kernel.wait_for(
            "[saliency.target_position, saliency.saliency.target_position, saliency.status]",
            lambda v: v == [target, target, "ready"],
            what="saliency target after clicking a token",
        )
        after = kernel.evaluate(
            "[statuses, saliency.selected_tokens, attention.selected_tokens,"
            " probe_widget.selected_tokens, attention.selected_layer, saliency.target]"
        )
        statuses, *selected_tokens, layer_after, target_text = after
        assert len(statuses) == 2 and statuses[0].startswith("computing"), statuses
        assert statuses[1] == "ready"
        assert selected_tokens == [[target], [target], [target]]
        assert layer_after == layer, "retargeting the saliency kept the selected layer"
        assert f"after token {target}" in target_text

        # the saliency view: ready again, the clicked token is the target and is selected
        expect(saliency_view).to_have_attribute("data-status", "ready", timeout=STEP_MS)
        expect(saliency_token).to_have_class(
            re.compile(r"\bllmw-saliency-target\b"), timeout=STEP_MS
        )
        expect(saliency_token).to_have_class(
            re.compile(r"\bllmw-token--selected\b"), timeout=STEP_MS
        )
        expect(saliency_view.get_by_test_id("target")).to_contain_text(target_text, timeout=STEP_MS)
        # the attention view's token strip shows the token selected, and only it
        attention_strip = attention_view.get_by_test_id("token-strip")
        expect(attention_strip.locator(".llmw-token--selected")).to_have_count(1, timeout=STEP_MS)
        expect(attention_strip.get_by_test_id(f"token-{target}")).to_have_class(
            re.compile(r"\bllmw-token--selected\b"), timeout=STEP_MS
        )

        # one screenshot of all three widgets, hover cleared: the pointer leaves the strip and
        # the attention grid goes back to its head summary
        page.mouse.move(0, 0)
        kernel.wait_for(
            "[attention.hovered_token, saliency.hovered_token]",
            lambda v: v == [-1, -1],
            what="hovered_token after the pointer left the saliency view",
        )
        expect(attention_view.get_by_test_id("grid-caption")).to_contain_text(
            "head summary", timeout=STEP_MS
        )
        # a viewport tall enough to show the three widgets without scrolling
        probe_view.scroll_into_view_if_needed(timeout=STEP_MS)
        bottom = page.evaluate(
            "(el) => el.getBoundingClientRect().bottom", attention_view.element_handle()
        )
        viewport = page.viewport_size
        height = int(min(5000, max(viewport["height"], bottom + 60)))
        page.set_viewport_size({"width": viewport["width"], "height": height})
        page.wait_for_function(
            """([top, bottom]) => top.getBoundingClientRect().top >= 0
                && bottom.getBoundingClientRect().bottom <= window.innerHeight""",
            arg=[probe_view.element_handle(), attention_view.element_handle()],
            timeout=STEP_MS,
        )
        page.screenshot(path=str(output_dir / "linked_widgets.png"))
    finally:
        kernel.close()
        jupyter_server.shutdown_kernels()
