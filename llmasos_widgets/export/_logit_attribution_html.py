"""A standalone HTML page of a :class:`~llmasos_widgets.interventions.LogitAttribution`:
the component map (``[component, token]``) and the head map at the target position, as
colored tables like the patching page (no script, every token escaped)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np

from llmasos_widgets.export._patching_html import _map, _page, _prompt


def logit_attribution_fragment(result: Any, level: int = 1) -> str:
    """Both maps and the text under an ``<h{level}>`` title (the page's body, or one section
    of the explanation report)."""
    components, heads = result.component_map, result.head_map
    limit = max([1e-6, *(float(np.abs(m).max()) for m in (components, heads))])
    tokens = list(result.shown_tokens)
    logit = float(result.logits[result.position])
    title, sub = f"h{level}", f"h{level + 1}"
    return "".join(
        [
            f"<{title}>Direct logit attribution</{title}>",
            f"<p>Each component's direct contribution to <code>{html.escape(result.target)}"
            f"</code> (the model's value: {logit:.3f}), through the final norm with its scale "
            "frozen at this run's value; the contributions at a position add up to the logit "
            f"there. Colors from −{limit:.2f} (blue) through 0 (white) to +{limit:.2f} "
            "(red).</p>",
            _prompt("text", tuple(tokens), {result.position}),
            f"<{sub}>Components: component × token (the target token's logit at each token)"
            f"</{sub}>",
            _map(components, list(result.component_names), tokens, limit),
            f"<{sub}>Heads at token {result.position}: layer × head</{sub}>",
            _map(
                heads,
                [f"L{layer}" for layer in range(result.n_layers)],
                [f"H{head}" for head in range(result.n_heads)],
                limit,
            ),
        ]
    )


def logit_attribution_html(result: Any) -> str:
    """The page's HTML text."""
    title = f"Direct logit attribution: {result.target}"
    return _page(title, logit_attribution_fragment(result))


def write_logit_attribution_report(result: Any, path: Path) -> Path:
    """Write :func:`logit_attribution_html` of ``result`` to ``path``; returns it."""
    path = Path(path)
    path.write_text(logit_attribution_html(result), encoding="utf-8")
    return path
