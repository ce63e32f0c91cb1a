"""Real-browser fixtures: a hermetic JupyterLab server, Chromium through Playwright, and a
client on the notebook's own kernel for asserting Python-side state after real clicks.

* ``jupyter_server``: ``python -m jupyterlab`` on 127.0.0.1 (free port, random token), root
  dir, config, data, runtime, settings and workspaces under a temp dir, no browser. It serves
  both JupyterLab (``/lab``) and Notebook 7 (``/notebooks``) and exposes ``window.jupyterapp``.
  The server log goes to ``test-output/browser/jupyter-server.log``.
* ``browser`` (in tests/conftest.py, shared with tests/install): Debian's Chromium
  (``/usr/bin/chromium`` or ``$LLMW_CHROMIUM``) driven by Playwright. A missing Chromium is a
  failure, not a skip: ``scripts/test.sh`` installs it.
* ``KernelClient``: connects to the kernel of an open notebook through its connection file in
  the server's runtime dir and evaluates expressions there (``wait_for`` polls a condition).

Every wait is bounded and waits for a condition; nothing sleeps a fixed time.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser._jupyter import (
    OUTPUT_DIR,
    UI_STEP_S,
    JupyterServer,
    check_lab_extensions,
    hermetic_env,
    running_jupyterlab,
)


@pytest.fixture(scope="session")
def output_dir() -> Path:
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    return OUTPUT_DIR


@pytest.fixture(scope="session")
def jupyter_server(
    tmp_path_factory: pytest.TempPathFactory, output_dir: Path
) -> Iterator[JupyterServer]:
    base = tmp_path_factory.mktemp("jupyter")
    root = base / "root"
    root.mkdir()
    env = hermetic_env(base)
    check_lab_extensions(env)
    options = [
        "--ServerApp.allow_remote_access=False",
        "--JupyterNotebookApp.expose_app_in_browser=True",
        "--MappingKernelManager.cull_idle_timeout=0",
    ]
    log_path = output_dir / "jupyter-server.log"
    with running_jupyterlab(sys.executable, env, root, log_path, options) as server:
        yield server


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest, output_dir: Path) -> Iterator[Any]:
    """A fresh page; browser console errors are saved next to the screenshots."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(UI_STEP_S * 1000)
    new_page = context.new_page()
    console: list[str] = []
    new_page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
    new_page.on("pageerror", lambda err: console.append(f"pageerror: {err}"))
    try:
        yield new_page
    finally:
        log = output_dir / f"{request.node.name}.console.txt"
        log.write_text("\n".join(console))
        context.close()
