"""A :class:`~llmasos_widgets.interventions.CounterfactualResult` as HTML: the spread, the
fills ranked by value, and each attributed pair's maps drawn like the patching page (the same
colored tables, the estimate labelled as one). No script; every fill, prompt and token is
escaped (they are data, never markup). The notebook view is the same fragment."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np

from llmasos_widgets.export._patching_html import _STYLE, _color, _map

SHOWN_FILLS = 20
"""Fills listed at each end of the ranking; the rest of a large set is counted, not listed."""


def _ranking(result: Any) -> str:
    ranked = result.ranked()
    limit = max(1e-6, float(np.abs(result.values).max()))
    shown = (
        ranked if len(ranked) <= 2 * SHOWN_FILLS else ranked[:SHOWN_FILLS] + ranked[-SHOWN_FILLS:]
    )
    rows = []
    for k, (fill, value) in enumerate(shown):
        if len(ranked) > 2 * SHOWN_FILLS and k == SHOWN_FILLS:
            rows.append(f"<tr><td colspan='3'>… {len(ranked) - 2 * SHOWN_FILLS} more …</td></tr>")
        prompt = result.prompts[result.index(fill)]
        rows.append(
            f"<tr><th>{html.escape(fill)}</th><td>{html.escape(prompt)}</td>"
            f'<td style="background:{_color(value, limit)}">{value:+.3f}</td></tr>'
        )
    return (
        "<table class='map'><tr><th>fill</th><th>prompt</th><th>value</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _pair(result: Any, pair: Any, level: int = 1) -> str:
    n_layers, n_heads = pair.dla_clean.n_layers, pair.dla_clean.n_heads
    layers = [f"L{layer}" for layer in range(n_layers)]
    heads = [f"H{head}" for head in range(n_heads)]
    diff, components = pair.dla_difference, pair.component_difference
    limit = max(1e-6, float(np.abs(diff).max()), float(np.abs(components).max()))
    title = f"{pair.clean} vs {pair.corrupted}"
    parts = [
        f"<h{level + 1}>{html.escape(title)}: {pair.clean_value:+.3f} vs "
        f"{pair.corrupted_value:+.3f}</h{level + 1}>",
        f"<h{level + 2}>Direct logit attribution (exact): contribution on the first minus on "
        f"the second</h{level + 2}>",
        _map(components[:, None], list(pair.dla_clean.component_names), ["difference"], limit),
        _map(diff, layers, heads, limit),
    ]
    if pair.atp is not None:
        atp = pair.atp
        parts += [
            f"<h{level + 2}>Estimate by {html.escape(atp.method)}: patching the first into the "
            "second "
            f"(first order; 1 = restores the first fill's value, 0 = no effect)</h{level + 2}>",
            _map(atp.heads, layers, heads, max(1.0, float(np.abs(atp.heads).max()))),
        ]
    else:
        parts.append(f"<p>No attribution patching: {html.escape(pair.atp_skipped or '')}</p>")
    return "".join(parts)


def counterfactuals_fragment(result: Any, level: int = 1) -> str:
    """The tables in a ``<div>`` with their style, without the page around them (the
    notebook view; a section of the explanation report under ``<h{level}>``)."""
    spread = ", ".join(f"{name} {value:+.3f}" for name, value in result.spread.items())
    parts = [
        f"<div><style>{_STYLE}</style>",
        f"<h{level}>Counterfactuals: {html.escape(result.template)}</h{level}>",
        f"<p><code>{html.escape(result.target)}</code> ({html.escape(result.score)}) on "
        f"{len(result.fills)} fills of {html.escape(', '.join(result.slots))}: {spread}.</p>",
        "<p>A gap on templated prompts measures these prompts, fills and target tokens only; "
        "it is not a measure of harm in use.</p>",
        _ranking(result),
        *(_pair(result, pair, level) for pair in result.pairs),
        "</div>",
    ]
    return "".join(parts)


def counterfactuals_html(result: Any) -> str:
    """The page's HTML text."""
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>Counterfactuals: {html.escape(result.template)}</title>"
        f"</head><body>{counterfactuals_fragment(result)}</body></html>"
    )


def write_counterfactuals_report(result: Any, path: Path) -> Path:
    """Write :func:`counterfactuals_html` of ``result`` to ``path``; returns it."""
    path = Path(path)
    path.write_text(counterfactuals_html(result), encoding="utf-8")
    return path
