"""The ``llmasos-widgets`` console script, run as a user types it (a subprocess of this venv's
``bin/llmasos-widgets``, in an empty directory, offline): the documented lines of docs/cli.md
and their files, ``--help``, usage errors and ``--debug``'s traceback. What the command prints
and exits with once it has loaded a model is asserted on ``cli.main`` in this process
(``run_main``): each subprocess imported torch and loaded the model again (3-11 s apiece)."""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(sys.executable).parent / "llmasos-widgets"
RUN_S = 240  # one model load + explain on 2 busy cores: usually 5-20 s


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    if not SCRIPT.is_file():
        pytest.fail(f"{SCRIPT} is missing: install the package (pip install -e '.[test]')")
    return {
        **os.environ,
        # the console script and `python` as a shell finds them: this venv first
        "PATH": os.pathsep.join([str(SCRIPT.parent), os.environ.get("PATH", "")]),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    }


def run(args: list[str], cwd: Path, env: dict[str, str], stdin: str | None = None):
    return subprocess.run(
        [str(SCRIPT), *args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=RUN_S,
        check=False,
    )


@dataclass(frozen=True)
class Done:
    """What ``run`` returns, for ``run_main``: exit code and the two streams."""

    returncode: int
    stdout: str
    stderr: str


def run_main(args: list[str], cwd: Path, stdin: str | None = None) -> Done:
    """``llmasos-widgets ARGS`` as ``cli.main`` in this process, in ``cwd``, offline; the exit
    code is what the console script (``cli.run``: ``sys.exit(main())``) exits with."""
    from llmasos_widgets import cli

    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(cwd)
        patch.setenv("HF_HUB_OFFLINE", "1")
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli.main(args, stdin=io.StringIO(stdin or ""))
            except SystemExit as exit:  # argparse: usage errors and --help
                code = exit.code if isinstance(exit.code, int) else 1
    return Done(code, out.getvalue(), err.getvalue())


def documented_lines() -> list[str]:
    page = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```bash\n(.*?)^```", page, re.MULTILINE | re.DOTALL)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


@pytest.mark.slow  # three model runs in fresh processes: 30-40 s of CPU
def test_the_documented_lines_run_and_write_what_they_say(
    tmp_path: Path, env: dict[str, str]
) -> None:
    from llmasos_widgets import Explanation

    lines = documented_lines()
    assert sum("llmasos-widgets" in line for line in lines) == 4
    for line in lines:
        done = subprocess.run(
            ["bash", "-eo", "pipefail", "-c", line],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=RUN_S,
            check=False,
        )
        assert done.returncode == 0, f"{line}\n{done.stderr}"
        assert done.stderr == "", f"{line} wrote to stderr:\n{done.stderr}"
        if "--quiet" in line:
            assert done.stdout == ""

    keys = Explanation.load(tmp_path / "keys.llmx")
    assert keys.tokens == ("<bos>", "the", "keys", "to", "the", "cabinet")
    assert keys.saliency is not None and keys.saliency.method == "occlusion"
    assert keys.saliency.target == "logit('are') - logit('is') after token 5"
    assert keys.saliency.f_x > 0  # the plural subject: 'are' beats 'is'
    report = (tmp_path / "keys.html").read_text(encoding="utf-8")
    assert "method <b>occlusion</b>" in report
    assert "logit(&#x27;are&#x27;) - logit(&#x27;is&#x27;)" in report
    # `report` of the saved explanation writes the same page as `explain --report`
    assert (tmp_path / "keys-again.html").read_text(encoding="utf-8") == report

    key = Explanation.load(tmp_path / "key.llmx")  # from stdin, no saliency
    assert key.tokens == ("<bos>", "the", "key", "near", "the", "boxes")
    assert key.saliency is None

    prompt = (tmp_path / "prompt.html").read_text(encoding="utf-8")  # from --file
    assert "method <b>input_x_gradient</b>" in prompt
    assert "Gradient saliency" in prompt and "near" in prompt


def test_summary_on_stdout(tmp_path: Path) -> None:
    done = run_main(["explain", "tiny-llama", "the keys near the box"], tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("Explanation('tiny-llama', tokens=6, layers=3, heads=4")
    # the model card's agreement: after a plural subject the top verb is plural
    next_tokens = re.findall(r"(\w+) \d\.\d\d", lines[1])
    assert next_tokens[0] in {"are", "were", "have"}, lines[1]
    assert any(line.startswith("  top induction heads: L1.") for line in lines)
    assert list(tmp_path.iterdir()) == []  # nothing written without --report/--save


def test_help_reads_well(env: dict[str, str], tmp_path: Path) -> None:
    top = run(["--help"], tmp_path, env)
    assert top.returncode == 0 and top.stderr == ""
    assert top.stdout.startswith("usage: llmasos-widgets")
    assert "Explain what a LLaMA-family language model does on a text" in top.stdout
    for text in ("explain", "report", "examples:", "%load_ext llmasos_widgets"):
        assert text in top.stdout
    sub = run(["explain", "--help"], tmp_path, env)
    assert sub.returncode == 0
    for option in ("--target", "--foil", "--method", "--device", "--dtype", "--report", "--save"):
        assert option in sub.stdout
    assert "available_methods()" in sub.stdout  # the registry, not a copy that can drift
    version = run(["--version"], tmp_path, env)
    assert version.returncode == 0 and version.stdout.strip() == "llmasos-widgets 0.1.0"


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["explain", "tiny-llama"], None, "give the text as TEXT, '-' (standard input) or --file"),
        (["explain", "tiny-llama", "a b", "--file", "x.txt"], None, "(exactly one)"),
        (["explain", "tiny-llama", "the keys", "--foil", "is"], None, "--foil needs --target"),
        (["explain", "tiny-llama", "the keys", "--dtype", "int8"], None, "invalid choice"),
        (["explain", "tiny-llama", "the keys", "--no-saliency", "--target", "are"], None, "cannot"),
        (["report", "keys.llmx"], None, "the following arguments are required: --out"),
        (["frobnicate"], None, "invalid choice: 'frobnicate'"),
    ],
)
def test_usage_errors_exit_2(
    args: list[str], stdin: str | None, message: str, tmp_path: Path, env: dict[str, str]
) -> None:
    done = run(args, tmp_path, env, stdin)
    assert done.returncode == 2
    assert done.stderr.startswith("usage: llmasos-widgets")
    assert message in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["explain", "no-such-model", "the keys"], None, "unknown model name 'no-such-model'"),
        (["explain", "tiny-llama", "-"], "  \n", "the text from standard input is empty"),
        (["explain", "tiny-llama", "--file", "missing.txt"], None, "cannot read 'missing.txt'"),
        (["explain", "tiny-llama", "the keys", "--target", "zzz"], None, "'zzz' is not in the"),
        (["report", "corrupt.llmx", "--out", "r.html"], None, "is not a readable explanation"),
        (["report", "missing.llmx", "--out", "r.html"], None, "no saved explanation at"),
    ],
)
def test_input_errors_exit_1_with_one_line(
    args: list[str], stdin: str | None, message: str, tmp_path: Path
) -> None:
    (tmp_path / "corrupt.llmx").write_bytes(b"\x00\x01 not a safetensors file")
    done = run_main(args, tmp_path, stdin)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("llmasos-widgets: error: ")
    assert message in done.stderr
    assert not (tmp_path / "r.html").exists()


