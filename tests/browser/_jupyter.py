"""Helpers of the real-browser tests: a hermetic JupyterLab server, driving a notebook through
``window.jupyterapp``, and a client on the notebook's own kernel for asserting Python state.

Every wait is bounded and waits for a condition; nothing sleeps a fixed time.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import queue
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
OUTPUT_DIR = REPO_ROOT / "test-output" / "browser"

SERVER_START_S = 90.0
"""Bound on the server answering /api/status (2 busy cores: usually 5-15 s)."""
KERNEL_READY_S = 120.0
"""Bound on a notebook's kernel starting (importing torch on 2 busy cores: 20-30 s)."""
WIDGET_RENDER_S = 180.0
"""Bound on Run All reaching a rendered widget (kernel start + model load + explain)."""
UI_STEP_S = 30.0
"""Bound on one interaction's effect reaching the kernel or the DOM."""
POLL_S = 0.1
"""Longest pause between two polls of the kernel's state."""

# Lab plugins that pop up notifications over the page in a fresh profile.
_DISABLED_LAB_PLUGINS = {
    "@jupyterlab/apputils-extension:announcements": True,
}


@dataclass(frozen=True)
class JupyterServer:
    """A running server: where it is and how to reach it."""

    base_url: str
    token: str
    root_dir: Path
    runtime_dir: Path
    log_path: Path

    def url(self, path: str) -> str:
        sep = "&" if "?" in path else "?"
        return f"{self.base_url}{path}{sep}token={self.token}"

    def api(self, path: str) -> Any:
        request = urllib.request.Request(
            f"{self.base_url}{path}", headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def shutdown_kernels(self) -> None:
        """Stop every kernel this server runs (each test's kernel holds torch and a model)."""
        for kernel in self.api("/api/kernels"):
            request = urllib.request.Request(
                f"{self.base_url}/api/kernels/{kernel['id']}",
                method="DELETE",
                headers={"Authorization": f"token {self.token}"},
            )
            with urllib.request.urlopen(request, timeout=30):
                pass

    def log_tail(self, n_chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n_chars:]
        except OSError:
            return "(no server log)"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def hermetic_env(base: Path) -> dict[str, str]:
    """The server's (and so its kernels') environment: every Jupyter dir under ``base``.

    The venv's own ``share/jupyter`` (where the anywidget and ipywidgets lab extensions and
    the ipykernel kernelspec live) stays on the path: it comes from ``sys.prefix``, not from
    these variables.
    """
    dirs = {
        "JUPYTER_CONFIG_DIR": base / "config",
        "JUPYTER_DATA_DIR": base / "data",
        "JUPYTER_RUNTIME_DIR": base / "runtime",
        "JUPYTERLAB_SETTINGS_DIR": base / "lab-settings",
        "JUPYTERLAB_WORKSPACES_DIR": base / "lab-workspaces",
        "IPYTHONDIR": base / "ipython",
        "MPLCONFIGDIR": base / "matplotlib",
    }
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "JPY_"))}
    env.update({k: str(v) for k, v in dirs.items()})
    env.update(
        {
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "PYTHONHASHSEED": "0",
            "PYTHONUNBUFFERED": "1",
            # 2 shared cores: one torch thread per kernel keeps the server responsive
            "OMP_NUM_THREADS": "1",
            # kernels import the package from this checkout, installed (-e) or not
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p
            ),
        }
    )
    labconfig = dirs["JUPYTER_CONFIG_DIR"] / "labconfig"
    labconfig.mkdir(exist_ok=True)
    (labconfig / "page_config.json").write_text(
        json.dumps({"disabledExtensions": _DISABLED_LAB_PLUGINS})
    )
    return env


