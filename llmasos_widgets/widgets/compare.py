"""CompareWidget: two models on one text side by side, linked by one selection.

Composition (an ``ipywidgets.VBox``): model A's and model B's :class:`AttentionWidget`
(token strip, head grid, the selected head's pattern) next to each other, and below them a
:class:`CompareDifferenceWidget` (``js/src/compare.ts``): the head summary of A, of B and B - A
(diverging legend), how far each head's attention moved, saliency of the same target in both
and the logit-lens difference ``[site, token]``. One :class:`Selection` links all three, so a
head, layer or token selected in any part is selected in all.

What travels to ``compare.ts``: float32 ``[layer, head]`` summaries of A and B by name and the
attention distance, ``[site, token]`` saliency of A and B and lens arrays, as binary payloads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ipywidgets
import numpy as np
import traitlets

from llmasos_widgets.widgets._base import (
    STATIC_DIR,
    SelectionWidget,
    TokensWidget,
    tensor_payload,
)
from llmasos_widgets.widgets._selection import Selection
from llmasos_widgets.widgets.attention import AttentionWidget


def _payload(array: np.ndarray | None) -> dict[str, Any]:
    return {} if array is None else tensor_payload(np.asarray(array, dtype=np.float32))


class CompareDifferenceWidget(TokensWidget):
    """Head summaries of A, B and B - A, attention moved, saliency and logit-lens difference.

    Built from a :class:`~llmasos_widgets.comparison.Comparison`; usually shown inside a
    :class:`CompareWidget`. ``metric`` picks the head summary of the three grids.
    """

    _esm = STATIC_DIR / "compare.js"

    n_layers = traitlets.Int(0, read_only=True).tag(sync=True)
    """int, read-only: decoder layers (the lens and saliency have ``n_layers + 1`` sites)."""

    n_heads = traitlets.Int(0, read_only=True).tag(sync=True)
    """int, read-only: attention heads per layer."""

    model_names = traitlets.List(traitlets.Unicode(), read_only=True).tag(sync=True)
    """list[str], read-only: ``[name of A, name of B]``."""

    summaries_a = traitlets.Dict(read_only=True).tag(sync=True)
    """dict[str, payload], read-only: A's float32 ``[layer, head]`` head summaries."""

    summaries_b = traitlets.Dict(read_only=True).tag(sync=True)
    """dict[str, payload], read-only: B's float32 ``[layer, head]`` head summaries."""

    attention_distance = traitlets.Dict(read_only=True).tag(sync=True)
    """payload, read-only: float32 ``[layer, head]`` mean total-variation distance between A's
    and B's attention rows (``Comparison.attention_distance()``)."""

    saliency_a = traitlets.Dict(read_only=True).tag(sync=True)
    """payload, read-only: A's float32 ``[site, token]`` saliency ({} when not computed)."""

    saliency_b = traitlets.Dict(read_only=True).tag(sync=True)
    """payload, read-only: B's float32 ``[site, token]`` saliency of the same target."""

    saliency_target = traitlets.Unicode("", read_only=True).tag(sync=True)
    """str, read-only: what the saliency explains (``log p('are') after token 5``)."""

    lens_difference = traitlets.Dict(read_only=True).tag(sync=True)
    """payload, read-only: float32 ``[site, token]``: B's logit-lens probability of the target
    token minus A's (``Comparison.lens_target_difference``)."""

    lens_distance = traitlets.Dict(read_only=True).tag(sync=True)
    """payload, read-only: float32 ``[site, token]`` total-variation distance between the two
    models' logit-lens distributions."""

    target_token = traitlets.Unicode("", read_only=True).tag(sync=True)
    """str, read-only: the token whose lens probability is compared."""

    metric = traitlets.Unicode("entropy").tag(sync=True)
    """str, default "entropy": the head summary of the A, B and B - A grids."""

    def __init__(self, comparison: Any, **kwargs: Any) -> None:
        tokens = [str(t) for t in comparison.tokens]
        names = [n for n in comparison.summary_names if n != "attention"]
        self._dims = {
            "layers": int(comparison.n_layers),
            "heads": int(comparison.n_heads),
            "tokens": len(tokens),
        }
        self._summary_names = tuple(names)
        if "metric" not in kwargs and names and "entropy" not in names:
            kwargs["metric"] = names[0]
        super().__init__(**kwargs)
        self.comparison = comparison
        a, b = comparison.a, comparison.b
        with self.hold_trait_notifications():
            self._show_tokens(tokens, getattr(a, "token_style", None))
            self.set_trait("n_layers", self._dims["layers"])
            self.set_trait("n_heads", self._dims["heads"])
            self.set_trait("model_names", [str(a.model_name), str(b.model_name)])
            self.set_trait("summaries_a", {n: _payload(a.head_summaries[n]) for n in names})
            self.set_trait("summaries_b", {n: _payload(b.head_summaries[n]) for n in names})
            self.set_trait("attention_distance", _payload(comparison.attention_distance()))
            has_saliency = a.saliency is not None and b.saliency is not None
            self.set_trait("saliency_a", _payload(a.saliency.scores) if has_saliency else {})
            self.set_trait("saliency_b", _payload(b.saliency.scores) if has_saliency else {})
            self.set_trait("saliency_target", a.saliency.target if has_saliency else "")
            self.set_trait("lens_difference", _payload(comparison.lens_target_difference))
            self.set_trait("lens_distance", _payload(comparison.lens_distance))
            self.set_trait("target_token", str(comparison.target_token))

    def _valid_metrics(self) -> Sequence[str]:
        return self._summary_names


