"""SaliencyWidget on a generated Explanation in a real JupyterLab + Chromium.

* The matrix view renders one row per generated token (``data-rows`` = N) and its canvas is
  painted (not one color).
* Clicking a generated token in the strip reaches the kernel as ``generated_token``: the map
  shown is that token's row of the matrix (checked against ``generation.saliency``), and the
  matrix view marks the row; clicking a matrix row label does the same.
* The HTML report of the same Explanation, opened in Chromium, paints the matrix figure with
  N rows.

The token strip's boundary and probability marks are H-lc-js's (token_strip.ts) and tested
there.
"""

from __future__ import annotations

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
PROMPT = "coins box cabinet doors foot child dog pens coins"
NEW = 6

CELL = f"""\
import numpy as np
from llmasos_widgets import SaliencyWidget, load_model

model = load_model("tiny-llama", device="cpu")
generated = model.generate({PROMPT!r}, max_new_tokens={NEW})
saliency = SaliencyWidget(model, generated)
display(saliency)
"""

PAINTED_COLORS = """(c) => {
  const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  const colors = new Set();
  for (let i = 0; i < d.length; i += 4) colors.add(`${d[i]},${d[i + 1]},${d[i + 2]}`);
  return colors.size;
}"""


def test_generated_tokens_pick_rows_of_the_saliency_matrix(
    jupyter_server: JupyterServer, page: Any, tmp_path: Path, output_dir: Path
) -> None:
    from playwright.sync_api import expect

    name = "generation.ipynb"
    write_notebook(jupyter_server.root_dir, name, [CELL])
    kernel_id = open_notebook_and_run_all(page, jupyter_server, f"/lab/tree/{name}")
    view = wait_for_widget(page, jupyter_server, "saliency-widget")
    kernel = KernelClient.connect(jupyter_server, kernel_id)
    try:
        prompt_length, n_tokens = kernel.evaluate("[saliency.prompt_length, len(saliency.tokens)]")
        assert n_tokens - prompt_length == NEW
        matrix = view.get_by_test_id("saliency-matrix")
        expect(view.get_by_test_id("saliency-matrix-view")).to_be_visible(timeout=STEP_MS)
        expect(matrix).to_have_attribute("data-rows", str(NEW), timeout=STEP_MS)
        expect(matrix).to_have_attribute("data-cols", str(n_tokens), timeout=STEP_MS)
        expect(matrix).to_have_attribute("data-figure", "saliency-matrix", timeout=STEP_MS)
        assert page.evaluate(PAINTED_COLORS, matrix.element_handle()) > 2
        last = n_tokens - 1
        expect(view.get_by_test_id(f"matrix-row-{last}")).to_have_attribute(
            "data-selected", "true", timeout=STEP_MS
        )

        # click generated token 2 of the strip: its row becomes the map
        chosen = prompt_length + 2
        view.get_by_test_id("token-strip").get_by_test_id(f"token-{chosen}").click()
        kernel.wait_for(
            "[saliency.generated_token, saliency.target_position, saliency.status]",
            lambda v: v == [chosen, chosen - 1, "ready"],
            what="generated_token after clicking a generated token",
        )
        same = kernel.evaluate(
            "bool(np.array_equal(saliency.saliency.scores,"
            f" generated.generation.saliency.scores[{chosen - prompt_length}]))"
        )
        assert same, "the map shown is the clicked generated token's row"
        expect(view.get_by_test_id(f"matrix-row-{chosen}")).to_have_attribute(
            "data-selected", "true", timeout=STEP_MS
        )
        target = kernel.evaluate("saliency.target")
        expect(view.get_by_test_id("target")).to_contain_text(target, timeout=STEP_MS)

        # a matrix row label does the same
        first = prompt_length
        view.get_by_test_id(f"matrix-row-{first}").click()
        kernel.wait_for(
            "[saliency.generated_token, saliency.target_position]",
            lambda v: v == [first, first - 1],
            what="generated_token after clicking a matrix row",
        )
        view.scroll_into_view_if_needed(timeout=STEP_MS)
        page.screenshot(path=str(output_dir / "generation_saliency.png"))

        # the HTML report of the same explanation paints the matrix
        report = tmp_path / "generation_report.html"
        kernel.evaluate(f"str(generated.to_html({str(report)!r}))")
        page.goto(report.as_uri())
        page.wait_for_selector("body[data-report-figures]", state="attached")
        figure = page.locator("canvas[data-figure='saliency-matrix']")
        expect(figure).to_have_attribute("data-rows", str(NEW), timeout=STEP_MS)
        assert page.evaluate(PAINTED_COLORS, figure.element_handle()) > 2
        expect(page.get_by_test_id("report-generation-boundary")).to_be_attached()
    finally:
        kernel.close()
        jupyter_server.shutdown_kernels()
