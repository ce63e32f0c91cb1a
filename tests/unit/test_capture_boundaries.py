"""Module boundaries of the capture layer and the views: who may know a model's anatomy, and
that data objects import no view code."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from llmasos_widgets import _views

PACKAGE = Path(__file__).resolve().parents[2] / "llmasos_widgets"
ANATOMY = PACKAGE / "tracing" / "_anatomy.py"

# Reaching into a model's parts: only tracing/_anatomy.py may do this.
MODEL_PARTS = re.compile(
    r"self_attn|o_proj|lm_head|embed_tokens|\.model\.norm|base\.norm|\.model\.layers|"
    r"getattr\([^)]*[\"']layers[\"']|\bbase\.layers|get_decoder|get_output_embeddings|final_logit_softcapping|"
    r"isinstance\(output, tuple\)|hidden_states\"\]"
)


def _code_lines(path: Path) -> list[tuple[int, str]]:
    """Source lines without comments and docstrings (prose may name the parts)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    prose: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            value = body[0].value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                prose.update(range(body[0].lineno, (body[0].end_lineno or body[0].lineno) + 1))
    lines = path.read_text(encoding="utf-8").splitlines()
    return [
        (number, line.split("#", 1)[0])
        for number, line in enumerate(lines, start=1)
        if number not in prose
    ]


def test_only_the_anatomy_module_touches_a_models_parts() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{number}: {line.strip()}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != ANATOMY
        for number, line in _code_lines(path)
        if MODEL_PARTS.search(line)
    ]
    assert offenders == []


def test_the_pattern_catches_what_it_forbids(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        '"""Docstring naming model.layers and lm_head is fine."""\n'
        "x = hf_model.model.layers[0]  # code is not\n"
        "y = hf_model.lm_head\n"
        "z = output[0] if isinstance(output, tuple) else output\n"
    )
    assert [n for n, line in _code_lines(sample) if MODEL_PARTS.search(line)] == [2, 3, 4]


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_explanation_package_imports_no_view_code() -> None:
    imported = set().union(
        *(_imported_modules(path) for path in (PACKAGE / "explanation").glob("*.py"))
    )
    views = {
        name
        for name in imported
        if name.startswith(("llmasos_widgets.widgets", "llmasos_widgets.export"))
    }
    assert views == set()
    code = (
        "import sys, llmasos_widgets.explanation\n"
        "print(sorted(m for m in sys.modules if m.startswith(('llmasos_widgets.widgets', "
        "'llmasos_widgets.export', 'anywidget'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_render_loads_the_builtin_provider_of_a_kind_on_first_use() -> None:
    code = (
        "import sys\n"
        "from llmasos_widgets._views import render\n"
        "before = 'llmasos_widgets.export' in sys.modules\n"
        "try:\n"
        "    render('html', object())\n"
        "except LookupError as error:\n"
        "    print(before, 'llmasos_widgets.export' in sys.modules, 'html' in str(error))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True", "True"]


class _Shown:
    pass


class _ShownChild(_Shown):
    pass


def test_a_registered_view_renders_instances_and_subclasses() -> None:
    _views.register_view("test-kind", _Shown, lambda obj, suffix="": type(obj).__name__ + suffix)
    try:
        assert _views.render("test-kind", _Shown()) == "_Shown"
        assert _views.render("test-kind", _ShownChild(), suffix="!") == "_ShownChild!"
        with pytest.raises(LookupError, match="no 'other-kind' view is registered for _Shown"):
            _views.render("other-kind", _Shown())
    finally:
        del _views._VIEWS[("test-kind", _Shown)]


def test_results_and_views_name_sites_alike() -> None:
    """Residual sites are ``emb``, ``after L0``, ... in results, reports and widgets; decoder
    layers alone are ``L0``, ``L1``."""
    import numpy as np

    from llmasos_widgets.attribution import Saliency
    from llmasos_widgets.probing import ProbeResult

    saliency = Saliency(
        scores=np.zeros((3, 2), np.float32),
        layers=np.array([0, 1, 3], np.int64),
        tokens=("a", "b"),
        token_ids=np.array([5, 6], np.int64),
        method="gradient",
        target="'b'",
        target_position=1,
        target_token_ids=(6,),
        target_probability=0.5,
        f_x=1.0,
    )
    assert saliency.site_names == ("emb", "after L0", "after L2")
    assert saliency.sites is saliency.layers
    probe = ProbeResult(
        layers=np.array([0, 1, 2]),
        labels=("sg", "pl"),
        train_accuracy=np.array([0.5, 0.7, 1.0]),
        test_accuracy=np.array([0.5, 0.6, 0.9]),
        control_accuracy=None,
        majority_baseline=0.5,
        weights=np.zeros((3, 2, 4), np.float32),
        bias=np.zeros((3, 2), np.float32),
        n_train=8,
        n_test=4,
    )
    assert "best site after L1" in repr(probe)
    script = (PACKAGE.parent / "js" / "src" / "lib" / "saliency_scale.ts").read_text()
    assert 'site === 0 ? "emb" : `after L${' in script
