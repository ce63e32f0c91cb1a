"""PatchingWidget linked to an AttentionWidget in a real JupyterLab + Chromium: clicking a
head-map cell selects that layer and head in the attention widget, clicking a residual-map
cell selects the decoder layer whose output the site is and the token, all read back in
Python; the prompts show as text with the differing token marked."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.browser._jupyter import (
    UI_STEP_S,
    JupyterServer,
    KernelClient,
    open_notebook_and_run_all,
    wait_for_widget,
    write_notebook,
)

pytestmark = pytest.mark.browser

STEP_MS = UI_STEP_S * 1000

CELL = """\
from llmasos_widgets import AttentionWidget, PatchingWidget, activation_patching, link_selection
from llmasos_widgets import load_model
from llmasos_widgets.interventions import agreement_twins

model = load_model("tiny-llama", device="cpu")
twin = agreement_twins(1, seed=0)[0]
result = activation_patching(model, twin.clean, twin.corrupted, target=twin.target)
patching = PatchingWidget(result)
attention = AttentionWidget(model, twin.clean)
selection = link_selection(patching, attention)
display(patching, attention)
"""


def click_cell(view: Any, testid: str, row: int, col: int) -> None:
    """A real click in the middle of cell (row, col) of a map canvas, at its published geometry."""
    canvas = view.get_by_test_id(testid)
    canvas.scroll_into_view_if_needed(timeout=STEP_MS)
    width = float(canvas.get_attribute("data-cell-width"))
    height = float(canvas.get_attribute("data-cell-height"))
    canvas.click(position={"x": (col + 0.5) * width, "y": (row + 0.5) * height})


def test_clicking_patching_cells_selects_heads_layers_and_tokens_in_the_attention_widget(
    jupyter_server: JupyterServer, page: Any, output_dir: Path
) -> None:
    from playwright.sync_api import expect

    name = "patching_linked.ipynb"
    write_notebook(jupyter_server.root_dir, name, [CELL])
    kernel_id = open_notebook_and_run_all(page, jupyter_server, f"/lab/tree/{name}")
    view = wait_for_widget(page, jupyter_server, "patching-widget")
    wait_for_widget(page, jupyter_server, "attention-widget")
    kernel = KernelClient.connect(jupyter_server, kernel_id)
    try:
        tokens, corrupted, subject = kernel.evaluate(
            "[list(result.clean_tokens), list(result.corrupted_tokens), twin.subject_position]"
        )
        assert kernel.evaluate("[patching.selected_layer, attention.selected_layer]") == [-1, -1]
        # both prompts as text, the differing token (the subject) marked, and only it
        for i, token in enumerate(tokens):
            clean_span = view.get_by_test_id(f"clean-token-{i}")
            expect(clean_span).to_have_text(token, timeout=STEP_MS)
            expect(view.get_by_test_id(f"corrupted-token-{i}")).to_have_text(corrupted[i])
            expect(clean_span).to_have_attribute("data-diff", str(i == subject).lower())
        expect(view.get_by_test_id("legend")).to_have_attribute("data-scale", "diverging")
        expect(view.get_by_test_id("head-map")).to_have_attribute("data-figure", "patching-heads")

        # 1. a head-map cell: that layer and head everywhere
        click_cell(view, "head-map", 2, 3)
        kernel.wait_for(
            "[attention.selected_layer, attention.selected_heads, patching.selected_heads]",
            lambda v: v == [2, [3], [3]],
            what="attention selection after clicking head-map cell (L2, H3)",
        )
        expect(view).to_have_attribute("data-selected-layer", "2", timeout=STEP_MS)
        expect(view).to_have_attribute("data-selected-heads", "3", timeout=STEP_MS)

        # 2. a residual-map cell: site `after L1` is decoder layer 1's output; the token too
        click_cell(view, "residual-map", 2, subject)
        kernel.wait_for(
            "[attention.selected_layer, attention.selected_tokens]",
            lambda v: v == [1, [subject]],
            what="attention layer and token after clicking residual cell (after L1, subject)",
        )
        expect(view).to_have_attribute("data-selected-tokens", str(subject), timeout=STEP_MS)
        attention_strip = page.get_by_test_id("attention-widget").get_by_test_id("token-strip")
        expect(attention_strip.get_by_test_id(f"token-{subject}")).to_have_class(
            re.compile(r"\bllmw-token--selected\b"), timeout=STEP_MS
        )
        view.screenshot(path=str(output_dir / "patching_widget.png"))
    finally:
        kernel.close()


DLA_CELL = """\
from llmasos_widgets import PatchingWidget, load_model, logit_attribution

model = load_model("tiny-llama", device="cpu")
dla = logit_attribution(model, "the keys near the cabinet", target=(" are", " is"))
view = PatchingWidget(dla)
display(view)
"""


def test_a_logit_attribution_colors_the_text_by_the_clicked_head(
    jupyter_server: JupyterServer, page: Any
) -> None:
    """One text, no corrupted row; clicking head-map cell (L2, H3) selects it and colors each
    token by that head's contribution there (the values the kernel holds, as the tooltip text)."""
    from playwright.sync_api import expect

    name = "logit_attribution.ipynb"
    write_notebook(jupyter_server.root_dir, name, [DLA_CELL])
    kernel_id = open_notebook_and_run_all(page, jupyter_server, f"/lab/tree/{name}")
    view = wait_for_widget(page, jupyter_server, "patching-widget")
    kernel = KernelClient.connect(jupyter_server, kernel_id)
    try:
        expect(view.get_by_test_id("prompt-corrupted")).to_have_count(0, timeout=STEP_MS)
        expect(view.get_by_test_id("prompt-clean")).to_contain_text("text:")
        expect(view).to_have_attribute("data-colored-head", "")
        click_cell(view, "head-map", 2, 3)
        kernel.wait_for(
            "[view.selected_layer, view.selected_heads]",
            lambda v: v == [2, [3]],
            what="selection after clicking head-map cell (L2, H3)",
        )
        expect(view).to_have_attribute("data-colored-head", "2,3", timeout=STEP_MS)
        values = kernel.evaluate("[float(v) for v in dla.heads[2, 3]]")
        for i, value in enumerate(values):
            shown = f"{'+' if value >= 0 else ''}{value:.3f}"
            expect(view.get_by_test_id(f"clean-token-{i}")).to_have_attribute(
                "data-contribution", shown
            )
        # a residual (component) row selects its layer: row 6 is "L2 MLP"
        click_cell(view, "residual-map", 6, 1)
        kernel.wait_for(
            "[view.selected_layer, view.selected_tokens]",
            lambda v: v == [2, [1]],
            what="selection after clicking component row L2 MLP, token 1",
        )
    finally:
        kernel.close()