class CompareWidget(ipywidgets.VBox):
    """Model A and model B on one text: ``CompareWidget(comparison)`` or
    ``CompareWidget(model_a, model_b, text, **compare_kwargs)``.

    Parts (each a widget of its own, all linked by :attr:`selection`): :attr:`view_a` and
    :attr:`view_b` (``AttentionWidget`` of each model) and :attr:`difference`
    (:class:`CompareDifferenceWidget`). Selection keywords (``selected_layer=2``,
    ``selected_heads=[1]``) set the starting selection of all three.
    """

    def __init__(
        self, source: Any, model_b: Any = None, text: str | None = None, **kwargs: Any
    ) -> None:
        selection_keys = {"selected_layer", "selected_heads", "selected_tokens", "metric"}
        start = {k: kwargs.pop(k) for k in list(kwargs) if k in selection_keys}
        if model_b is None and text is None and not kwargs:
            comparison = source
        else:
            if model_b is None or text is None:
                raise TypeError(
                    "CompareWidget(comparison) or CompareWidget(model_a, model_b, text): "
                    "pass both models and the text"
                )
            from llmasos_widgets.comparison import compare

            comparison = compare(source, model_b, text, **kwargs)
        if not all(hasattr(comparison, name) for name in ("a", "b", "attention_distance")):
            raise TypeError(
                f"CompareWidget needs a Comparison (llmasos_widgets.compare(...)), got "
                f"{type(comparison).__name__}"
            )
        self.comparison = comparison
        metric = start.pop("metric", None)
        self.view_a = AttentionWidget(comparison.a, **start)
        self.view_b = AttentionWidget(comparison.b)
        self.difference = CompareDifferenceWidget(
            comparison, **({"metric": metric} if metric else {})
        )
        if metric:
            self.view_a.metric = self.view_b.metric = metric
        # A gives its selection to the others
        self.selection = Selection(self.view_a, self.view_b, self.difference)
        header_a = ipywidgets.HTML(value=f"<b>A</b>: {_escaped(comparison.a.model_name)}")
        header_b = ipywidgets.HTML(value=f"<b>B</b>: {_escaped(comparison.b.model_name)}")
        sides = ipywidgets.HBox(
            [
                ipywidgets.VBox([header_a, self.view_a]),
                ipywidgets.VBox([header_b, self.view_b]),
            ]
        )
        super().__init__([sides, self.difference])

    @property
    def parts(self) -> tuple[SelectionWidget, ...]:
        """The linked views: A's attention, B's attention, the difference panel."""
        return (self.view_a, self.view_b, self.difference)

    def close(self) -> None:
        self.selection.unlink()
        for part in self.parts:
            part.close()
        super().close()


def _escaped(text: str) -> str:
    import html

    return html.escape(str(text))
