"""docs/ARCHITECTURE.md's layer table is drawn from the imports, so it cannot drift."""

from __future__ import annotations

import pytest

from scripts import architecture


def test_the_layer_table_is_current() -> None:
    text = architecture.DOC.read_text(encoding="utf-8")
    assert architecture.updated_doc(text) == text, "run: python scripts/architecture.py"


def test_each_part_sits_above_everything_it_imports() -> None:
    graph = architecture.dependencies()
    level = architecture.layers(graph)
    assert level["_hooks"] == 0 and level["tracing"] > level["models"]
    assert all(level[used] < level[part] for part, uses in graph.items() for used in uses)
    assert level[""] > level["widgets"]  # the root re-exports the widgets


def test_an_import_cycle_is_named() -> None:
    with pytest.raises(ValueError, match="import cycle: models -> explanation -> models"):
        architecture.layers({"models": {"explanation"}, "explanation": {"models"}})


def test_a_stale_table_is_rewritten() -> None:
    text = architecture.DOC.read_text(encoding="utf-8")
    start, stop = text.index(architecture.BEGIN), text.index(architecture.END)
    stale = text[:start] + architecture.BEGIN + "\n| old |\n" + text[stop:]
    assert architecture.updated_doc(stale) == text
