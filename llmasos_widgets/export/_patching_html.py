"""A standalone HTML page of a :class:`~llmasos_widgets.interventions.PatchingResult`.

No script and nothing fetched: both maps are HTML tables whose cells carry their color (the
diverging blue-white-red scale of the widget, 0 = no effect, 1 = the clean run) and their
value as text, so the page prints, diffs and reads without a browser engine. Every token and
the target are escaped (``html.escape``): they are data, never markup.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np

from llmasos_widgets.interventions import HEAD_NODES

# control points of js/src/lib/colors.ts "diverging" (blue, white, red)
_DIVERGING = np.array(
    [[33, 102, 172], [146, 197, 222], [247, 247, 247], [244, 165, 130], [178, 24, 43]], float
)

# the maps' own rules, shared with the explanation report's causal sections
MAP_STYLE = """
table.map { border-collapse: collapse; margin: 6px 0 18px; }
table.map td, table.map th { padding: 3px 6px; text-align: center; font-size: 12px; }
table.map th { font-weight: normal; color: #555; }
.diff { background: #fde2b8; font-weight: 600; border-bottom: 2px solid #e08a00; }
.prompt span { padding: 1px 3px; margin-right: 3px; background: #f3f3f3; border-radius: 3px; }
.estimate { color: #7c2d12; background: #fff7ed; border: 1px solid #fdba74; padding: 2px 6px; }
"""
_STYLE = "body { font: 13px system-ui, sans-serif; margin: 24px; color: #222; }" + MAP_STYLE


def _color(value: float, limit: float) -> str:
    t = float(np.clip((value / limit + 1) / 2, 0, 1)) * (len(_DIVERGING) - 1)
    low = min(int(t), len(_DIVERGING) - 2)
    rgb = _DIVERGING[low] + (_DIVERGING[low + 1] - _DIVERGING[low]) * (t - low)
    return "rgb({}, {}, {})".format(*(round(float(c)) for c in rgb))


def _cell(value: float, limit: float) -> str:
    if np.isnan(value):  # not computed (a path map's layers that cannot receive)
        return "<td>—</td>"
    return f'<td style="background:{_color(value, limit)}">{value:+.2f}</td>'


def _map(values: np.ndarray, rows: list[str], cols: list[str], limit: float) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join(
        f"<tr><th>{html.escape(label)}</th>"
        + "".join(_cell(float(v), limit) for v in row)
        + "</tr>"
        for label, row in zip(rows, values, strict=True)
    )
    return f'<table class="map"><tr><th></th>{head}</tr>{body}</table>'


def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"{body}</body></html>"
    )


def _prompt(name: str, tokens: tuple[str, ...], differing: set[int]) -> str:
    spans = "".join(
        f'<span class="{"diff" if i in differing else ""}">{html.escape(t)}</span>'
        for i, t in enumerate(tokens)
    )
    return f'<p class="prompt">{html.escape(name)}: {spans}</p>'


def patching_title(result: Any) -> str:
    method = getattr(result, "method", None)  # attribution patching: an estimate
    return f"Estimate by {method}" if method else "Activation patching"


def patching_fragment(result: Any, level: int = 1) -> str:
    """The maps, target and prompts under an ``<h{level}>`` title (the page's body, or one
    section of the explanation report)."""
    differing = set(result.differing_positions)
    maps = [m for m in (result.residual, result.heads) if m is not None]
    limit = max([1.0, *(float(np.nanmax(np.abs(m))) for m in maps)])
    title, sub = f"h{level}", f"h{level + 1}"
    parts = [f"<{title}>{html.escape(patching_title(result))}</{title}>"]
    if getattr(result, "method", None):
        parts.append(
            "<p class='estimate' data-testid='estimate'>An estimate: first-order values from "
            "one gradient, not patched runs; <code>result.verify(k)</code> compares its top "
            "cells with exact activation patching.</p>"
        )
    parts += [
        f"<p>metric: (patched − corrupted) / (clean − corrupted) of "
        f"<code>{html.escape(result.target)}</code>; clean = {result.clean_value:.3f} (1), "
        f"corrupted = {result.corrupted_value:.3f} (0). Colors from −{limit:.2f} (blue) "
        f"through 0 (white, no effect) to +{limit:.2f} (red).</p>",
        _prompt("clean", result.shown_clean_tokens, differing),
        _prompt("corrupted", result.shown_corrupted_tokens, differing),
    ]
    if result.residual is not None:
        parts += [
            f"<{sub}>Residual stream: site × token</{sub}>",
            _map(result.residual, list(result.site_names), list(result.shown_clean_tokens), limit),
        ]
    layers = [f"L{layer}" for layer in range(result.n_layers)]
    heads = [f"H{head}" for head in range(result.n_heads)]
    node = HEAD_NODES[result.head_node]
    if result.heads is not None:
        shared = " (heads of one key/value head share a cell)" if result.head_node in "kv" else ""
        parts += [
            f"<{sub}>Head {node} (every position){shared}: layer × head</{sub}>",
            _map(result.heads, layers, heads, limit),
        ]
    drop = getattr(result, "grad_drop_heads", None)
    if drop is not None:  # a ranking score: no sign, so it has its own scale
        parts += [
            f"<{sub}>GradDrop's score of head {node}: layer × head</{sub}>",
            "<p>Mean over layers of |estimate| with that layer's gradient dropped, in units of "
            "|clean − corrupted|; it ranks cells for <code>verify</code>, it has no sign.</p>",
            _map(drop, layers, heads, max(1.0, float(np.nanmax(drop)))),
        ]
    parts.append(f"<p>{result.forward_passes} forward passes.</p>")
    return "".join(parts)


def patching_html(result: Any) -> str:
    """The page's HTML text."""
    title = f"{patching_title(result)}: {result.target}"
    return _page(title, patching_fragment(result))


def write_patching_report(result: Any, path: Path) -> Path:
    """Write :func:`patching_html` of ``result`` to ``path``; returns it."""
    path = Path(path)
    path.write_text(patching_html(result), encoding="utf-8")
    return path
