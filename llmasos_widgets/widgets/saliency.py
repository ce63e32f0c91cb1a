"""SaliencyWidget: tokens colored by attribution and a ``[layer, token]`` heatmap, linked.

Front end: ``js/src/saliency.ts`` (built to ``static/saliency.js``). What travels: the token
strings (JSON, shown as text only), the ``[site, token]`` scores and ``[site]`` convergence
deltas as float32 binary buffers, and a few scalars (target, probability, status, progress).

Interaction (decided here, mirrored in the view):

* A plain click on a token in this widget's text makes it the **target position** (the view
  sets ``target_position``): the kernel recomputes the attributions of the same target (a
  token, a contrast, or the model's own prediction) for the next token after it. Dragging
  brushes ``selected_tokens`` (shared with linked widgets) without recomputing, and a token
  selected in a linked widget does not retarget this one (that would start a long
  computation on every click elsewhere).
* ``method`` and ``baseline`` (dropdowns) also recompute; ``status``/``progress`` show it.
  Unless a baseline was chosen (constructor or dropdown), the baseline follows the method's
  default (``default_baseline``: ``pad`` for integrated gradients, ``zero`` for occlusion).
* Integrated gradients that did not converge (a row's completeness error above 5% of
  ``|f(x) − f(baseline)|``) show ``convergence_warning`` next to the map, saying what to
  change; the widget shows it instead of emitting ``ConvergenceWarning`` in the kernel.
* Rows are residual sites (0 = embeddings, ``i`` = output of decoder layer ``i``). The shared
  ``selected_layer`` counts decoder layers like the AttentionWidget, so site ``i`` is
  ``selected_layer == i - 1``; clicking the embeddings row clears it (-1). The token strip is
  colored by the selected layer's row, or by the embeddings row when none is selected.
"""

from __future__ import annotations

import difflib
import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import traitlets

from llmasos_widgets._readable_tokens import TokenStyle, readable_quoted
from llmasos_widgets.widgets import _saliency_faithfulness as _faithfulness
from llmasos_widgets.widgets._base import STATIC_DIR, TokensWidget, tensor_payload
from llmasos_widgets.widgets._generation_saliency import GenerationSaliencyMixin

_PROGRESS_INTERVAL_S = 0.1  # progress trait updates at most this often (each one is a message)


