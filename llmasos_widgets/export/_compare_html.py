"""Standalone HTML report of a :class:`~llmasos_widgets.comparison.Comparison`: what moved
(heads, logit-lens cells) as colored tables, then model A's and model B's own reports
side by side (each embedded whole, as an ``iframe srcdoc``). One file, no network; token
strings are escaped (data, never markup)."""

from __future__ import annotations

import html
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from llmasos_widgets.export._explanation_html import (
    _CSS,
    _diverging,
    _head_table,
    _sequential,
    write_report,
)
from llmasos_widgets.tracing import site_label

_MAX_COLUMNS = 48


def _signed_table(values: np.ndarray, color: Callable[[Any], str]) -> str:
    """A head table scaled by the largest magnitude, values shown with their sign."""
    return _head_table(values, float(np.abs(values).max()) or 1.0, color=color, value_format="+.3f")


def _heads_section(comparison: Any) -> str:
    moved = comparison.attention_distance()
    top = ", ".join(f"L{l_}H{h} ({d:.2f})" for l_, h, d in comparison.changed_heads(k=3))
    figures = [
        "<figure><figcaption>attention moved (TV distance 0..1)"
        f"<br><span class='muted'>top: {top}</span></figcaption>"
        f"{_signed_table(moved, _sequential)}</figure>"
    ]
    for name in comparison.summary_names:
        if name == "attention":
            continue
        diff = comparison.head_difference(name)
        figures.append(
            f"<figure><figcaption>B − A: {html.escape(name)}<br><span class='muted'>"
            f"|max| {float(np.abs(diff).max()):.3f}</span></figcaption>"
            f"{_signed_table(diff, _diverging)}</figure>"
        )
    return "<h2>Heads (layer × head)</h2>" + "".join(figures)


def _lens_section(comparison: Any) -> str:
    start = max(0, comparison.n_tokens - _MAX_COLUMNS)
    header = "".join(
        f"<th><span class='tok'>{html.escape(comparison.tokens[i])}</span></th>"
        for i in range(start, comparison.n_tokens)
    )
    diff = comparison.lens_target_difference
    rows = []
    for site in range(comparison.n_layers, -1, -1):
        cells = "".join(
            f"<td style='background:{_diverging(float(diff[site, i]))}' "
            f"title='TV {comparison.lens_distance[site, i]:.3f}'>{diff[site, i]:+.2f}</td>"
            for i in range(start, comparison.n_tokens)
        )
        rows.append(f"<tr><th>{site_label(site)}</th>{cells}</tr>")
    target = html.escape(repr(comparison.target_token))
    return (
        f"<h2>Logit lens: B − A probability of {target} as the next token</h2>"
        "<p class='muted'>read at each residual site through each model's own head; "
        "hover a cell for the total-variation distance of the whole distribution</p>"
        f"<table class='lens'><tr><th></th>{header}</tr>{''.join(rows)}</table>"
    )


def _embedded(explanation: Any, title: str) -> str:
    with tempfile.TemporaryDirectory() as folder:
        page = write_report(explanation, Path(folder) / "report.html").read_text("utf-8")
    return (
        f"<div style='flex:1;min-width:480px'><h2>{html.escape(title)}</h2>"
        f"<iframe style='width:100%;height:900px;border:1px solid #d0d7de' "
        f'srcdoc="{html.escape(page, quote=True)}"></iframe></div>'
    )


def write_comparison_report(comparison: Any, path: Path) -> Path:
    """Write the comparison report to ``path`` (parents created) and return it."""
    a, b = comparison.a, comparison.b
    title = f"{a.model_name} vs {b.model_name}"
    body = "".join(
        [
            f"<h1>{html.escape(title)}</h1>",
            f"<p>{' '.join(f'<span class=tok>{html.escape(t)}</span>' for t in a.tokens)}</p>",
            _heads_section(comparison),
            _lens_section(comparison),
            "<div style='display:flex;gap:16px;flex-wrap:wrap'>",
            _embedded(a, f"A: {a.model_name}"),
            _embedded(b, f"B: {b.model_name}"),
            "</div>",
        ]
    )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>"
        f"<body>{body}</body></html>"
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
