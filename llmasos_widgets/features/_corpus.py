"""A corpus without a dataset hub: the docstrings (and bundled docs) of installed packages.

Max-activating examples want real prose and code; machines without network access have no
dataset to download, but every installed Python package carries thousands of docstrings. They
are read from the source files with :mod:`ast` (nothing is imported or executed).
"""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Iterator, Sequence
from pathlib import Path

DEFAULT_PACKAGES = ("torch", "numpy", "transformers")


def docstring_corpus(
    packages: Sequence[str] = DEFAULT_PACKAGES,
    *,
    min_chars: int = 200,
    limit: int | None = None,
) -> Iterator[str]:
    """Yield the docstrings of at least ``min_chars`` characters of every module, class and
    function of ``packages`` (installed ones; others are skipped), then their ``.md``/``.rst``
    files, in a fixed order (sorted paths), at most ``limit`` texts."""
    count = 0
    for package in packages:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        for root in spec.submodule_search_locations:
            for text in _package_texts(Path(root), min_chars):
                if limit is not None and count >= limit:
                    return
                count += 1
                yield text


def _package_texts(root: Path, min_chars: int) -> Iterator[str]:
    for path in sorted(root.rglob("*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc and len(doc) >= min_chars:
                    yield doc
    for path in sorted([*root.rglob("*.md"), *root.rglob("*.rst")]):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if len(text) >= min_chars:
            yield text
