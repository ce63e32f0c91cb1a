"""Smoke check of the widget under Notebook 7 (the classic-style UI on the same server):
the notebook is listed under /tree, opens at /notebooks/, renders the widget and a head
click there reaches the kernel and brings the pattern back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.browser._jupyter import (
    ATTENTION_CELL,
    UI_STEP_S,
    JupyterServer,
    KernelClient,
    click_head,
    open_notebook_and_run_all,
    wait_for_widget,
    write_notebook,
)

pytestmark = pytest.mark.browser


def test_attention_widget_in_notebook7(
    jupyter_server: JupyterServer, page: Any, output_dir: Path
) -> None:
    pytest.importorskip("notebook", reason="Notebook 7 is not installed")
    write_notebook(jupyter_server.root_dir, "notebook7.ipynb", [ATTENTION_CELL])

    page.goto(jupyter_server.url("/tree"), wait_until="domcontentloaded")
    page.locator(".jp-DirListing-item", has_text="notebook7.ipynb").wait_for(
        state="visible", timeout=UI_STEP_S * 2000
    )

    kernel_id = open_notebook_and_run_all(page, jupyter_server, "/notebooks/notebook7.ipynb")
    assert "/notebooks/notebook7.ipynb" in page.url
    widget = wait_for_widget(page, jupyter_server, "attention-widget")
    kernel = KernelClient.connect(jupyter_server, kernel_id)
    try:
        n_tokens = widget.get_by_test_id("token-strip").locator(".llmw-token").count()
        assert n_tokens == len(kernel.evaluate("widget.tokens"))
        click_head(widget, 0, 1)
        kernel.wait_for(
            "[widget.selected_layer, widget.selected_heads, served]",
            lambda v: v == [0, [1], [[0, 1, n_tokens]]],
            what="selection and served patterns in the kernel",
        )
        widget.locator('[data-testid="pattern-matrix"][data-layer="0"][data-heads="1"]').wait_for(
            state="visible", timeout=UI_STEP_S * 1000
        )
        page.screenshot(path=str(output_dir / "attention_notebook7.png"), full_page=True)
    finally:
        kernel.close()
        jupyter_server.shutdown_kernels()
