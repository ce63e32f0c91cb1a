"""Figure export in a real JupyterLab + Chromium at devicePixelRatio 2 (docs/figures.md).

* Every save button of the attention, saliency and probe widgets downloads
  ``<widget>-<name>.png|svg``: a PNG whose IHDR size is the canvas's CSS size × 2 and equals its
  backing store (the pixels on screen), or an SVG that parses as XML with the svg element's
  width, height and viewBox.
* ``widget.save_figure(path, name)`` from Python writes the same files once the browser replies:
  ``await request`` in the same cell gets it (ipykernel handles the reply while the cell
  awaits); a blocking ``request.result()`` in that cell cannot (the kernel's event loop is
  blocked) and ends in ``TimeoutError`` after ``timeout``; requests made in a cell are written
  by the next one.
* The HTML report's figures (painted by the widgets' code) download at their declared CSS size × 2.
"""

from __future__ import annotations

import struct
import time
import xml.etree.ElementTree as ElementTree
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

DPR = 2
STEP_MS = UI_STEP_S * 1000
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

FIGURES_CELL = f"""\
from llmasos_widgets import AttentionWidget, ProbeWidget, SaliencyWidget, load_model, probe
from llmasos_widgets.probing import subject_number_dataset

model = load_model({ATTENTION_MODEL!r}, device="cpu")
result = probe(model, subject_number_dataset(120, seed=3), progress=False)
attention = AttentionWidget(model, {ATTENTION_TEXT!r})
attention.selected_layer = 1
attention.selected_heads = [0]
saliency = SaliencyWidget(model, {ATTENTION_TEXT!r})
probe_widget = ProbeWidget(result)
display(attention, saliency, probe_widget)
"""

