"""HTML of :class:`~llmasos_widgets.interventions.PathPatchingResult` (senders, receivers,
the effect through them beside the total effect) and of a ``PathPatchingMap`` (the effect
through each later head as a ``[layer, head]`` table), as a page or a report section. The
texts and the target are escaped: they are data, never markup."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np

from llmasos_widgets.export._patching_html import _map, _page

_INPUTS = {"q": "query", "k": "key", "v": "value"}


def _heads(heads: Any) -> str:
    return ", ".join(f"L{layer}H{head}" for layer, head in heads)


def _receivers(receivers: Any) -> str:
    if isinstance(receivers, str):
        return "the logits (the residual stream straight to the unembedding)"
    return ", ".join(f"L{layer}H{head} {_INPUTS[which]}" for layer, head, which in receivers)


def _pair(result: Any) -> str:
    return (
        f"<p>clean <code>{html.escape(result.clean_text)}</code>, corrupted "
        f"<code>{html.escape(result.corrupted_text)}</code>; target "
        f"<code>{html.escape(result.target)}</code>: clean = {result.clean_value:.3f} (1), "
        f"corrupted = {result.corrupted_value:.3f} (0).</p>"
    )


def path_patching_fragment(result: Any, level: int = 1) -> str:
    """One path's effect beside the senders' total effect, under an ``<h{level}>`` title."""
    rows = [
        ("path", "through the receivers only (path effect)", result.effect, result.path_value),
        ("total", "through every path (total effect)", result.total_effect, result.total_value),
    ]
    table = "".join(
        f"<tr><th>{name}</th><td data-testid='{key}-effect'>{effect:+.3f}</td>"
        f"<td>{value:.4g}</td></tr>"
        for key, name, effect, value in rows
    )
    return (
        f"<h{level}>Path patching</h{level}>"
        f"<p>senders {html.escape(_heads(result.senders))} → receivers "
        f"{html.escape(_receivers(result.receivers))}</p>{_pair(result)}"
        "<table class='map'><tr><th></th><th>effect (0 = none, 1 = clean)</th>"
        f"<th>target</th></tr>{table}</table>"
    )


def path_patching_map_fragment(result: Any, level: int = 1) -> str:
    """The ``[layer, head]`` map of the effect through each head's input, under a title."""
    effect = result.effect
    finite = np.abs(effect[np.isfinite(effect)])  # all NaN when no later layer receives
    limit = max(1.0, float(finite.max()) if finite.size else 0.0)
    which = _INPUTS.get(result.which, result.which)
    return (
        f"<h{level}>Path patching map: through each head's {html.escape(which)}</h{level}>"
        f"<p>senders {html.escape(_heads(result.senders))}; each later head's "
        f"{html.escape(which)} alone receives their effect. Total effect (every path): "
        f"{result.total_effect:+.3f}.</p>{_pair(result)}"
        f"<h{level + 1}>Effect through each head: layer × head (— : cannot receive)"
        f"</h{level + 1}>"
        + _map(
            effect,
            [f"L{layer}" for layer in range(result.n_layers)],
            [f"H{head}" for head in range(result.n_heads)],
            limit,
        )
    )


def write_path_patching_report(result: Any, path: Path) -> Path:
    """A standalone page of a path patching result or map; returns ``path``."""
    path = Path(path)
    if hasattr(result, "which"):
        body = path_patching_map_fragment(result)
        title = f"Path patching map: {result.target}"
    else:
        body, title = path_patching_fragment(result), f"Path patching: {result.target}"
    path.write_text(_page(title, body), encoding="utf-8")
    return path
