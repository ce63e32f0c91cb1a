"""The browser's hover flow (``attentionFlow`` in js/src/lib/pattern.ts, on the quantized
patterns it holds) is checked against Python's (``views.flow_values``) by
js/test/pattern.test.ts, on cases this module writes: the bundled model's patterns as the
widget sends them (``quantize_rows``) and Python's flow of every case. This test fails when
the committed fixture is not what Python computes today; regenerate it with
``LLMASOS_WRITE_FIXTURES=1 pytest tests/unit/test_flow_fixture.py``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from llmasos_widgets.views import flow_values
from llmasos_widgets.widgets._base import quantize_rows

FIXTURE = Path(__file__).resolve().parents[2] / "js" / "test" / "fixtures" / "flow_cases.ts"
CASES = [
    ([3], [], "from"),
    ([3], [], "to"),
    ([2, 5], [1, 4], "from"),
    ([1], [0, 4], "to"),
    ([0], [], "from"),
    ([5], [], "to"),
]


def fixture_text(bundled: Any) -> str:
    exp = bundled.explain("the cat sat on the mat", saliency=False)
    layer, heads = 0, range(min(3, exp.n_heads))
    patterns = []
    for head in heads:
        row_scale, levels = quantize_rows(exp.attention(layer, head))
        patterns.append({"rowScale": row_scale.tolist(), "levels": levels.tolist()})
    cases = []
    for focus, others, direction in CASES:
        flows = flow_values(exp, focus, others, direction)[layer]
        cases.append(
            {
                "focus": focus,
                "others": others,
                "direction": direction,
                "python": [float(flows[h]) for h in heads],  # every case has a value
            }
        )
    data = json.dumps({"n": exp.n_tokens, "patterns": patterns, "cases": cases})
    return (
        "// Written by tests/unit/test_flow_fixture.py (Python's views.flow_values on the\n"
        "// bundled model, layer 0): do not edit by hand.\n"
        f"export const FLOW_FIXTURE = {data};\n"
    )


def test_the_js_flow_fixture_is_what_python_computes(bundled: Any) -> None:
    text = fixture_text(bundled)
    if os.environ.get("LLMASOS_WRITE_FIXTURES"):
        FIXTURE.write_text(text)
    assert FIXTURE.read_text() == text