# For each figure bar: the widget it follows and, per button, the element's expected size.
FIGURE_BARS = """() => [...document.querySelectorAll('[data-testid="figure-bar"]')].map((bar) => {
  const root = bar.previousElementSibling;
  // what lib/figures.ts counts as figures: shown canvases and svgs, in document order
  const figures = [...root.querySelectorAll("canvas[data-figure], svg[data-figure]")]
    .filter((el) => !el.closest("[hidden]"));
  return {
    widget: root.dataset.testid,
    buttons: [...bar.querySelectorAll("button")].map((b) => b.dataset.testid),
    elements: figures.map((el) => {
      const box = el.getBoundingClientRect();
      return el.tagName.toLowerCase() === "canvas"
        ? {kind: "png", cssWidth: el.clientWidth, cssHeight: el.clientHeight,
           width: el.width, height: el.height}
        : {kind: "svg", cssWidth: box.width, cssHeight: box.height};
    }),
  };
})"""


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR, after checking the signature and chunk order."""
    assert data[:8] == PNG_SIGNATURE, "not a PNG signature"
    length, kind, width, height = struct.unpack(">I4sII", data[8:24])
    assert (length, kind) == (13, b"IHDR"), "IHDR is not the first chunk"
    assert data[-8:-4] == b"IEND", "PNG does not end with IEND"
    return width, height


def svg_size(data: bytes) -> tuple[float, float, str]:
    root = ElementTree.fromstring(data)
    assert root.tag == "{http://www.w3.org/2000/svg}svg", root.tag
    return (
        float(root.get("width", "nan")),
        float(root.get("height", "nan")),
        root.get("viewBox", ""),
    )


def figure_context(browser: Any) -> Any:
    context = browser.new_context(
        viewport={"width": 1400, "height": 1000}, device_scale_factor=DPR, accept_downloads=True
    )
    context.set_default_timeout(STEP_MS)
    return context


def download(page: Any, button: Any) -> tuple[str, bytes]:
    button.scroll_into_view_if_needed()
    with page.expect_download(timeout=STEP_MS) as info:
        button.click()
    done = info.value
    return done.suggested_filename, Path(done.path()).read_bytes()


def check_file(name: str, data: bytes, expected: dict[str, Any]) -> None:
    if expected["kind"] == "png":
        assert name.endswith(".png")
        size = png_size(data)
        # the displayed size × DPR, which is also what the view drew (no resampling)
        assert size == (round(expected["cssWidth"] * DPR), round(expected["cssHeight"] * DPR)), name
        assert size == (expected["width"], expected["height"]), name
        # pHYs right after IHDR: 96 dpi x DPR, so the image prints at its on-screen size
        length, kind, x_ppm, y_ppm, unit = struct.unpack(">I4sIIB", data[33:50])
        assert (length, kind, unit) == (9, b"pHYs", 1), name
        assert x_ppm == y_ppm == round(96 * DPR / 0.0254), name
    else:
        assert name.endswith(".svg")
        width, height, view_box = svg_size(data)
        assert (width, height) == (round(expected["cssWidth"]), round(expected["cssHeight"])), name
        assert view_box == f"0 0 {width:g} {height:g}", name


def expected_sizes(bars: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """widget -> button -> the size its element had when the buttons were clicked."""
    return {b["widget"]: dict(zip(b["buttons"], b["elements"], strict=True)) for b in bars}


def run_cell(kernel: KernelClient, code: str, timeout: float = UI_STEP_S) -> None:
    """Execute ``code`` as one cell (top-level await allowed); fails on an error reply."""
    client = kernel._client
    msg_id = client.execute(code, store_history=False)
    deadline = time.monotonic() + timeout
    while True:
        reply = client.get_shell_msg(timeout=max(0.1, deadline - time.monotonic()))
        if reply["parent_header"].get("msg_id") == msg_id:
            break
    content = reply["content"]
    assert content["status"] == "ok", f"{content.get('ename')}: {content.get('evalue')}"


def test_save_buttons_and_save_figure_write_images_of_the_drawn_size(
    jupyter_server: JupyterServer, browser: Any, output_dir: Path, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    name = "figures.ipynb"
    write_notebook(jupyter_server.root_dir, name, [FIGURES_CELL])
    context = figure_context(browser)
    page = context.new_page()
    try:
        kernel_id = open_notebook_and_run_all(page, jupyter_server, f"/lab/tree/{name}")
        views = {
            w: wait_for_widget(page, jupyter_server, f"{w}-widget")
            for w in ("attention", "saliency", "probe")
        }
        for view in views.values():
            expect(view).to_be_visible()
        expect(page.get_by_test_id("save-figure-pattern")).to_have_count(1, timeout=STEP_MS)
        expect(page.locator('[data-testid="saliency-widget"][data-status="ready"]')).to_have_count(
            1
        )
        bars = page.evaluate(FIGURE_BARS)
        # the views marked here; other views (added by other features) may add figures: all
        # of them are downloaded and checked below
        buttons = {b["widget"]: b["buttons"] for b in bars}
        assert set(buttons) == {"attention-widget", "saliency-widget", "probe-widget"}
        for widget, expected in {
            "attention-widget": ["save-figure-grid", "save-figure-pattern", "save-figure-line"],
            "saliency-widget": ["save-figure-saliency"],
            "probe-widget": ["save-figure-probe"],
        }.items():
            assert [b for b in buttons[widget] if b in expected] == expected, buttons[widget]
        # 1. every button downloads a valid file of the element's size
        for bar in bars:
            widget = bar["widget"].removesuffix("-widget")
            bar_locator = views[widget].locator(
                "xpath=following-sibling::div[@data-testid='figure-bar']"
            )
            for testid, expected in zip(bar["buttons"], bar["elements"], strict=True):
                filename, data = download(page, bar_locator.get_by_test_id(testid))
                figure = testid.removeprefix("save-figure-")
                assert filename == f"{widget}-{figure}.{expected['kind']}"
                check_file(filename, data, expected)
                (output_dir / filename).write_bytes(data)

        # 2. the same figures from Python, resolved between cells
        kernel = KernelClient.connect(jupyter_server, kernel_id)
        try:
            out = tmp_path / "py"
            kernel.wait_for(
                "sorted(attention.figures)",
                lambda v: v == ["grid", "line", "pattern"],
                what="figures the attention view reported",
            )
            run_cell(
                kernel,
                f"""
