"""The browser's slider rule (``visibleAt`` in js/src/lib/graph_view.ts) is checked against
Python's (``widgets/_graph_view.py::visible_at``, itself checked against circuit-tracer's
``prune_graph`` in test_graph_widget.py) by js/test/graph_view.test.ts, on the tables the
widget sends for tests/_hand_graph.py's graph and Python's answer at several thresholds. This
test fails when the committed fixture is not what Python computes today; regenerate it with
``LLMASOS_WRITE_FIXTURES=1 pytest tests/unit/test_graph_view_fixture.py``."""

from __future__ import annotations

import json
import os
from pathlib import Path

from llmasos_widgets.widgets._graph_view import edge_table, node_table, visible_at
from tests._hand_graph import hand_graph

FIXTURE = Path(__file__).resolve().parents[2] / "js" / "test" / "fixtures" / "graph_cases.ts"
THRESHOLDS = [0.05, 0.31, 0.5, 0.6, 0.95, 0.97, 1.0]


def fixture_text() -> str:
    graph = hand_graph(1.0)
    nodes, edges = node_table(graph), edge_table(graph)
    cases = []
    for threshold in THRESHOLDS:
        node_shown, edge_shown = visible_at(nodes, edges, threshold)
        cases.append(
            {"threshold": threshold, "nodes": node_shown.tolist(), "edges": edge_shown.tolist()}
        )
    data = json.dumps(
        {"nodes": nodes.ravel().tolist(), "edges": edges.ravel().tolist(), "cases": cases}
    )
    return (
        "// Written by tests/unit/test_graph_view_fixture.py (Python's visible_at on the tables\n"
        "// of tests/_hand_graph.py's graph): do not edit by hand.\n"
        f"export const GRAPH_FIXTURE = {data};\n"
    )


def test_the_js_graph_fixture_is_what_python_computes() -> None:
    text = fixture_text()
    if os.environ.get("LLMASOS_WRITE_FIXTURES"):
        FIXTURE.write_text(text)
    assert FIXTURE.read_text() == text
    cases = json.loads(text.split("= ", 1)[1].rstrip(";\n"))["cases"]
    counts = [sum(case["nodes"]) for case in cases]
    assert counts == sorted(counts) and counts[0] < counts[-1]  # the cases do differ
