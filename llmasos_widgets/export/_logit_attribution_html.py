"""A standalone HTML page of a :class:`~llmasos_widgets.interventions.LogitAttribution`:
the component map (``[component, token]``) and the head map at the target position, as
colored tables like the patching page (no script, every token escaped)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np

from llmasos_widgets.export._patching_html import _STYLE, _map, _prompt


def logit_attribution_html(result: Any) -> str:
    """The page's HTML text."""
    components, heads = result.component_map, result.head_map
    limit = max([1e-6, *(float(np.abs(m).max()) for m in (components, heads))])
    tokens = list(result.shown_tokens)
    logit = float(result.logits[result.position])
    return "".join(
        [
            "<!DOCTYPE html><html><head><meta charset='utf-8'>",
            f"<title>Direct logit attribution: {html.escape(result.target)}</title>",
            f"<style>{_STYLE}</style></head><body>",
            "<h1>Direct logit attribution</h1>",
            f"<p>Each component's direct contribution to <code>{html.escape(result.target)}"
            f"</code> (the model's value: {logit:.3f}), through the final norm with its scale "
            "frozen at this run's value; the contributions at a position add up to the logit "
            f"there. Colors from −{limit:.2f} (blue) through 0 (white) to +{limit:.2f} "
            "(red).</p>",
            _prompt("text", tuple(tokens), {result.position}),
            "<h2>Components: component × token (the target token's logit at each token)</h2>",
            _map(components, list(result.component_names), tokens, limit),
            f"<h2>Heads at token {result.position}: layer × head</h2>",
            _map(
                heads,
                [f"L{layer}" for layer in range(result.n_layers)],
                [f"H{head}" for head in range(result.n_heads)],
                limit,
            ),
            "</body></html>",
        ]
    )


def write_logit_attribution_report(result: Any, path: Path) -> Path:
    """Write :func:`logit_attribution_html` of ``result`` to ``path``; returns it."""
    path = Path(path)
    path.write_text(logit_attribution_html(result), encoding="utf-8")
    return path
