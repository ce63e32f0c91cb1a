"""AttentionWidget: token strip, layer × head grid and pattern view, linked by one selection.

Front end: ``js/src/attention.ts`` (built to ``static/attention.js``). What travels:

* at first render (traits): tokens (JSON strings — data, never markup) with their readable
  ``display_tokens`` and ``token_kinds`` (see ``llmasos_widgets._readable_tokens``), ``n_layers``,
  ``n_heads`` and the ``[layer, head]`` head summaries as float32 binary buffers;
* per selected head (custom message, pushed when the selection changes or when a freshly
  rendered view asks): ``{"type": "pattern", layer, head, n_tokens, layout, encoding}`` with
  buffers ``[row_scale float32, levels uint8]`` — see :func:`encode_pattern`;
* on request while a token is hovered (custom message): ``{"type": "flow", request_id,
  n_layers, n_heads}`` with one float32 ``[layer, head]`` buffer of hover-flow values for
  the heads whose patterns the browser does not have (``views.flow_values``, block by block
  from q/k at any T);
* on request of the pattern view (custom message): ``request_view`` -> ``view``, the visible
  region pooled at the view's pixel resolution (``widgets/_pattern_views.py``). Whole
  ``pattern`` messages are sent only up to ``full_pattern_limit`` tokens.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import traitlets

from llmasos_widgets.views import flow_values
from llmasos_widgets.widgets._base import (
    STATIC_DIR,
    TokensWidget,
    encode_pattern,
    resolve_explanation,
    tensor_payload,
)
from llmasos_widgets.widgets._pattern_views import ViewCache, ViewRequest

log = logging.getLogger(__name__)

BRUSHED_METRIC = "brushed"
"""Grid metric computed in the browser: attention flow of the brushed tokens per head."""


class AttentionWidget(TokensWidget):
    """Attention of every head on one text: token strip, layer × head grid, pattern view.

    ``AttentionWidget(explanation)``, ``AttentionWidget(model, text)`` with an
    ``ExplainableModel``, or ``AttentionWidget(hf_model, text, tokenizer=tok)``. Selection
    traits may be passed as keywords (``selected_layer=3, selected_heads=[0, 5]``).
    """

    _esm = STATIC_DIR / "attention.js"
    _css = STATIC_DIR / "attention.css"
    _dropped_on_close = ("_explanation",)

    display_tokens = traitlets.List(traitlets.Unicode(), read_only=True).tag(
        sync=True, to_json=lambda value, widget: _elided_display(value, widget.tokens)
    )
    """list[str], read-only: each token as a reader reads it (decoded text, real whitespace,
    "" for a continuation); see ``llmasos_widgets._readable_tokens.show_tokens``. Sent as []
    when identical to ``tokens`` (half the first render at 32k tokens)."""

    token_kinds = traitlets.List(traitlets.Unicode(), read_only=True).tag(
        sync=True, to_json=lambda value, widget: _sparse_kinds(value)
    )
    """list[str], read-only: per token "text", "special", "continuation" (later bytes of a
    character shown on an earlier token) or "bytes" (bytes that form no character). Sent as
    ``"index:kind"`` entries for the tokens that are not "text" when they are the fewer."""

    n_layers = traitlets.Int(0, read_only=True).tag(sync=True)
    """int, read-only: number of layers."""

    n_heads = traitlets.Int(0, read_only=True).tag(sync=True)
    """int, read-only: attention heads per layer."""

    head_summaries = traitlets.Dict(read_only=True).tag(sync=True)
    """dict[str, payload], read-only: ``[layer, head]`` float32 summaries as binary payloads."""

    summary_notes = traitlets.Dict(traitlets.Unicode(), read_only=True).tag(sync=True)
    """dict[str, str], read-only: summary name -> how it was estimated (e.g. "estimated from
    512 of 32768 query rows (seed 0)"); {} when every summary is exact."""

    attention_sinks = traitlets.Dict(read_only=True).tag(sync=True)
    """dict, read-only: the explanation's attention sinks (``explanation/_sinks.py``):
    ``positions``, per position ``head_share`` (fraction of all heads that sink into it) and
    ``mass`` (mean weight it receives), the ``rule`` in words; {} when not known. The token
    strip and the pattern view's key axis mark them."""

    exclude_sinks_from_scale = traitlets.Bool(False).tag(sync=True)
    """bool, default False: the pattern view's color scale takes its max over the keys that
    are not sinks (sink cells are drawn at the top color, capped; the legend says so). Sinks
    are always shown, never hidden."""

    full_pattern_limit = traitlets.Int(512, read_only=True).tag(sync=True)
    """int, read-only, default 512: up to this many tokens the kernel also sends each selected
    head's whole quantized pattern (``pattern`` messages, at most ~130 kB), so hover coloring
    and the line view work in the browser without a round trip; above it only pooled views
    (``request_view``) and rows travel."""

    metric = traitlets.Unicode("entropy").tag(sync=True)
    """str, default "entropy": grid color — entropy, previous_token, first_token, induction
    (head summaries) or "brushed" (attention flow of the brushed tokens, computed in the
    browser)."""

    pattern_mode = traitlets.Enum(("average", "side_by_side"), "average").tag(sync=True)
    """str, default "average": several selected heads averaged or drawn side by side."""

    flow_direction = traitlets.Enum(("from", "to"), "from").tag(sync=True)
    """str, default "from": hovering colors by attention from the token or to it."""

    selected_cell = traitlets.List(traitlets.Int(), default_value=[]).tag(sync=True)
    """list[int], default []: ``[query, key]`` of the pattern cell the user clicked ([] =
    none). At a pooled zoom the pattern view sets the block's argmax cell."""

    qk = traitlets.Dict(read_only=True).tag(sync=True)
    """dict, read-only: the query·key breakdown of ``selected_cell`` for the selected layer's
    heads ({} = none), drawn by ``js/src/lib/qk_panel.ts``; see ``widgets/_qk.py``."""

    def __init__(
        self,
        source: Any,
        text: str | None = None,
        *,
        tokenizer: Any = None,
        **kwargs: Any,
    ) -> None:
        explanation = resolve_explanation(source, text, tokenizer, widget="AttentionWidget")
        tokens = [str(t) for t in explanation.tokens]
        n_layers, n_heads = int(explanation.n_layers), int(explanation.n_heads)
        summaries = {
            name: tensor_payload(_summary_array(name, values, n_layers, n_heads))
            for name, values in explanation.head_summaries.items()
        }
        # Validators read these, so they exist before the traits are initialised.
        self._explanation = explanation
        self._dims: dict[str, int] = {"layers": n_layers, "heads": n_heads, "tokens": len(tokens)}
        self._summary_names = tuple(summaries)
        self._sent: set[tuple[int, int]] = set()
        self._views = ViewCache()
        super().__init__(**kwargs)
        self._show_tokens(tokens, getattr(explanation, "token_style", None))
        self.set_trait("n_layers", n_layers)
        self.set_trait("n_heads", n_heads)
        self.set_trait("head_summaries", summaries)
        notes = getattr(explanation, "summary_notes", None) or {}
        self.set_trait("summary_notes", {str(k): str(v) for k, v in notes.items()})
        self._set_generation(explanation)  # prompt/completion boundary, probabilities
        self.set_trait("attention_sinks", sinks_summary(explanation))
        self.on_msg(self._on_message)
        self._push_selected_patterns()

    @property
    def explanation(self) -> Any:
        """The Explanation shown (read-only)."""
        if self._explanation is None:
            raise RuntimeError("this AttentionWidget is closed; create a new one")
        return self._explanation

    def close(self) -> None:
        """Close the widget and drop the Explanation and the views made of it."""
        super().close()
        self._sent = set()
        views = getattr(self, "_views", None)  # absent when __init__ failed early
        if views is not None:
            views.clear()

    def _valid_metrics(self) -> Sequence[str]:
        return (*self._summary_names, BRUSHED_METRIC)

    # --- patterns ------------------------------------------------------------------------

    def pattern_message(self, layer: int, head: int) -> tuple[dict[str, Any], list[bytes]]:
        """The ``pattern`` message (content, buffers) for one head; validates the indices."""
        self._check_head(layer, head)
        pattern = np.asarray(self.explanation.attention(layer, head))
        n = self._dims["tokens"]
        if pattern.shape != (n, n):
            raise ValueError(
                f"explanation.attention({layer}, {head}) has shape {pattern.shape}, "
                f"expected ({n}, {n})"
            )
        meta, buffers = encode_pattern(pattern)
        return {"type": "pattern", "layer": layer, "head": head, **meta}, buffers

    @traitlets.validate("selected_cell")
    def _check_cell(self, proposal: dict[str, Any]) -> list[int]:
        cell = [int(v) for v in proposal["value"]]
        n = self._dims["tokens"]
        if cell and (len(cell) != 2 or not all(0 <= v < n for v in cell)):
            raise ValueError(
                f"selected_cell={cell} must be [] or [query, key] with positions in 0..{n - 1}"
            )
        return cell

    @traitlets.observe("selected_cell", "selected_layer", "selected_heads")
    def _on_cell(self, change: dict[str, Any]) -> None:
        from llmasos_widgets.widgets._qk import qk_message

        if self._explanation is not None:
            cell, heads = list(self.selected_cell), list(self.selected_heads)
            self.set_trait("qk", qk_message(self._explanation, self.selected_layer, heads, cell))

    def _check_head(self, layer: int, head: int) -> None:
        n_layers, n_heads = self._dims["layers"], self._dims["heads"]
        if not 0 <= layer < n_layers:
            raise ValueError(f"layer {layer} is out of range (valid: 0..{n_layers - 1})")
        if not 0 <= head < n_heads:
            raise ValueError(f"head {head} is out of range (valid: 0..{n_heads - 1})")

    def _full_patterns(self) -> bool:
        return self._dims["tokens"] <= self.full_pattern_limit

    def _send_pattern(self, layer: int, head: int) -> None:
        if not self._full_patterns():
            return  # never [T, T] at long T: the view asks for pooled views instead
        content, buffers = self.pattern_message(layer, head)
        self.send(content, buffers)
        self._sent.add((layer, head))

    @traitlets.observe("selected_layer", "selected_heads")
    def _on_head_selection(self, change: dict[str, Any]) -> None:
        self._push_selected_patterns()

    def _push_selected_patterns(self) -> None:
        """Send the selected heads' patterns the browser has not been sent yet."""
        if self.selected_layer < 0:
            return
        for head in self.selected_heads:
            if (self.selected_layer, head) not in self._sent:
                self._send_pattern(self.selected_layer, head)

    # --- browser requests ----------------------------------------------------------------

    def _on_message(self, _widget: Any, content: dict[str, Any], _buffers: list[bytes]) -> None:
        kind = content.get("type")
        try:
            if kind == "request_patterns":
                layer = int(content["layer"])
                for head in content["heads"]:
                    self._send_pattern(layer, int(head))
            elif kind == "evicted":
                for layer, head in content["heads"]:
                    self._sent.discard((int(layer), int(head)))
            elif kind == "request_flow":
                self._send_flow(content)
            elif kind == "request_view":
                self._send_view(content)
            else:
                log.warning("AttentionWidget: ignoring unknown message type %r", kind)
        except (KeyError, TypeError, ValueError) as err:
            log.warning("AttentionWidget: bad %r message from the browser: %s", kind, err)

    def view_message(self, content: dict[str, Any]) -> tuple[dict[str, Any], list[bytes]]:
        """The ``view`` reply (content, buffers) to a ``request_view`` message (see
        ``widgets/_pattern_views.py``): pooled at the requested resolution, never ``[T, T]``."""
        request = ViewRequest.parse(content, n_tokens=self._dims["tokens"])
        for head in request.heads:
            self._check_head(request.layer, head)
        return self._views.reply(self.explanation, request)  # the last few views are kept

    def _send_view(self, content: dict[str, Any]) -> None:
        reply, buffers = self.view_message(content)
        self.send(reply, buffers)

    def flow_values(
        self, focus: Sequence[int], others: Sequence[int], direction: str
    ) -> np.ndarray:
        """``[layer, head]`` float32 hover flow of every head (``views.flow_values``)."""
        return flow_values(self.explanation, list(focus), list(others), direction)

    def _send_flow(self, content: dict[str, Any]) -> None:
        values = self.flow_values(
            [int(t) for t in content["focus"]],
            [int(t) for t in content["others"]],
            str(content["direction"]),
        )
        reply = {
            "type": "flow",
            "request_id": int(content["request_id"]),
            "n_layers": self._dims["layers"],
            "n_heads": self._dims["heads"],
        }
        self.send(reply, [values.astype("<f4").tobytes()])


MEASURE_SINKS_MAX_TOKENS = 4096
"""An explanation without stored sinks (a file saved before sinks were detected) has them
measured when a widget opens it up to this length; longer ones would cost minutes on the CPU
(every head's received weight, 32 x 32 heads at 32k tokens: 4 min) and show none."""


def sinks_summary(explanation: Any) -> dict[str, Any]:
    """``AttentionSinks.summary()`` of an Explanation (measured from q/k when it has none
    stored and is at most :data:`MEASURE_SINKS_MAX_TOKENS` long); {} for an object without
    q/k or a long one without stored sinks."""
    find = getattr(explanation, "find_attention_sinks", None)
    if find is None:
        return {}
    stored = getattr(explanation, "attention_sinks", None)
    if stored is None and len(explanation.tokens) > MEASURE_SINKS_MAX_TOKENS:
        return {}
    summary: dict[str, Any] = find().summary()
    return summary


def _elided_display(display: Sequence[str], tokens: Sequence[str]) -> list[str]:
    """Wire form of ``display_tokens``: [] = the raw tokens (``js/src/lib/token_text.ts``
    ``shownTokens`` reads it back)."""
    return [] if list(display) == list(tokens) else list(display)


def _sparse_kinds(kinds: Sequence[str]) -> list[str]:
    """Wire form of ``token_kinds``: ``"index:kind"`` for each token that is not "text" when
    those are fewer than half (usually a BOS token or none), else the full list."""
    odd = [f"{i}:{kind}" for i, kind in enumerate(kinds) if kind != "text"]
    return odd if 2 * len(odd) < len(kinds) else list(kinds)


def _summary_array(name: str, values: Any, n_layers: int, n_heads: int) -> np.ndarray:
    array = np.asarray(values)
    if array.shape != (n_layers, n_heads):
        raise ValueError(
            f"head summary {name!r} has shape {array.shape}, "
            f"expected [layer, head] = ({n_layers}, {n_heads})"
        )
    if not np.issubdtype(array.dtype, np.floating):
        raise TypeError(f"head summary {name!r} must be floating point, got {array.dtype}")
    # float32 is the Explanation contract; wider floats are narrowed for display on purpose.
    return array.astype(np.float32)