import asyncio
blocked = attention.save_figure({str(out / "blocked.png")!r}, "grid", timeout=3)
try:
    blocked.result(timeout=10)  # blocks the kernel's event loop: the reply cannot be handled
    blocked_outcome = "resolved"
except Exception as err:
    blocked_outcome = type(err).__name__
awaited = attention.save_figure({str(out / "awaited.png")!r}, "grid", timeout=10)
awaited_path = str(await awaited)  # the kernel handles the reply while this cell awaits
requests = [
    attention.save_figure({str(out / "pattern.png")!r}, "pattern"),
    saliency.save_figure({str(out / "saliency.png")!r}, "saliency"),
    probe_widget.save_figure({str(out / "probe.svg")!r}, "probe"),
]
""",
            )
            assert kernel.evaluate("blocked_outcome") == "TimeoutError"
            assert kernel.evaluate("awaited_path") == str(out / "awaited.png")
            check_file(
                "awaited.png",
                (out / "awaited.png").read_bytes(),
                expected_sizes(bars)["attention-widget"]["save-figure-grid"],
            )
            kernel.wait_for("[r.done() for r in requests]", all, what="save_figure requests")
            results = kernel.evaluate("[str(r.result()) for r in requests]")
            assert results == [str(out / n) for n in ("pattern.png", "saliency.png", "probe.svg")]
            expected = expected_sizes(bars)
            check_file(
                "pattern.png",
                (out / "pattern.png").read_bytes(),
                expected["attention-widget"]["save-figure-pattern"],
            )
            check_file(
                "saliency.png",
                (out / "saliency.png").read_bytes(),
                expected["saliency-widget"]["save-figure-saliency"],
            )
            check_file(
                "probe.svg",
                (out / "probe.svg").read_bytes(),
                expected["probe-widget"]["save-figure-probe"],
            )
            assert not (out / "blocked.png").exists()
        finally:
            kernel.close()
    finally:
        context.close()


def test_report_figures_are_painted_and_download_at_their_size(
    browser: Any, tmp_path: Path, output_dir: Path
) -> None:
    import llmasos_widgets as lw

    model = lw.load_model(ATTENTION_MODEL, device="cpu")
    explanation = model.explain(ATTENTION_TEXT)
    report = explanation.to_html(tmp_path / "report.html")
    context = figure_context(browser)
    page = context.new_page()
    try:
        page.goto(report.as_uri())
        page.wait_for_selector("body[data-report-figures]", state="attached")
        canvases = page.evaluate("""() => [...document.querySelectorAll("canvas[data-figure]")]
          .map((c) => ({name: c.dataset.figure,
                        width: Number(c.dataset.width), height: Number(c.dataset.height)}))""")
        n_summaries = len(explanation.head_summaries)
        saliency = 1 if explanation.saliency is not None else 0
        assert int(page.evaluate("document.body.dataset.reportFigures")) == len(canvases)
        assert sum(c["name"].startswith("grid-") for c in canvases) == n_summaries
        assert sum(c["name"] == "saliency" for c in canvases) == saliency
        assert sum(c["name"].startswith("pattern-L") for c in canvases) >= 1
        for canvas in canvases:
            button = page.get_by_test_id(f"save-figure-{canvas['name']}")
            filename, data = download(page, button)
            assert filename == f"report-{canvas['name']}.png"
            assert png_size(data) == (canvas["width"] * DPR, canvas["height"] * DPR), filename
            (output_dir / filename).write_bytes(data)
        # a grid is painted, not blank: its first pixel row is not one color
        assert (
            page.evaluate("""() => {
          const c = document.querySelector('canvas[data-report-matrix="grid"]');
          const d = c.getContext("2d").getImageData(0, 0, c.width, 1).data;
          const colors = Array.from({length: c.width}, (_, i) => d.slice(4 * i, 4 * i + 3).join());
          return new Set(colors).size;
        }""")
            > 1
        )
    finally:
        context.close()
