"""Every bundle the front end builds ships: pyproject's ``ensured-targets`` name them all, and
the sdist and the wheel built from a clean clone (``conftest.py``) hold them all.

The expected bundles are derived from ``js/build.mjs``'s entry points (every top-level
``js/src/*.ts``), so a new widget's bundle that is built but not shipped fails here.
"""

from __future__ import annotations

import re
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.install._distributions import REPO_ROOT, Distributions

JS_SRC = REPO_ROOT / "js" / "src"
STATIC = "llmasos_widgets/static"

# `import x from "./lib/y"`, `import "./z.css"`, `export { a } from "./b"` (relative only)
RELATIVE_IMPORT = re.compile(r"""^\s*(?:import|export)\b[^"';]*?["'](\.{1,2}/[^"']+)["']""", re.M)


def _imports(module: Path) -> list[Path]:
    found = []
    for spec in RELATIVE_IMPORT.findall(module.read_text(encoding="utf-8")):
        target = (module.parent / spec).resolve()
        found.append(target if target.suffix == ".css" else target.with_name(target.name + ".ts"))
    return found


def _imports_css(entry: Path) -> bool:
    """Whether ``entry`` or a module it imports, at any depth, imports a stylesheet: esbuild
    then writes ``<entry>.css`` beside ``<entry>.js``."""
    seen, todo = set(), [entry]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        for target in _imports(module):
            if target.suffix == ".css":
                return True
            todo.append(target)
    return False


def built_bundles() -> list[str]:
    """The files ``js/build.mjs`` writes to ``llmasos_widgets/static``, relative to the repo."""
    entries = sorted(p for p in JS_SRC.glob("*.ts") if not p.name.endswith(".d.ts"))
    assert entries, f"no entry points in {JS_SRC}"
    names = [f"{entry.stem}.js" for entry in entries]
    names += [f"{entry.stem}.css" for entry in entries if _imports_css(entry)]
    return sorted(f"{STATIC}/{name}" for name in names)


def test_the_entry_points_account_for_every_committed_bundle() -> None:
    """The derivation above is what esbuild does: it yields exactly the committed bundles."""
    committed = sorted(f"{STATIC}/{p.name}" for p in (REPO_ROOT / STATIC).iterdir())
    assert built_bundles() == committed


def test_the_build_ensures_every_bundle() -> None:
    tomllib = pytest.importorskip("tomllib")
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    builder = pyproject["tool"]["hatch"]["build"]["hooks"]["jupyter-builder"]
    assert sorted(builder["ensured-targets"]) == built_bundles()


@pytest.mark.slow  # installs the build backend into an isolated env: > 30 s on a cold cache
def test_the_sdist_and_the_wheel_ship_every_bundle(distributions: Distributions) -> None:
    with tarfile.open(distributions.sdist) as sdist:
        in_sdist = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    in_wheel = set(zipfile.ZipFile(distributions.wheel).namelist())
    expected = built_bundles()
    assert [name for name in expected if name not in in_sdist] == []
    assert [name for name in expected if name not in in_wheel] == []
