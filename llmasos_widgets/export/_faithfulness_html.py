"""The faithfulness line of the HTML report's saliency section.

Shown when the explanation's metadata carries a test of its own map
(``metadata["faithfulness"]``, written by ``attribution.with_faithfulness``): the score,
comprehensiveness and sufficiency, the baseline, and the deletion/insertion curves as a small
inline SVG (numbers only; no token text enters the markup).
"""

from __future__ import annotations

import html
import math
from typing import Any

_WIDTH, _HEIGHT, _PAD = 220, 90, 6
# deletion, deletion_random, insertion, insertion_random: color and dash
_SERIES = (
    ("deletion", "#d62728", ""),
    ("deletion_random", "#d62728", "4 3"),
    ("insertion", "#1f77b4", ""),
    ("insertion_random", "#1f77b4", "4 3"),
)


def faithfulness_html(explanation: Any) -> str:
    """``""`` unless the metadata holds a faithfulness test of ``explanation.saliency``."""
    record = (explanation.metadata or {}).get("faithfulness")
    saliency = explanation.saliency
    if not isinstance(record, dict) or saliency is None:
        return ""
    if (record.get("method"), record.get("target")) != (saliency.method, saliency.target):
        return ""  # a test of another map: not this table's
    facts = [
        f"faithfulness <b>{_number(record.get('score'))}</b>",
        f"comprehensiveness {_number(record.get('comprehensiveness'))}",
        f"sufficiency {_number(record.get('sufficiency'))}",
        f"baseline {html.escape(str(record.get('baseline', '')))}",
        f"{int(record.get('n_random', 0))} random orders",
    ]
    note = record.get("note") or ""
    if note:
        facts.append(html.escape(str(note)))
    return (
        f"<p data-testid='report-faithfulness'>{' · '.join(facts)}</p>{_curves_svg(record)}"
        "<p class='muted'>deletion (red) and insertion (blue) of the tokens in the map's order "
        "(solid) and in random orders (dashed); score = mean of the normalised areas between "
        "them (docs/faithfulness.md)</p>"
    )


def _number(value: Any) -> str:
    if value is None or not math.isfinite(float(value)):
        return "n/a"
    return f"{float(value):.3f}"


def _curves_svg(record: dict[str, Any]) -> str:
    curves = [[float(v) for v in record.get(name, [])] for name, _, _ in _SERIES]
    values = [v for curve in curves for v in curve if math.isfinite(v)]
    if not values or any(len(curve) < 2 for curve in curves):
        return ""
    lo, hi = min(values), max(values)
    span = hi - lo or 1.0
    lines = []
    for curve, (name, color, dash) in zip(curves, _SERIES, strict=True):
        n = len(curve) - 1
        points = " ".join(
            f"{_PAD + k / n * (_WIDTH - 2 * _PAD):.1f},"
            f"{_PAD + (1 - (v - lo) / span) * (_HEIGHT - 2 * _PAD):.1f}"
            for k, v in enumerate(curve)
        )
        lines.append(
            f"<polyline points='{points}' fill='none' stroke='{color}' stroke-width='1.5' "
            f"stroke-dasharray='{dash}'><title>{name}</title></polyline>"
        )
    return (
        f"<svg width='{_WIDTH}' height='{_HEIGHT}' data-figure='faithfulness' "
        f"style='border:1px solid #ddd'>{''.join(lines)}</svg>"
    )
