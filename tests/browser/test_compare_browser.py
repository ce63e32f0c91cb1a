"""CompareWidget in a real JupyterLab + Chromium: both models' attention views and the
difference panel render, and one selection links them -- a head clicked in model A's view is
selected in model B's view and in the panel (checked in the kernel), and a head clicked in the
panel's B - A grid is selected in both sides, whose pattern views then draw that layer.
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

pytestmark = pytest.mark.browser

STEP_MS = UI_STEP_S * 1000

COMPARE_CELL = """\
import copy

import torch

import llmasos_widgets as lw

model = lw.load_model("tiny-llama", device="cpu")
changed = copy.deepcopy(model.hf_model)  # head L2H1 with zero queries: uniform attention
attention = changed.model.layers[2].self_attn
with torch.no_grad():
    attention.q_proj.weight[attention.head_dim : 2 * attention.head_dim] = 0
changed = lw.ExplainableModel(changed, model.tokenizer, name="L2H1 without queries")
comparison = lw.compare(model, changed, "the key near the cabinets")
widget = lw.CompareWidget(comparison)
a, b, panel = widget.parts
display(widget)
"""


def test_a_head_clicked_in_one_side_is_selected_in_the_other(
    jupyter_server: JupyterServer, page: Any, output_dir: Path
) -> None:
    from playwright.sync_api import expect

    name = "compare_widget.ipynb"
    write_notebook(jupyter_server.root_dir, name, [COMPARE_CELL])
    kernel_id = open_notebook_and_run_all(page, jupyter_server, f"/lab/tree/{name}")
    panel_view = wait_for_widget(page, jupyter_server, "compare-widget")
    wait_for_widget(page, jupyter_server, "attention-widget")
    sides = page.get_by_test_id("attention-widget")
    expect(sides).to_have_count(2, timeout=STEP_MS)
    view_a, view_b = sides.nth(0), sides.nth(1)
    kernel = KernelClient.connect(jupyter_server, kernel_id)
    try:
        assert kernel.evaluate("[a.selected_layer, b.selected_layer, panel.selected_layer]") == [
            -1,
            -1,
            -1,
        ]
        # the panel: four head grids, a diverging legend for B - A, both saliency maps, the lens
        for which in ("a", "b", "diff", "moved"):
            expect(panel_view.get_by_test_id(f"grid-{which}")).to_be_visible(timeout=STEP_MS)
        expect(panel_view.get_by_test_id("grid-diff").get_by_test_id("legend")).to_have_attribute(
            "data-scale", "diverging", timeout=STEP_MS
        )
        for which in ("saliency-a", "saliency-b", "lens"):
            expect(panel_view.get_by_test_id(f"map-{which}")).to_be_visible(timeout=STEP_MS)

        # 1. a head clicked in model A's grid: selected in B and in the panel
        view_a.scroll_into_view_if_needed(timeout=STEP_MS)
        click_head(view_a, 2, 1)
        kernel.wait_for(
            "[a.selected_layer, a.selected_heads, b.selected_layer, b.selected_heads,"
            " panel.selected_layer, panel.selected_heads]",
            lambda v: v == [2, [1], 2, [1], 2, [1]],
            what="selection of both sides and the panel after clicking L2H1 in model A",
        )
        expect(view_b.get_by_test_id("pattern-matrix")).to_have_attribute(
            "data-layer", "2", timeout=STEP_MS
        )

        # 2. a head clicked in the panel's B - A grid: selected in both sides
        diff_grid = panel_view.get_by_test_id("grid-diff")
        diff_grid.scroll_into_view_if_needed(timeout=STEP_MS)
        click_head(diff_grid, 1, 0)
        kernel.wait_for(
            "[a.selected_layer, a.selected_heads, b.selected_layer, b.selected_heads]",
            lambda v: v == [1, [0], 1, [0]],
            what="selection of both sides after clicking L1H0 in the B - A grid",
        )
        for view in (view_a, view_b):
            expect(view.get_by_test_id("pattern-matrix")).to_have_attribute(
                "data-layer", "1", timeout=STEP_MS
            )
        # 3. save_figure on the panel: the browser draws the B - A grid into a PNG file
        png = output_dir / "compare-grid-diff.png"
        png.unlink(missing_ok=True)
        assert kernel.evaluate(f"panel.save_figure({str(png)!r}, 'grid-diff') is not None")
        kernel.wait_for(
            f"open({str(png)!r}, 'rb').read(8).hex() if __import__('os').path.exists({str(png)!r}) "
            "else ''",
            lambda v: v == "89504e470d0a1a0a",  # the PNG signature
            what="the B - A grid saved as PNG",
        )
        view_a.scroll_into_view_if_needed(timeout=STEP_MS)
        page.screenshot(path=str(output_dir / "compare_widget.png"), full_page=True)
        panel_view.screenshot(path=str(output_dir / "compare_panel.png"))
    finally:
        kernel.close()
