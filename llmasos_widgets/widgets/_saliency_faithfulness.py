"""SaliencyWidget's "faithfulness" button, kernel side (view: ``js/src/lib/faithfulness_view.ts``).

The view sends ``{"type": "faithfulness"}``; the kernel tests the map shown
(:func:`~llmasos_widgets.attribution._faithfulness.faithfulness`), compares every registered
method on the same input and target, and sets the widget's ``faithfulness`` trait:

``{"status": "computing" | "ready" | "error: ...", "method", "score", "comprehensiveness",
"sufficiency", "f_x", "f_baseline", "baseline", "order": [position...], "line": one-line
comparison, "comparison": [{"method", "score"}...] best first, "curves": float32 payload
[4, n + 1] (deletion, deletion_random, insertion, insertion_random)}``; ``{}`` until asked
and again whenever a new map is shown.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from llmasos_widgets.widgets._base import tensor_payload

log = logging.getLogger(__name__)

MESSAGE_TYPE = "faithfulness"


def faithfulness_trait(widget: Any) -> dict[str, Any]:
    """Compute the trait value for the map ``widget`` shows (see the module docstring)."""
    from llmasos_widgets.attribution import compare_faithfulness

    saliency = widget.saliency
    if saliency is None or widget._model is None:
        raise RuntimeError("no saliency map is shown yet")
    comparison = compare_faithfulness(
        widget._model,
        widget._input_ids,
        target=widget._target_spec,
        position=int(saliency.target_position),
        saliencies=[saliency],
    )
    result = comparison[saliency.method]
    curves = np.stack(
        [result.deletion, result.deletion_random, result.insertion, result.insertion_random]
    ).astype(np.float32)
    return {
        "status": "ready",
        "method": result.method,
        "score": _finite(result.score),
        "comprehensiveness": _finite(result.comprehensiveness),
        "sufficiency": _finite(result.sufficiency),
        "f_x": result.f_x,
        "f_baseline": result.f_baseline,
        "baseline": result.baseline,
        "note": result.note,
        "order": [int(p) for p in result.order],
        "line": comparison.line,
        "comparison": [{"method": r.method, "score": _finite(r.score)} for r in comparison.results],
        "curves": tensor_payload(curves),
    }


def show_faithfulness(widget: Any) -> dict[str, Any]:
    """Set ``widget.faithfulness`` (status first, so the view shows that it is working)."""
    widget.set_trait("faithfulness", {"status": "computing …"})
    try:
        value = faithfulness_trait(widget)
    except Exception as error:  # shown in the view; the kernel stays usable
        value = {"status": f"error: {error}"}
    widget.set_trait("faithfulness", value)
    return value


def on_message(widget: Any, content: dict[str, Any], _buffers: list[bytes]) -> None:
    """``on_msg`` handler: answers ``{"type": "faithfulness"}``, ignores other messages."""
    if isinstance(content, dict) and content.get("type") == MESSAGE_TYPE:
        show_faithfulness(widget)


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else float(value)
