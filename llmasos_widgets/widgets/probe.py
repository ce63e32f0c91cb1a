"""ProbeWidget: probe accuracy, control accuracy and selectivity by layer; click to select.

Front end: ``js/src/probe.ts`` (built to ``static/probe.js``). What travels: the probed
residual layers (a few ints) and each series as a float32 binary buffer ``[layer]``.

Layer numbering. A probe point ``j`` is residual site ``j`` (``tracing/_anatomy.py``): ``emb``
for ``j = 0``, else ``after L{j-1}``, the residual stream after ``j`` decoder layers; the plot
labels points with these names. The shared ``selected_layer`` counts decoder layers as the
AttentionWidget does, so the point ``j`` of decoder layer ``j - 1``'s output is highlighted when
``selected_layer == j - 1``, and clicking it sets that. The embeddings point (``j = 0``)
belongs to no decoder layer: clicking it clears the selection (``-1``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import traitlets

from llmasos_widgets.widgets._base import STATIC_DIR, ResultWidget, tensor_payload


def residual_to_selected_layer(residual: int) -> int:
    """The ``selected_layer`` of probe point ``residual`` (mirror of ``js/src/probe.ts``)."""
    return residual - 1


class ProbeWidget(ResultWidget):
    """Linear-probe accuracy by layer (``ProbeWidget(probe_result)``).

    Link it with an AttentionWidget (``link_selection(probe_widget, attention_widget)``):
    clicking a layer here selects it there, and a layer selected there is highlighted here.
    """

    _esm = STATIC_DIR / "probe.js"

    layers = traitlets.List(traitlets.Int(), read_only=True).tag(sync=True)
    """list[int], read-only: probed residual sites (0 = ``emb``, j = ``after L{j-1}``)."""

    series = traitlets.Dict(read_only=True).tag(sync=True)
    """dict[str, payload], read-only: float32 ``[layer]`` binary payloads: test_accuracy,
    train_accuracy and, with a control task, control_accuracy and selectivity."""

    majority_baseline = traitlets.Float(0.0, read_only=True).tag(sync=True)
    """float, read-only: held-out accuracy of always predicting the majority label."""

    title = traitlets.Unicode("", read_only=True).tag(sync=True)
    """str, read-only: plot title (dataset name and labels), shown as text."""

    metric = traitlets.Unicode("test_accuracy").tag(sync=True)
    """str, default "test_accuracy": the series drawn emphasized (one of the ``series`` keys)."""

    def __init__(self, result: Any, **kwargs: Any) -> None:
        from llmasos_widgets.probing import ProbeResult

        if not isinstance(result, ProbeResult):
            raise TypeError(
                f"ProbeWidget takes a ProbeResult (from llmasos_widgets.probe(...)), "
                f"got {type(result).__name__}"
            )
        series = {
            "test_accuracy": result.test_accuracy,
            "train_accuracy": result.train_accuracy,
        }
        if result.control_accuracy is not None and result.selectivity is not None:
            series["control_accuracy"] = result.control_accuracy
            series["selectivity"] = result.selectivity
        layers = [int(layer) for layer in result.layers]
        n_layers = int(result.metadata.get("n_layers", max(layers)))
        # Validators read these, so they exist before the traits are initialised.
        self._result = result
        self._dims = {"layers": n_layers, "heads": None, "tokens": None}
        self._series_names = tuple(series)
        super().__init__(**kwargs)
        self.set_trait("layers", layers)
        self.set_trait(
            "series",
            {name: tensor_payload(np.asarray(v, dtype=np.float32)) for name, v in series.items()},
        )
        self.set_trait("majority_baseline", float(result.majority_baseline))
        dataset = result.metadata.get("dataset", "probe")
        self.set_trait("title", f"{dataset}: {' / '.join(result.labels)}")

    def _valid_metrics(self) -> Sequence[str]:
        return self._series_names

    def select_residual(self, residual: int) -> None:
        """Select probe point ``residual`` as a click on it does."""
        if residual not in self.layers:
            raise ValueError(f"layer {residual} was not probed; probed layers: {self.layers}")
        self.selected_layer = residual_to_selected_layer(residual)
