"""The README's own example, exactly as written, in a real JupyterLab + Chromium: an
11-token AttentionWidget linked with a 6-token SaliencyWidget. Hovering and selecting tokens
past the end of the shorter text must not raise in the kernel; tokens link only over the
prefix both texts share, and the attention view marks the rest as not linked."""

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
from tests.integration.test_doc_snippets import python_blocks

pytestmark = pytest.mark.browser

STEP_MS = UI_STEP_S * 1000
README = Path(__file__).resolve().parents[2] / "README.md"

# Every exception raised while the kernel handles a message from the front end (a trait
# validation error in a linked widget, say), and every ERROR record logged meanwhile.
ERROR_LOG_CELL = """\
import logging
import ipywidgets

kernel_errors = []
_set_state = ipywidgets.Widget.set_state

def _recording_set_state(self, sync_data):
    try:
        return _set_state(self, sync_data)
    except Exception as error:
        kernel_errors.append(repr(error))
        raise

ipywidgets.Widget.set_state = _recording_set_state

class _Record(logging.Handler):
    def emit(self, record):
        kernel_errors.append(record.getMessage())

logging.getLogger().addHandler(_Record(level=logging.ERROR))
"""


def test_readme_linking_example_past_the_shorter_text(
    jupyter_server: JupyterServer, page: Any, output_dir: Path
) -> None:
    from playwright.sync_api import expect

    readme_cell = python_blocks(README)[0]
    assert "link_selection(attention, saliency)" in readme_cell
    name = "readme_linking.ipynb"
    write_notebook(jupyter_server.root_dir, name, [ERROR_LOG_CELL, readme_cell])
    kernel_id = open_notebook_and_run_all(page, jupyter_server, f"/lab/tree/{name}")
    attention_view = wait_for_widget(page, jupyter_server, "attention-widget")
    wait_for_widget(page, jupyter_server, "saliency-widget")
    kernel = KernelClient.connect(jupyter_server, kernel_id)
    try:
        n_long, n_short, shared = kernel.evaluate(
            "[len(attention.tokens), len(saliency.tokens), attention.linked_tokens]"
        )
        assert (n_long, n_short, shared) == (11, 6, 6)
        assert kernel.evaluate("saliency.linked_tokens") == 6
        strip = attention_view.get_by_test_id("token-strip")
        expect(strip).to_have_attribute("data-linked-tokens", "6", timeout=STEP_MS)
        unlinked = re.compile(r"\bllmw-token--unlinked\b")
        expect(strip.locator(".llmw-token--unlinked")).to_have_count(n_long - shared)
        expect(strip.get_by_test_id("token-5")).not_to_have_class(unlinked)

        # hover past the shorter text: the attention widget has it, the saliency widget not
        past = 9
        expect(strip.get_by_test_id(f"token-{past}")).to_have_class(unlinked)
        strip.get_by_test_id(f"token-{past}").hover()
        kernel.wait_for(
            "[attention.hovered_token, saliency.hovered_token]",
            lambda v: v == [past, -1],
            what="hovered_token after hovering a token past the shorter text",
        )
        # select it (a click): brushed here, nothing to brush in the shorter text
        strip.get_by_test_id(f"token-{past}").click()
        kernel.wait_for(
            "[attention.selected_tokens, saliency.selected_tokens]",
            lambda v: v == [[past], []],
            what="selected_tokens after clicking a token past the shorter text",
        )
        # a shared token links both ways, as before
        strip.get_by_test_id("token-2").click()
        kernel.wait_for(
            "[attention.selected_tokens, saliency.selected_tokens, attention.hovered_token,"
            " saliency.hovered_token]",
            lambda v: v == [[2], [2], 2, 2],
            what="a shared token selected and hovered in both widgets",
        )
        assert kernel.evaluate("kernel_errors") == []
        page.screenshot(path=str(output_dir / "readme_linking.png"))
    finally:
        kernel.close()
        jupyter_server.shutdown_kernels()
