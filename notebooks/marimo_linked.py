"""Attention, saliency and probe widgets linked in a marimo notebook.

Run it as an app:   marimo run notebooks/marimo_linked.py
or edit it:         marimo edit notebooks/marimo_linked.py
Hover a token in one widget and the others highlight it; click a probe point, a saliency row or
a layer label to select that layer everywhere; click a head to see its pattern; the last button
saves the probe plot from Python (``save_figure``). Tested in
Chromium by tests/browser/test_marimo_browser.py (docs/environments.md).
"""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="full")


@app.cell
def _():
    import marimo as mo

    import llmasos_widgets as lw
    from llmasos_widgets.probing import subject_number_dataset

    return lw, mo, subject_number_dataset


@app.cell
def _(lw, subject_number_dataset):
    model = lw.load_model("tiny-llama", device="cpu")
    text = "the keys to the old cabinet are on the table . the keys to the old cabinet are"
    result = lw.probe(model, subject_number_dataset(120, seed=3), progress=False)
    attention = lw.AttentionWidget(model, text)
    saliency = lw.SaliencyWidget(model, text)
    probe_widget = lw.ProbeWidget(result)
    # linking is plain traitlets in the kernel: a change from any view reaches the others
    selection = lw.link_selection(attention, saliency, probe_widget)
    return attention, probe_widget, saliency, selection


@app.cell
def _(attention, mo, probe_widget, saliency):
    mo.vstack(
        [
            mo.md("### Probe accuracy by layer (click a point to select its layer)"),
            mo.ui.anywidget(probe_widget),
            mo.md("### Saliency of the last token's prediction"),
            mo.ui.anywidget(saliency),
            mo.md("### Attention (click a head in the grid to see its pattern)"),
            mo.ui.anywidget(attention),
        ]
    )
    return


@app.cell
def _(mo, probe_widget):
    # save_figure from Python: the browser encodes the plot and the kernel writes the file
    # (docs/figures.md); here on a click, once the views above have rendered
    mo.ui.button(
        label="save the probe plot to figures/probe.svg",
        on_click=lambda _: str(probe_widget.save_figure("figures/probe.svg", "probe").path),
    )
    return


if __name__ == "__main__":
    app.run()