def test_an_unknown_method_is_refused_with_every_registered_one(tmp_path: Path) -> None:
    from llmasos_widgets.attribution import available_methods

    done = run_main(["explain", "tiny-llama", "the keys", "--method", "nope"], tmp_path)
    assert done.returncode == 1 and done.stdout == ""
    assert "unknown attribution method 'nope'" in done.stderr
    assert all(method in done.stderr for method in available_methods())


def test_debug_shows_the_traceback(tmp_path: Path, env: dict[str, str]) -> None:
    done = run(["--debug", "explain", "no-such-model", "the keys"], tmp_path, env)
    assert done.returncode == 1
    assert "Traceback (most recent call last)" in done.stderr
    assert "ModelNotFoundError: unknown model name 'no-such-model'" in done.stderr


def test_the_cli_default_saliency_method_is_explains() -> None:
    import inspect

    from llmasos_widgets import cli
    from llmasos_widgets.explanation import explain
    from llmasos_widgets.explanation._explain import SALIENCY_METHOD

    assert cli.SALIENCY_METHOD == SALIENCY_METHOD == "auto"
    assert inspect.signature(explain).parameters["saliency_method"].default == SALIENCY_METHOD


def test_auto_is_occlusion_for_short_texts_and_gradient_for_long_ones() -> None:
    from llmasos_widgets.explanation._explain import (
        AUTO_OCCLUSION_MAX_TOKENS,
        resolve_saliency_method,
    )

    assert resolve_saliency_method("auto", AUTO_OCCLUSION_MAX_TOKENS) == "occlusion"
    assert resolve_saliency_method("auto", AUTO_OCCLUSION_MAX_TOKENS + 1) == "gradient"
    assert resolve_saliency_method("input_x_gradient", 3) == "input_x_gradient"
