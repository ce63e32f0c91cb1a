"""What a user downloads: the sdist and the wheel, built from a clean clone of the checkout."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_S = 600


@dataclass(frozen=True)
class Distributions:
    sdist: Path
    wheel: Path


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=BUILD_S, check=False)
    assert done.returncode == 0, (
        f"{' '.join(command)} exited {done.returncode}:\n{done.stdout[-3000:]}\n"
        f"{done.stderr[-3000:]}"
    )


def build_from_clean_clone(where: Path) -> Distributions:
    """``python -m build`` of a ``git clone`` of this checkout's HEAD into ``where``: committed
    files only, so nothing untracked (a local bundle, a scratch file) leaks into what is
    tested. The wheel is built from the sdist, as pip does from a source download (hatchling
    and the hatch-jupyter-builder hook, which keeps the committed bundle)."""
    clone, out = where / "clone", where / "dist"
    _run(["git", "clone", "--quiet", str(REPO_ROOT), str(clone)])
    _run([sys.executable, "-m", "build", "--outdir", str(out), str(clone)])
    (sdist,) = out.glob("llmasos_widgets-*.tar.gz")
    (wheel,) = out.glob("llmasos_widgets-*.whl")
    return Distributions(sdist=sdist, wheel=wheel)