class SaliencyWidget(GenerationSaliencyMixin, TokensWidget):
    """Gradient saliency of one next-token target, by token and by layer.

    ``SaliencyWidget(model, text, target=" are")``; ``model`` is an ``ExplainableModel`` or a
    ``transformers`` model with ``tokenizer=``. ``target``, ``method``, ``baseline``,
    ``n_steps``, ``position`` and ``layers`` mean what they mean in
    :func:`llmasos_widgets.attribution.attribute` (``layers=None``: the method's default, the
    embeddings alone for integrated gradients and occlusion; ``layers="all"`` for every row).
    While it recomputes, ``status`` names the work (sites × steps × passes) and ``progress``
    advances. ``text`` may be an Explanation from
    ``generate()``: the view then shows its saliency matrix (``_generation_saliency.py``).
    """

    _esm = STATIC_DIR / "saliency.js"
    _css = STATIC_DIR / "saliency.css"
    _dropped_on_close = ("_model",)  # so the model can be collected

    sites = traitlets.List(traitlets.Int(), read_only=True).tag(sync=True)
    """list[int], read-only: residual site of each heatmap row (0 = embeddings)."""

    scores = traitlets.Dict(read_only=True).tag(sync=True)
    """payload, read-only: float32 ``[site, token]`` attributions (binary buffer)."""

    convergence_delta = traitlets.Dict(read_only=True).tag(sync=True)
    """payload, read-only: float32 ``[site]`` completeness error (NaN unless integrated
    gradients)."""

    signed = traitlets.Bool(True, read_only=True).tag(sync=True)
    """bool, read-only: whether scores keep a sign (``gradient`` is a norm, unsigned)."""

    method = traitlets.Unicode("gradient").tag(sync=True)
    """str, default "gradient": attribution method; changing it recomputes."""

    baseline = traitlets.Unicode("zero").tag(sync=True)
    """str: baseline ("zero", "pad", "unk"); changing it recomputes. Default: the method's
    (``default_baseline``), following the method until a baseline is chosen."""

    n_steps = traitlets.Int(100).tag(sync=True)
    """int, default 100 (``DEFAULT_N_STEPS``): integrated-gradients steps; changing it
    recomputes."""

    convergence_warning = traitlets.Unicode("", read_only=True).tag(sync=True)
    """str, read-only: why the integrated gradients shown have not converged and what to
    change (``Saliency.convergence_warning``); "" when they have, or for other methods."""

    target_position = traitlets.Int(-1).tag(sync=True)
    """int: token whose next-token prediction is explained (default: the last token)."""

    method_options = traitlets.List(traitlets.Unicode(), read_only=True).tag(sync=True)
    """list[str], read-only: the registered methods (dropdown)."""

    baseline_options = traitlets.List(traitlets.Unicode(), read_only=True).tag(sync=True)
    """list[str], read-only: the named baselines this tokenizer supports (dropdown)."""

    uses_baseline = traitlets.Bool(True, read_only=True).tag(sync=True)
    """bool, read-only: whether ``method`` uses ``baseline`` (the dropdown is disabled if not)."""

    target = traitlets.Unicode("", read_only=True).tag(sync=True)
    """str, read-only: what is explained, e.g. ``log p('are') after token 5``."""

    target_probability = traitlets.Float(0.0, read_only=True).tag(sync=True)
    """float, read-only: the model's probability of the target token there."""

    status = traitlets.Unicode("", read_only=True).tag(sync=True)
    """str, read-only: "ready", "computing …" or "error: …" (the last result stays shown)."""

    progress = traitlets.Float(1.0, read_only=True).tag(sync=True)
    """float, read-only: fraction of the current computation done (1.0 when idle)."""

    attention_sinks = traitlets.Dict(read_only=True).tag(sync=True)
    """dict, read-only: attention sinks of the model on this text (``explanation/_sinks.py``;
    layout of ``AttentionWidget.attention_sinks``), marked in the token strip: a sink's
    gradient is often the largest of the text without the token mattering to the reader."""

    exclude_sinks_from_scale = traitlets.Bool(False).tag(sync=True)
    """bool, default False: each row of the map is scaled by its largest |score| over the
    tokens that are not sinks (sink cells capped at the end colors; the legend says so)."""

    faithfulness = traitlets.Dict(read_only=True).tag(sync=True)
    """dict, read-only: deletion/insertion test of the map shown and a one-line comparison of
    the methods ({} until the view's "faithfulness" button or :meth:`compute_faithfulness`
    asks; cleared when a new map is shown). Layout: ``widgets/_saliency_faithfulness.py``."""

    def __init__(
        self,
        model: Any,
        text: Any,
        *,
        target: Any = None,
        method: str = "gradient",
        baseline: str | None = None,
        n_steps: int | None = None,
        position: int = -1,
        layers: Any = None,
        tokenizer: Any = None,
        **kwargs: Any,
    ) -> None:
        from llmasos_widgets.attribution import (
            BASELINES,
            DEFAULT_N_STEPS,
            as_target,
            available_methods,
        )
        from llmasos_widgets.models import as_explainable
        from llmasos_widgets.targets import resolve_position

        explainable = as_explainable(model, tokenizer)
        self._model: Any = explainable
        self._target_spec = as_target(target)
        generated_ids = self._generation_input(explainable, text)
        self._input_ids: torch.Tensor = (
            explainable.encode(text) if generated_ids is None else generated_ids
        )
        n_tokens = int(self._input_ids.shape[1])
        n_layers = len(_layers_of(explainable.hf_model))
        # Validators read these, so they exist before the traits are initialised.
        self._dims = {"layers": n_layers, "heads": None, "tokens": n_tokens}
        tok = explainable.tokenizer
        self._baselines = tuple(
            b for b in BASELINES if b == "zero" or getattr(tok, f"{b}_token_id", None) is not None
        )
        self._methods = tuple(available_methods())
        self._saliency: Any = None
        # attribute's ``layers``; None: the method's default (embeddings only for the
        # methods whose every site costs its own passes)
        self._layers = layers
        self._last_progress = 0.0
        self._computing = False
        self._baseline_follows_method = False  # set below, once the traits hold their values
        self._following = False
        super().__init__(**kwargs)
        self._show_tokens(list(explainable.tokens(self._input_ids)), TokenStyle.of(tok))
        self.set_trait("method_options", list(self._methods))
        self.set_trait("baseline_options", list(self._baselines))
        with self.hold_trait_notifications():
            self.method = method
            self.baseline = self._method_baseline(method) if baseline is None else baseline
            self.n_steps = DEFAULT_N_STEPS if n_steps is None else n_steps
            self.target_position = resolve_position(position, n_tokens)
        # the baseline follows the method's default until one is chosen
        self._baseline_follows_method = baseline is None
        self.on_msg(_faithfulness.on_message)  # the view's "faithfulness" button
        self._start_generation(text)
        self.set_trait("attention_sinks", _sinks_summary(explainable, self._input_ids, text))
        self.recompute(raise_errors=True)

    # -- state ------------------------------------------------------------------------------
    @property
    def saliency(self) -> Any:
        """The :class:`~llmasos_widgets.attribution.Saliency` shown (read-only)."""
        return self._saliency

    def _valid_metrics(self) -> Sequence[str] | None:
        return None

    @traitlets.validate("method")
    def _check_method(self, proposal: dict[str, Any]) -> str:
        return _one_of("method", str(proposal["value"]), self._methods)

    @traitlets.validate("baseline")
    def _check_baseline(self, proposal: dict[str, Any]) -> str:
        return _one_of("baseline", str(proposal["value"]), self._baselines)

    @traitlets.validate("n_steps")
    def _check_steps(self, proposal: dict[str, Any]) -> int:
        value = int(proposal["value"])
        if value < 1:
            raise ValueError(f"n_steps must be >= 1, got {value}")
        return value

    @traitlets.validate("target_position")
    def _check_position(self, proposal: dict[str, Any]) -> int:
        value = int(proposal["value"])
        n = self._dims["tokens"] or 0
        if not 0 <= value < n:
            raise ValueError(f"target_position={value} is out of range: use 0..{n - 1}")
        return value

    def _method_baseline(self, method: str) -> str:
        from llmasos_widgets.attribution import default_baseline

        return default_baseline(method, self._model.tokenizer)

    @traitlets.observe("method", "baseline", "n_steps", "target_position")
    def _on_settings(self, change: dict[str, Any]) -> None:
        if change["name"] == "baseline" and not self._following:
            self._baseline_follows_method = False
        if change["name"] == "method" and self._baseline_follows_method:
            self._following = True  # one recompute for the method and its baseline
            try:
                self.baseline = self._method_baseline(self.method)
            finally:
                self._following = False
        if self._saliency is not None and not self._following:
            self.recompute()  # the first computation is run by __init__

    # -- computation ------------------------------------------------------------------------
    def recompute(self, *, raise_errors: bool = False) -> None:
        """Attribute again with the current settings (called on every setting change).

        Runs in the kernel; ``status`` and ``progress`` stream to the view meanwhile. On an
        error the previous result stays and ``status`` says what went wrong.
        """
        from llmasos_widgets.attribution import ConvergenceWarning, attribute, get_method

        if self._model is None:
            raise RuntimeError("this SaliencyWidget was closed")
        self.set_trait("uses_baseline", get_method(self.method).needs_baseline)
        if self._recompute_generation():  # a generated token's row (matrix of the method)
            return
        self.set_trait("status", f"computing {self._work_label()} …")
        self.set_trait("progress", 0.0)
        self._last_progress = time.monotonic()
        try:
            with warnings.catch_warnings():
                # shown in the view (``convergence_warning``), not as kernel output
                warnings.simplefilter("ignore", ConvergenceWarning)
                saliency = attribute(
                    self._model,
                    self._input_ids,
                    target=self._target_spec,
                    method=self.method,
                    baseline=self.baseline,
                    n_steps=self.n_steps,
                    position=self.target_position,
                    layers=self._layers,
                    progress=self._report_progress,
                )
        except Exception as error:
            self.set_trait("status", f"error: {error}")
            self.set_trait("progress", 1.0)
            if raise_errors:
                raise
            return
        self._show(saliency)

    def compute_faithfulness(self) -> dict[str, Any]:
        """Test the map shown (deletion/insertion vs random order, every method compared) and
        show it next to the map; returns the ``faithfulness`` trait value."""
        return _faithfulness.show_faithfulness(self)

    def _work_label(self) -> str:
        """The method, and for one that runs many passes the work estimate of attribute's
        progress bar (sites × steps × passes)."""
        from llmasos_widgets.attribution import get_method, resolve_sites

        method = get_method(self.method)
        layers = method.default_layers if self._layers is None else self._layers
        n_sites = len(resolve_sites(layers, int(self._dims["layers"] or 0) + 1))
        units, label = method.work(n_sites, self.target_position + 1, self.n_steps, "adaptive")
        name = self.method.replace("_", " ")
        return name if units == 1 else f"{name} ({label.split(': ', 1)[1]})"

    def _report_progress(self, fraction: float) -> None:
        now = time.monotonic()
        if now - self._last_progress >= _PROGRESS_INTERVAL_S or fraction >= 1.0:
            self._last_progress = now
            self.set_trait("progress", float(fraction))

    def _show(self, saliency: Any) -> None:
        from llmasos_widgets.attribution import get_method

        delta = saliency.convergence_delta
        if delta is None:
            delta = np.full(len(saliency.layers), np.nan, dtype=np.float32)
        self._saliency = saliency
        with self.hold_trait_notifications():
            self.set_trait("sites", [int(site) for site in saliency.layers])
            self.set_trait("scores", tensor_payload(saliency.scores))
            self.set_trait("convergence_delta", tensor_payload(delta))
            self.set_trait("signed", get_method(saliency.method).signed)
            # token strings in the description read as text (log p('␣are'), not 'Ġare')
            style = TokenStyle.of(self._model.tokenizer)
            self.set_trait("target", readable_quoted(saliency.target, style))
            self.set_trait("target_probability", float(saliency.target_probability))
            self.set_trait("convergence_warning", saliency.convergence_warning)
            self.set_trait("faithfulness", {})  # a new map has not been tested
            self.set_trait("progress", 1.0)
            self.set_trait("status", "ready")


def _sinks_summary(explainable: Any, ids: torch.Tensor, source: Any) -> dict[str, Any]:
    """The sinks of a generated Explanation shown (as the AttentionWidget reads them), else
    measured on ``ids`` (one forward)."""
    if hasattr(source, "find_attention_sinks"):
        from llmasos_widgets.widgets.attention import sinks_summary

        return sinks_summary(source)
    from llmasos_widgets.explanation import measure_sinks

    return measure_sinks(explainable, ids).summary()


def _layers_of(hf_model: Any) -> Any:
    from llmasos_widgets.tracing import decoder_layers

    return decoder_layers(hf_model)


def _one_of(what: str, value: str, valid: Sequence[str]) -> str:
    if value in valid:
        return value
    close = difflib.get_close_matches(value, list(valid), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"unknown {what} {value!r}{hint} valid: {', '.join(valid)}")
