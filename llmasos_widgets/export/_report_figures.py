"""The HTML report's figures: drawn and saved by the widgets' own front-end code.

Each figure is a ``<canvas data-report-matrix=...>`` holding its values (base64); the report
inlines ``static/report_figures.js`` (built from ``js/src/report_figures.ts``), which paints
them with the widgets' color code (head grid: min-max normalized, viridis; saliency: each row
scaled to its largest magnitude, diverging; pattern: sqrt of weight / max, viridis) at the
screen's pixel ratio and adds the widgets' save buttons (``js/src/lib/figures.ts``): every
figure downloads as ``report-<name>.png`` at its displayed size × devicePixelRatio.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from llmasos_widgets.tracing import site_label

if TYPE_CHECKING:
    from llmasos_widgets.explanation import Explanation

SCRIPT_PATH = Path(__file__).resolve().parent.parent / "static" / "report_figures.js"
_GRID_CELL_PX = 18
_SALIENCY_ROW_PX = 16
_MAX_SALIENCY_WIDTH_PX = 900
_KINDS = ("grid", "saliency", "pattern")


def matrix_canvas(
    kind: str, name: str, values: np.ndarray, width: int, height: int, label: str
) -> str:
    """A report canvas painting ``values`` ([rows, cols]) at ``width`` × ``height`` CSS pixels.

    ``uint8`` values mean ``value / 255``; anything else is sent as float32.
    """
    if kind not in _KINDS:
        raise ValueError(f"unknown figure kind {kind!r}; use one of {', '.join(_KINDS)}")
    array = np.asarray(values)
    if array.ndim != 2:
        raise ValueError(f"a figure matrix must be [rows, cols], got shape {array.shape}")
    dtype = "uint8" if array.dtype == np.uint8 else "float32"
    data = np.ascontiguousarray(array, dtype="<f4" if dtype == "float32" else np.uint8).tobytes()
    encoded = base64.b64encode(data).decode("ascii")
    rows, cols = array.shape
    return (
        f"<canvas data-figure='{html.escape(name, quote=True)}' data-report-matrix='{kind}' "
        f"data-rows='{rows}' data-cols='{cols}' data-width='{width}' data-height='{height}' "
        f"data-dtype='{dtype}' data-values='{encoded}' role='img' "
        f"aria-label='{html.escape(label, quote=True)}' "
        f"style='width:{width}px;height:{height}px'></canvas>"
    )


def pattern_canvas(pattern: np.ndarray, name: str, size: int, label: str) -> str:
    """An attention pattern ([query, key] weights in [0, 1]) as a ``size`` px square figure."""
    quantized = np.round(np.clip(np.asarray(pattern, dtype=np.float64), 0.0, 1.0) * 255).astype(
        np.uint8
    )
    return matrix_canvas("pattern", name, quantized, size, size, label)


def figures_section(explanation: Explanation) -> str:
    """Head summaries as the attention widget's grid, and the saliency map as the saliency
    widget's heatmap (when the explanation has saliency)."""
    figures = []
    for name, scores in explanation.head_summaries.items():
        values = np.asarray(scores, dtype=np.float32)
        n_layers, n_heads = values.shape
        figures.append(
            f"<figure><figcaption>head grid: {html.escape(name.replace('_', ' '))}"
            f"<br><span class='muted'>rows L0..L{n_layers - 1}, columns H0..H{n_heads - 1}; "
            "min-max scaled</span></figcaption>"
            + matrix_canvas(
                "grid",
                f"grid-{name}",
                values,
                n_heads * _GRID_CELL_PX,
                n_layers * _GRID_CELL_PX,
                f"head grid colored by {name}",
            )
            + "</figure>"
        )
    saliency = explanation.saliency
    if saliency is not None:
        scores = np.asarray(saliency.scores, dtype=np.float32)
        rows, cols = scores.shape
        cell = max(4, min(28, _MAX_SALIENCY_WIDTH_PX // max(cols, 1)))  # as js/src/saliency.ts
        sites = ", ".join(site_label(int(layer)) for layer in saliency.layers)
        figures.append(
            f"<figure><figcaption>saliency map ({html.escape(saliency.method)})"
            f"<br><span class='muted'>rows: {html.escape(sites)}; columns: tokens; "
            "red raises the target, blue lowers it</span></figcaption>"
            + matrix_canvas(
                "saliency", "saliency", scores, cols * cell, rows * _SALIENCY_ROW_PX, "saliency map"
            )
            + "</figure>"
        )
    return (
        "<h2>Figures</h2><p class='muted'>drawn by the widgets' own code; each has a save button "
        "(PNG at the displayed size × the screen's pixel ratio)</p>" + "".join(figures)
    )


def figure_script() -> str:
    """The inline module that paints the figures and adds their save buttons.

    Without a built front end (``cd js && npm run build``) the report says so where the
    figures would be, instead of failing: the rest of the report is plain HTML.
    """
    if not SCRIPT_PATH.exists():
        return (
            "<p class='warn' data-testid='report-figures-missing'>figures are not drawn: "
            f"{html.escape(SCRIPT_PATH.name)} is missing from this installation "
            "(build the front end: cd js && npm run build)</p>"
        )
    # "</script" would end the element early; "<\/script" means the same inside JS strings
    code = re.sub(
        r"</(script)", r"<\\/\1", SCRIPT_PATH.read_text(encoding="utf-8"), flags=re.IGNORECASE
    )
    return f"<script type='module'>{code}</script>"
