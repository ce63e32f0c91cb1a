"""The three widgets, linked, in a marimo app (notebooks/marimo_linked.py) served by
``marimo run --headless --no-token`` and driven in Chromium.

marimo renders each ``mo.ui.anywidget`` in a shadow root; Playwright's locators pierce it. What
is asserted: the three widgets render; hovering a token in the saliency view marks the same
token hovered in the attention view, and back (the browser writes ``hovered_token``, the
kernel's ``link_selection`` observers copy it, marimo sends it to the other view); a head click
in the attention grid draws that head's pattern (the custom-message round trip with binary
buffers), and the layer reaches the saliency and probe views; a save button downloads an SVG,
and ``save_figure`` called in the kernel (an app button) writes the same SVG.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
import urllib.request
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser._jupyter import (
    POLL_S,
    REPO_ROOT,
    SERVER_START_S,
    UI_STEP_S,
    WIDGET_RENDER_S,
    click_head,
    free_port,
    hermetic_env,
    stop_server,
)

pytestmark = pytest.mark.browser

APP = REPO_ROOT / "notebooks" / "marimo_linked.py"
STEP_MS = UI_STEP_S * 1000
HOVERED = re.compile(r"(^|\s)llmw-token--hovered(\s|$)")


@pytest.fixture
def marimo_app(tmp_path: Path, output_dir: Path) -> Iterator[str]:
    """``marimo run`` of the example app on a free port; yields its URL."""
    env = hermetic_env(tmp_path)
    for name in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME"):
        env[name] = str(tmp_path / name.lower())
    port = free_port()
    log_path = output_dir / "marimo-server.log"
    command = [sys.executable, "-m", "marimo", "run", str(APP), "--headless", "--no-token"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            command, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}/"
        try:
            deadline = time.monotonic() + SERVER_START_S
            while True:
                if proc.poll() is not None:
                    tail = log_path.read_text()[-3000:]
                    pytest.fail(f"marimo exited ({proc.returncode}): {tail}")
                with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=5) as answer:
                    if answer.status == 200:
                        break
                if time.monotonic() > deadline:
                    pytest.fail(f"marimo did not answer {url} in {SERVER_START_S:.0f} s")
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=POLL_S)
            yield url
        finally:
            stop_server(proc)


def hovered(widget: Any, token: int) -> bool:
    classes = widget.get_by_test_id(f"token-{token}").get_attribute("class") or ""
    return "llmw-token--hovered" in classes.split()


def test_marimo_app_renders_links_and_exports_the_three_widgets(
    marimo_app: str, page: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    page.goto(marimo_app)
    views = {}
    for name in ("probe", "saliency", "attention"):
        view = page.get_by_test_id(f"{name}-widget")
        try:
            expect(view).to_have_count(1, timeout=WIDGET_RENDER_S * 1000)
        except AssertionError:
            text = page.locator("body").inner_text()[-2000:]
            pytest.fail(f"no {name} widget in the marimo app; page text: {text}")
        views[name] = view
        expect(view).to_be_visible()
    saliency, attention, probe = views["saliency"], views["attention"], views["probe"]
    expect(saliency).to_have_attribute("data-status", "ready", timeout=STEP_MS)

    # 1. hover links through the kernel both ways
    saliency.get_by_test_id("token-3").hover()
    expect(attention.get_by_test_id("token-3")).to_have_class(HOVERED)
    # Leave the saliency view first, as a hand does on its way to the other widget. marimo
    # posts each widget's update as its own HTTP request, so a leave (-1) and a hover in
    # another widget sent in the same millisecond may reach the kernel in either order; a
    # pointer that jumps between widgets in one event is not what this step checks.
    page.mouse.move(0, 0)
    expect(attention.get_by_test_id("token-3")).not_to_have_class(HOVERED)
    attention.get_by_test_id("token-5").hover()
    expect(saliency.get_by_test_id("token-5")).to_have_class(HOVERED)
    assert not hovered(saliency, 3)

    # 2. a head click loads that head's pattern and selects its layer in the linked views
    layer, head = 1, 0
    click_head(attention, layer, head)
    matrix = attention.get_by_test_id("pattern-matrix")
    expect(matrix).to_have_count(1, timeout=STEP_MS)
    expect(matrix).to_have_attribute("data-layer", str(layer))
    expect(matrix).to_have_attribute("data-heads", str(head))
    expect(saliency.get_by_test_id(f"site-label-{layer + 1}")).to_have_attribute(
        "data-selected", "true", timeout=STEP_MS
    )
    expect(probe.get_by_test_id(f"layer-{layer + 1}")).to_have_attribute("data-selected", "true")

    # 3. figure export works in marimo's shadow DOM too
    button = page.get_by_test_id("save-figure-probe")
    with page.expect_download(timeout=STEP_MS) as info:
        button.click()
    assert info.value.suggested_filename == "probe-probe.svg"
    svg = ElementTree.fromstring(Path(info.value.path()).read_bytes())
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    box = probe.get_by_test_id("probe-plot").bounding_box()
    assert (float(svg.get("width", 0)), float(svg.get("height", 0))) == (
        round(box["width"]),
        round(box["height"]),
    )
    assert os.path.getsize(info.value.path()) > 1000

    # 4. save_figure from Python (the app's button calls it in the kernel): the kernel asks the
    # view, the view replies with the SVG, the kernel writes it next to the app (its cwd)
    page.get_by_role("button", name="save the probe plot to figures/probe.svg").click()
    written = tmp_path / "figures" / "probe.svg"
    deadline = time.monotonic() + UI_STEP_S
    while not (written.exists() and written.stat().st_size > 0) and time.monotonic() < deadline:
        page.wait_for_timeout(POLL_S * 1000)  # a poll interval, not a fixed wait for an effect
    assert written.exists(), "save_figure from the kernel wrote no file"
    from_python = ElementTree.fromstring(written.read_bytes())
    assert (from_python.get("width"), from_python.get("height")) == (
        svg.get("width"),
        svg.get("height"),
    )
