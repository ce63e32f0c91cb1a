"""AttentionWidget in a real JupyterLab + Chromium: real hover and clicks change the Python
traits, and the selected head's pattern is served by the kernel and drawn in the browser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.browser._jupyter import (
    ATTENTION_CELL,
    ATTENTION_TEXT,
    UI_STEP_S,
    JupyterServer,
    KernelClient,
    click_head,
    grid_shape,
    open_notebook_and_run_all,
    wait_for_widget,
    write_notebook,
)

pytestmark = pytest.mark.browser


def test_hover_and_head_click_reach_the_kernel(
    jupyter_server: JupyterServer, page: Any, output_dir: Path
) -> None:
    name = "attention.ipynb"
    write_notebook(jupyter_server.root_dir, name, [ATTENTION_CELL])
    kernel_id = open_notebook_and_run_all(page, jupyter_server, f"/lab/tree/{name}")
    widget = wait_for_widget(page, jupyter_server, "attention-widget")
    kernel = KernelClient.connect(jupyter_server, kernel_id)
    try:
        tokens = kernel.evaluate("widget.tokens")
        assert tokens[0] == "<bos>" and len(tokens) == len(ATTENTION_TEXT.split()) + 1
        strip = widget.get_by_test_id("token-strip")
        assert strip.locator(".llmw-token").count() == len(tokens)
        assert kernel.evaluate("[widget.hovered_token, widget.selected_layer, served]") == [
            -1,
            -1,
            [],
        ]

        # hover: the view reacts at once, the kernel after the debounced save
        hovered = 5  # "cabinet"
        token = widget.get_by_test_id(f"token-{hovered}")
        assert token.text_content() == tokens[hovered]
        token.hover()
        page.wait_for_function(
            "(el) => el.classList.contains('llmw-token--hovered')",
            arg=token.element_handle(),
            timeout=UI_STEP_S * 1000,
        )
        kernel.wait_for(
            "widget.hovered_token", lambda v: v == hovered, what="hovered_token in the kernel"
        )

        # click a head cell: selection reaches Python, Python serves the pattern,
        # the browser decodes and draws it
        n_layers, n_heads = grid_shape(widget)
        assert [n_layers, n_heads] == kernel.evaluate("[widget.n_layers, widget.n_heads]")
        layer, head = n_layers - 1, n_heads - 1  # not the defaults, not head 0
        click_head(widget, layer, head)
        kernel.wait_for(
            "[widget.selected_layer, widget.selected_heads]",
            lambda v: v == [layer, [head]],
            what="selection in the kernel after clicking the grid",
        )
        kernel.wait_for(
            "served",
            lambda v: [layer, head, len(tokens)] in v,
            what="pattern messages sent by the kernel",
        )
        matrix = widget.locator(
            f'[data-testid="pattern-matrix"][data-layer="{layer}"][data-heads="{head}"]'
        )
        matrix.wait_for(state="visible", timeout=UI_STEP_S * 1000)
        assert matrix.get_attribute("data-n-tokens") == str(len(tokens))
        page.wait_for_function(
            "(el) => Number(el.dataset.patternsLoaded || 0) >= 1",
            arg=widget.element_handle(),
            timeout=UI_STEP_S * 1000,
        )
        # the browser got exactly what the kernel sent: one pattern, the clicked head
        assert kernel.evaluate("served") == [[layer, head, len(tokens)]]
        assert widget.get_attribute("data-patterns-loaded") == "1"

        # the drawn matrix is not blank: causal attention puts color on the diagonal
        painted = page.evaluate(
            """(canvas) => {
              const ctx = canvas.getContext("2d");
              const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
              let painted = 0;
              for (let i = 3; i < data.length; i += 4) if (data[i] > 0) painted++;
              return painted / (canvas.width * canvas.height);
            }""",
            matrix.element_handle(),
        )
        assert painted > 0.2, f"pattern matrix is almost empty ({painted:.0%} painted)"

        page.screenshot(path=str(output_dir / "attention_jupyterlab.png"), full_page=True)
        widget.screenshot(path=str(output_dir / "attention_jupyterlab_widget.png"))
    finally:
        kernel.close()
        jupyter_server.shutdown_kernels()
