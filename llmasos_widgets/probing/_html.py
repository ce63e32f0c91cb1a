"""``ProbeResult.to_html``: the accuracy-by-layer plot as a standalone Bokeh page."""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmasos_widgets.tracing import site_label

if TYPE_CHECKING:
    from llmasos_widgets.probing._result import ProbeResult

# One color per series, shared with js/src/probe.ts so the widget and the page match.
SERIES_COLORS = {
    "test accuracy": "#1f77b4",
    "control accuracy": "#ff7f0e",
    "selectivity": "#2ca02c",
    "majority baseline": "#7f7f7f",
}


def write_probe_html(result: ProbeResult, path: Path) -> Path:
    """Write ``path`` with every script inline (``bokeh.resources.INLINE``): it opens offline."""
    from bokeh.embed import file_html
    from bokeh.models import ColumnDataSource, HoverTool, Range1d
    from bokeh.models.annotations import Legend, LegendItem
    from bokeh.plotting import figure
    from bokeh.resources import INLINE

    layers = [int(layer) for layer in result.layers]
    series = {
        "test accuracy": [float(a) for a in result.test_accuracy],
        "majority baseline": [result.majority_baseline] * len(layers),
    }
    if result.control_accuracy is not None and result.selectivity is not None:
        series["control accuracy"] = [float(a) for a in result.control_accuracy]
        series["selectivity"] = [float(s) for s in result.selectivity]

    title = f"Linear probe accuracy by residual site: {result.metadata.get('dataset', 'probe')}"
    plot = figure(
        title=title,
        x_axis_label="residual site (emb = embeddings, after L0 = output of decoder layer L0, …)",
        y_axis_label="held-out accuracy",
        width=640,
        height=360,
        y_range=Range1d(start=min(0.0, *series.get("selectivity", [0.0])) - 0.05, end=1.05),
        tools="pan,box_zoom,reset,save",
    )
    plot.xaxis.ticker = layers
    plot.xaxis.major_label_overrides = {layer: site_label(layer) for layer in layers}
    items = []
    for name, values in series.items():
        source = ColumnDataSource(
            {
                "layer": layers,
                "site": [site_label(layer) for layer in layers],
                "value": values,
                "series": [name] * len(layers),
            }
        )
        dashed = name == "majority baseline"
        line = plot.line(
            "layer", "value", source=source, color=SERIES_COLORS[name], line_width=2,
            line_dash="dashed" if dashed else "solid",
        )  # fmt: skip
        renderers: list[Any] = [line]
        if not dashed:
            renderers.append(
                plot.scatter("layer", "value", source=source, color=SERIES_COLORS[name], size=7)
            )
        items.append(LegendItem(label=name, renderers=renderers))
    plot.add_layout(Legend(items=items, location="center"), "right")
    plot.add_tools(HoverTool(tooltips=[("", "@series"), ("site", "@site"), ("", "@value{0.000}")]))

    page = file_html(plot, INLINE, title=html.escape(title))
    path.write_text(page, encoding="utf-8")
    return path