def check_lab_extensions(env: dict[str, str]) -> None:
    """Fail early, and clearly, when JupyterLab would not load the widget front ends."""
    listing = subprocess.run(
        [sys.executable, "-m", "jupyter", "labextension", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    text = listing.stdout + listing.stderr
    for name in ("anywidget", "@jupyter-widgets/jupyterlab-manager"):
        if name not in text:
            pytest.fail(
                f"the JupyterLab extension {name!r} is not installed in {sys.prefix}; "
                f"run `bash scripts/setup.sh`. `jupyter labextension list` said:\n{text}"
            )


def wait_for_server(proc: subprocess.Popen[bytes], server: JupyterServer) -> None:
    deadline = time.monotonic() + SERVER_START_S
    last_error = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(
                f"jupyter lab exited with code {proc.returncode} before answering; "
                f"log:\n{server.log_tail()}"
            )
        try:
            server.api("/api/status")
            return
        except (OSError, urllib.error.URLError, ValueError) as err:
            last_error = repr(err)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=POLL_S)  # returns early only if the server died
    pytest.fail(
        f"jupyter lab did not answer /api/status within {SERVER_START_S:.0f} s "
        f"({last_error}); log:\n{server.log_tail()}"
    )


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server (it shuts its kernels down), then kill its process group."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    # kernels are in the server's session (start_new_session); take any stragglers down
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def running_jupyterlab(
    python: str,
    env: dict[str, str],
    root: Path,
    log_path: Path,
    extra_options: Sequence[str] = (),
) -> Iterator[JupyterServer]:
    """``python -m jupyterlab`` serving ``root`` on 127.0.0.1 (free port, random token, no
    browser, no update or PyPI queries), answering before this yields and stopped after."""
    port, token = free_port(), secrets.token_hex(24)
    server = JupyterServer(
        base_url=f"http://127.0.0.1:{port}",
        token=token,
        root_dir=root,
        runtime_dir=Path(env["JUPYTER_RUNTIME_DIR"]),
        log_path=log_path,
    )
    command = [
        python,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.expose_app_in_browser=True",
        "--LabApp.news_url=",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",  # no PyPI queries from the server
        *extra_options,
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # CI containers run as root
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            command,
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_for_server(proc, server)
            yield server
        finally:
            stop_server(proc)


def write_notebook(root: Path, name: str, cells: list[str]) -> Path:
    """A clean notebook of code cells with the ipykernel ``python3`` kernelspec."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    path = root / name
    nbformat.write(nb, path)
    return path


# --- JupyterLab / Notebook 7 through window.jupyterapp ----------------------------------------

KERNEL_OF_CURRENT_NOTEBOOK = """() => {
  const app = window.jupyterapp;
  const panel = app && app.shell.currentWidget;
  const ctx = panel && panel.sessionContext;
  const kernel = ctx && ctx.session && ctx.session.kernel;
  return kernel && kernel.status === "idle" && kernel.connectionStatus === "connected"
    ? kernel.id : null;
}"""


def open_notebook_and_run_all(page: Any, server: JupyterServer, url_path: str) -> str:
    """Open ``url_path`` (``/lab/tree/x.ipynb`` or ``/notebooks/x.ipynb``), wait for its kernel
    to be idle, run every cell through the app's command registry; returns the kernel id.

    Run All is started, not awaited: callers wait for what the cells produce (a widget)."""
    if url_path.startswith("/lab/"):
        # a fresh workspace: otherwise JupyterLab restores the previous test's notebook, which
        # may become the current widget after ours and receive "run all"
        url_path += "&reset" if "?" in url_path else "?reset"
    page.goto(server.url(url_path), wait_until="domcontentloaded", timeout=UI_STEP_S * 2000)
    try:
        handle = page.wait_for_function(
            KERNEL_OF_CURRENT_NOTEBOOK, timeout=KERNEL_READY_S * 1000, polling=250
        )
    except Exception as err:
        pytest.fail(
            f"the kernel of {url_path} was not idle within {KERNEL_READY_S:.0f} s ({err}); "
            f"server log:\n{server.log_tail()}"
        )
    kernel_id = handle.json_value()
    page.evaluate("""() => { window.jupyterapp.commands.execute("notebook:run-all-cells"); }""")
    return str(kernel_id)


WIDGET_OR_ERROR = """(testid) => {
  const widget = document.querySelector(`[data-testid="${testid}"]`);
  if (widget && widget.getBoundingClientRect().height > 0) return "rendered";
  const panel = window.jupyterapp.shell.currentWidget;
  const cells = panel && panel.content && panel.content.model && panel.content.model.cells;
  for (let i = 0; cells && i < cells.length; i++) {
    const outputs = cells.get(i).outputs;
    for (let j = 0; outputs && j < outputs.length; j++) {
      const out = outputs.get(j).toJSON();
      if (out.output_type === "error") return `cell ${i} raised ${out.ename}: ${out.evalue}`;
    }
  }
  return null;
}"""


def wait_for_widget(page: Any, server: JupyterServer, testid: str) -> Any:
    """The widget root ``[data-testid=testid]`` once rendered; fails early, with the traceback,
    when a cell raises instead."""
    try:
        handle = page.wait_for_function(
            WIDGET_OR_ERROR, arg=testid, timeout=WIDGET_RENDER_S * 1000, polling=250
        )
    except Exception as err:
        outputs = page.locator(".jp-OutputArea-output").all_text_contents()
        pytest.fail(
            f"no {testid} rendered within {WIDGET_RENDER_S:.0f} s ({err}); cell outputs: "
            f"{outputs!r}; server log:\n{server.log_tail()}"
        )
    state = handle.json_value()
    if state != "rendered":
        pytest.fail(f"the notebook failed before rendering {testid}: {state}")
    return page.get_by_test_id(testid)


def click_head(widget: Any, layer: int, head: int) -> None:
    """Click cell (layer, head) of the head grid canvas, at the geometry it publishes."""
    canvas = widget.get_by_test_id("head-grid")
    cell = float(canvas.get_attribute("data-cell-size"))
    canvas.click(position={"x": (head + 0.5) * cell, "y": (layer + 0.5) * cell})


def grid_shape(widget: Any) -> tuple[int, int]:
    canvas = widget.get_by_test_id("head-grid")
    return int(canvas.get_attribute("data-n-layers")), int(canvas.get_attribute("data-n-heads"))


# --- the notebook's kernel, from the test process ---------------------------------------------


class KernelClient:
    """A second client on a running kernel: evaluates expressions in the user namespace.

    Execution requests queue behind the widget comm messages the browser sent earlier (the
    kernel handles both on its shell channel), so polling with :meth:`wait_for` observes the
    browser's writes once they arrive.
    """

    def __init__(self, connection_file: Path) -> None:
        from jupyter_client import BlockingKernelClient

        self._client = BlockingKernelClient()
        self._client.load_connection_file(str(connection_file))
        self._client.start_channels()
        self._client.wait_for_ready(timeout=KERNEL_READY_S)

    @classmethod
    def connect(cls, server: JupyterServer, kernel_id: str) -> KernelClient:
        path = server.runtime_dir / f"kernel-{kernel_id}.json"
        if not path.exists():
            found = sorted(p.name for p in server.runtime_dir.glob("kernel-*.json"))
            pytest.fail(f"no connection file {path.name} in {server.runtime_dir}: {found}")
        return cls(path)

    def evaluate(self, expression: str, timeout: float = UI_STEP_S) -> Any:
        """``expression`` evaluated in the notebook's namespace; its value via JSON."""
        msg_id = self._client.execute(
            "",
            store_history=False,
            user_expressions={"value": f"__import__('json').dumps({expression})"},
        )
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"kernel did not answer {expression!r} in {timeout} s")
            reply = self._client.get_shell_msg(timeout=remaining)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        result = reply["content"]["user_expressions"]["value"]
        if result["status"] != "ok":
            raise AssertionError(
                f"evaluating {expression!r} in the kernel failed: "
                f"{result.get('ename')}: {result.get('evalue')}"
            )
        return json.loads(ast.literal_eval(result["data"]["text/plain"]))

    def wait_for(
        self,
        expression: str,
        predicate: Callable[[Any], bool],
        *,
        what: str,
        timeout: float = UI_STEP_S,
    ) -> Any:
        """Poll ``expression`` until ``predicate(value)``; fails with the last value seen."""
        deadline = time.monotonic() + timeout
        value: Any = None
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if predicate(value):
                return value
            self._drain_iopub(POLL_S)
        raise AssertionError(f"{what}: still {value!r} after {timeout:.0f} s ({expression})")

    def _drain_iopub(self, timeout: float) -> None:
        """Paces polling: returns on the kernel's next broadcast (or after ``timeout``) and
        keeps this client's iopub queue from growing with the notebook's traffic."""
        with contextlib.suppress(queue.Empty):
            self._client.get_iopub_msg(timeout=timeout)

    def close(self) -> None:
        self._client.stop_channels()


# --- the AttentionWidget notebook the JupyterLab and Notebook 7 tests open ----------------------

ATTENTION_MODEL = "tiny-llama"
# An agreement sentence whose second half repeats the first: induction heads light up there.
ATTENTION_TEXT = "the keys to the old cabinet are on the table . the keys to the old cabinet are"

ATTENTION_CELL = f"""\
from llmasos_widgets import AttentionWidget, load_model

model = load_model({ATTENTION_MODEL!r}, device="cpu")
widget = AttentionWidget(model, {ATTENTION_TEXT!r})

# Every pattern message the widget sends to the browser, as [layer, head, n_tokens].
served = []
_send = widget.send
def _recording_send(content, buffers=None):
    if isinstance(content, dict) and content.get("type") == "pattern":
        served.append([content["layer"], content["head"], content["n_tokens"]])
    return _send(content, buffers)
widget.send = _recording_send
widget
"""
