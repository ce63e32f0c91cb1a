"""What the table renderers of ``bench/tables.py`` share: the JSON they read, and formatting."""

from __future__ import annotations

import ast
import json
from functools import cache
from pathlib import Path
from typing import Any

# Load average above this share of the CPUs (plus the bench itself) counts as "under load".
LOADED = 0.25


class Sources:
    """The committed JSON: ``bench/results/<name>.json`` and the bundled model's files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.results = root / "bench" / "results"
        self.model_dir = root / "llmasos_widgets" / "models" / "tiny-llama"

    def has(self, name: str) -> bool:
        return (self.results / f"{name}.json").is_file()

    def result(self, name: str) -> dict[str, Any]:
        path = self.results / f"{name}.json"
        if not path.is_file():
            raise SystemExit(
                f"{path.relative_to(self.root)} is missing: run the bench with --results "
                "(commands at the top of bench/RESULTS.md)"
            )
        return _load(path)

    def eval_report(self) -> dict[str, Any]:
        return _load(self.model_dir / "eval.json")

    def test_constant(self, test_file: str, name: str) -> Any:
        """A module-level constant of a test file, read without importing it."""
        path = self.root / test_file
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == name for t in node.targets
            ):
                return ast.literal_eval(node.value)
        raise SystemExit(f"{test_file} has no constant {name}; the tables quote it")


@cache
def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def run_line(result: dict[str, Any], command: str) -> str:
    """Command, date, machine, versions and load of a run, as one paragraph."""
    env = result["environment"]
    if "source" in env:  # figures transcribed from an earlier write-up
        return (
            f"`{command}`: figures of a run on {env['date_utc']} ({env['machine']}), "
            f"transcribed from {env['source']}; not re-measured since."
        )
    date = env["date_utc"].replace("T", " ").replace("+00:00", " UTC")
    machine = env.get("platform") or env.get("machine", "")
    cpu = env.get("cpu") or env.get("processor", "")
    gpu = f", {env['gpu']}" if env.get("gpu") else ""
    python = f"Python {env['python']}, " if env.get("python") else ""
    line = (
        f"`{command}` ({date}; {machine}, {cpu}, {env['cpu_count']} CPUs{gpu}, "
        f"{env['torch_threads']} torch threads; {python}torch {env['torch']}, transformers "
        f"{env['transformers']})."
    )
    return f"{line} {load_sentence(env)}".rstrip()


def load_sentence(env: dict[str, Any]) -> str:
    start = env.get("load_average_start", env.get("load_average"))
    loads = [x for x in (start, env.get("load_average_end")) if x]
    if not loads:
        return ""
    peak = max(x[0] for x in loads)
    span = " → ".join(f"{x[0]:.1f}" for x in loads)
    if peak > 1 + LOADED * env["cpu_count"]:
        return (
            f"**Taken under load**: 1-minute load average {span} on {env['cpu_count']} CPUs "
            "(other jobs were running), so times are noisy."
        )
    return f"1-minute load average {span} (an otherwise idle machine)."


def met(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def table(header: list[str], rows: list[list[str]], align: str | None = None) -> str:
    """A markdown table; ``align`` has one character per column, ``l`` or ``r``."""
    align = align or "l" * len(header)
    rule = ["---:" if a == "r" else "---" for a in align]
    lines = [header, rule, *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def mib(n: float) -> str:
    return f"{n / 2**20:.0f}"


def size(n: float | None) -> str:
    if n is None:
        return "-"
    for unit, div in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= div:
            return f"{n / div:.1f} {unit}"
    return f"{int(n)} B"


def percent(x: float, digits: int = 1) -> str:
    return f"{100 * x:.{digits}f}%"


def site_label(site: int) -> str:
    """Residual site ``i``: ``emb`` for the embeddings, else the output of layer ``L{i-1}``."""
    return "emb" if site == 0 else f"after L{site - 1}"


def number(x: float) -> str:
    """A relative error in a few significant digits."""
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 1e-3:
        return f"{x:.3g}"
    return f"{x:.1e}"
