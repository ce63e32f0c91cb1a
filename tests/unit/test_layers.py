"""The package's layers and the seams between its subpackages, read from every import.

* A module imports another subpackage only through its ``__init__``
  (``from llmasos_widgets.tracing import anatomy``), never one of its ``_private`` modules:
  the leading underscore means private to the subpackage.
* Each layer imports only what lies beneath it (:data:`LAYERS`, bottom to top). What lies
  above binds itself from above instead: ``widgets`` and ``export`` register views in
  ``_views.py``, ``explanation`` registers ``ExplainableModel.explain``/``.generate`` in
  ``models/_analyses.py``; both import their provider by name on first use.

Every ``import`` counts, also inside functions. Imports under ``if TYPE_CHECKING:`` do not:
they only name types for annotations (``ExplainableModel.explain -> Explanation``) and never
run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.architecture import PACKAGE, imports, module_name, owner

ROOT = PACKAGE.name

# Bottom to top. A name is a subpackage or a top-level module of llmasos_widgets; the root
# package itself (its lazy re-exports) is the top layer.
LAYERS: list[set[str]] = [
    {"_hooks", "_gather", "_views", "_readable_tokens"},  # shared helpers, private to the package
    {"language"},
    {"models"},
    {"_distributed"},  # model replicas on Dask workers (loads models there): probing, interventions
    {"tracing"},
    {"targets"},
    {"attribution"},
    {"interventions"},
    {"probing"},
    {"features"},  # SAEs over residual sites: trained on probing's activations, read by explain
    {"graphs"},  # attribution graphs over transcoder features
    {"explanation"},
    {"comparison"},
    {"views"},  # view computation for widgets and reports: above explanation
    {"widgets"},
    {"export"},
    {"cli", "_magics", "demo", "__main__", ""},  # "": the root package
]


def _layer(name: str) -> int:
    for index, names in enumerate(LAYERS):
        if name in names:
            return index
    raise AssertionError(f"{name!r} is in no layer: place it in tests/unit/test_layers.py LAYERS")


def private_reach_ins(path: Path, package: Path = PACKAGE) -> list[str]:
    """Imports of another subpackage's ``_private`` module (or private name) by ``path``."""
    me = owner(module_name(path, package))
    found = []
    for line, module in imports(path, package):
        part = owner(module)
        parts = module.split(".")
        if part is None or part == me or len(parts) < 3 or not (package / part).is_dir():
            continue
        if any(name.startswith("_") for name in parts[2:]):
            found.append(f"{path.name}:{line}: {module}")
    return found


def upward_imports(path: Path, package: Path = PACKAGE) -> list[str]:
    """Imports by ``path`` of a module in a higher layer than its own."""
    me = owner(module_name(path, package))
    assert me is not None
    found = []
    for line, module in imports(path, package):
        part = owner(module)
        if part is None:
            continue
        if part not in {"", *(n for names in LAYERS for n in names)} and not (
            (package / part).is_dir() or (package / f"{part}.py").is_file()
        ):
            part = ""  # ``from llmasos_widgets import load_model``: the root package
        if _layer(part) > _layer(me):
            found.append(f"{path.name}:{line}: {me or ROOT} imports {module}")
    return found


def _package_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_subpackage_and_top_level_module_has_a_layer() -> None:
    names = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    names |= {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    for name in sorted(names):
        _layer(name)


def test_subpackages_import_each_other_only_through_their_init() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}: {hit}"
        for path in _package_files()
        for hit in private_reach_ins(path)
    ]
    assert offenders == []


def test_no_layer_imports_one_above_it() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}: {hit}"
        for path in _package_files()
        for hit in upward_imports(path)
    ]
    assert offenders == []


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    """A copy of the package's shape with modules planted in it."""
    package = tmp_path / ROOT
    for name in ("models", "tracing", "explanation"):
        (package / name).mkdir(parents=True)
        (package / name / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    return package


def test_the_checks_catch_what_they_forbid(planted: Path) -> None:
    module = planted / "explanation" / "_planted.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "from llmasos_widgets.tracing import anatomy  # the seam: fine\n"
        "from llmasos_widgets.explanation._lens import x  # its own subpackage: fine\n"
        "from llmasos_widgets._hooks import borrowed_hooks  # shared helper: fine\n"
        "from llmasos_widgets.tracing._anatomy import site_label\n"
        "import llmasos_widgets.tracing._anatomy as parts\n"
        "def later():\n"
        "    from llmasos_widgets.tracing import _anatomy\n"
        "    from llmasos_widgets.widgets import AttentionWidget\n"
        "if TYPE_CHECKING:\n"
        "    from llmasos_widgets.widgets._base import ResultWidget  # annotations only\n"
    )
    assert private_reach_ins(module, planted) == [
        "_planted.py:5: llmasos_widgets.tracing._anatomy.site_label",
        "_planted.py:6: llmasos_widgets.tracing._anatomy",
        "_planted.py:8: llmasos_widgets.tracing._anatomy",
    ]
    assert upward_imports(module, planted) == [
        "_planted.py:9: explanation imports llmasos_widgets.widgets.AttentionWidget"
    ]
    below = planted / "models" / "_loading.py"
    below.write_text(
        "def explain(self):\n"
        "    from llmasos_widgets.explanation import explain  # models reaching up\n"
        "    from llmasos_widgets import load_model  # the root package is the top layer\n"
    )
    assert upward_imports(below, planted) == [
        "_loading.py:2: models imports llmasos_widgets.explanation.explain",
        "_loading.py:3: models imports llmasos_widgets.load_model",
    ]
