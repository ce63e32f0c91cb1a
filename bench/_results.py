"""Where a benchmark's JSON goes and what every JSON records about the run.

Every bench writes its raw figures to ``bench/out/<name>.json`` (scratch, git-ignored); with
``--results`` it also writes ``bench/results/<name>.json``, the committed figures that
``bench/tables.py`` turns into the tables of README.md, docs/ and bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
RESULTS = HERE / "results"


def add_output_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    """``--out`` (scratch JSON) and ``--results`` (also write the committed JSON)."""
    parser.add_argument(
        "--out", type=Path, default=OUT / f"{name}.json", help="scratch JSON (default: %(default)s)"
    )
    parser.add_argument(
        "--results",
        action="store_true",
        help=f"also write bench/results/{name}.json, the figures bench/tables.py publishes",
    )


def load_average() -> list[float] | None:
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def cpu_name() -> str:
    """The CPU's model name (``platform.processor()`` is empty on most Linux systems)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict[str, Any]:
    """Date, machine and library versions of this run; call at the start of the run."""
    import torch
    import transformers

    info: dict[str, Any] = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "load_average_start": load_average(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def write(
    name: str,
    *,
    environment: dict[str, Any],
    config: dict[str, Any],
    figures: dict[str, Any],
    out: Path,
    results: bool,
) -> list[Path]:
    """Write ``{"benchmark", "environment", "config", **figures}`` to ``out`` (and results/).

    The load average at the end goes into the environment: with the one at the start it says
    whether the figures were taken on a loaded machine.
    """
    payload = {
        "benchmark": name,
        "environment": {**environment, "load_average_end": load_average()},
        "config": config,
        **figures,
    }
    paths = [out] + ([RESULTS / f"{name}.json"] if results else [])
    text = json.dumps(payload, indent=2, default=_plain) + "\n"
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path}")
    return paths


def _plain(value: Any) -> Any:
    """JSON for numpy scalars and paths."""
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
