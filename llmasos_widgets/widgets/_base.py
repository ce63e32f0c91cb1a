"""Shared base of the anywidget classes: the selection and token traits, what a widget drops
when closed, how a widget's source becomes an Explanation, and binary payload helpers.

The TypeScript half of the selection is ``js/src/lib/selection.ts`` (``SelectionState``),
with the same trait names. Tensors travel as binary buffers, never JSON float lists:
trait payloads are ``{"view": memoryview, "dtype": str, "shape": [...]}`` (decoded by
``js/src/lib/buffers.ts::decodeTensor``) and custom messages carry raw buffers.
"""

from __future__ import annotations

import pathlib
import types
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import anywidget
import numpy as np
import traitlets

from llmasos_widgets.widgets._figures import FigureExportMixin

STATIC_DIR = pathlib.Path(__file__).resolve().parent.parent / "static"

SELECTION_TRAITS = ("selected_layer", "selected_heads", "selected_tokens", "hovered_token")
"""Traits linked by default between widgets (``metric`` is widget specific; link it on request)."""

_PAYLOAD_DTYPES = ("float32", "uint8")

_NO_DIMENSIONS: Mapping[str, int | None] = types.MappingProxyType(
    {"layers": None, "heads": None, "tokens": None}
)

_EXPLANATION_ATTRIBUTES = ("tokens", "n_layers", "n_heads", "attention", "head_summaries")


class SelectionWidget(FigureExportMixin, anywidget.AnyWidget):
    """Base for widgets that share the layer / head / token selection.

    Subclasses set ``self._dims`` (the sizes ``_dimensions()`` reports, ``None`` for a
    dimension the widget does not have) before ``super().__init__``: the trait validators
    check the selection against the data shown. Every view can be saved as an image:
    ``save_figure`` (``_figures.py``).
    """

    _dims: Mapping[str, int | None] = _NO_DIMENSIONS

    _dropped_on_close: tuple[str, ...] = ()
    """Attributes holding what the view shows (a model, an Explanation, a result), set to
    ``None`` by :meth:`close`."""

    selected_layer = traitlets.Int(-1).tag(sync=True)
    """int, default -1: the selected layer (-1 = none)."""

    selected_heads = traitlets.List(traitlets.Int(), default_value=[]).tag(sync=True)
    """list[int], default []: selected heads of ``selected_layer`` (sorted, unique).
    Ignored by the views while ``selected_layer`` is -1."""

    selected_tokens = traitlets.List(traitlets.Int(), default_value=[]).tag(sync=True)
    """list[int], default []: brushed token positions (sorted, unique)."""

    hovered_token = traitlets.Int(-1).tag(sync=True)
    """int, default -1: token under the pointer (-1 = none). Written by the browser, debounced."""

    metric = traitlets.Unicode("").tag(sync=True)
    """str: what the main view is colored by; valid names depend on the widget."""

    linked_tokens = traitlets.Int(-1, read_only=True).tag(sync=True)
    """int, default -1: set by :func:`link_selection`: how many leading tokens this widget
    shares with every widget it is linked to; token brushing and hover link only over those
    (-1 = not linked to a widget with tokens)."""

    prompt_length = traitlets.Int(-1).tag(sync=True)
    """int, default -1: ``tokens[:prompt_length]`` are the prompt and the rest were generated
    (set from ``Explanation.generation``); -1 = no generated part."""

    token_probabilities = traitlets.List(traitlets.Float(), default_value=[]).tag(sync=True)
    """list[float], default []: one per token, the model's ``P(token | prefix)`` (the first
    token, without a prefix, is -1.0); [] = not known."""

    message_spans = traitlets.List(traitlets.Dict(), default_value=[]).tag(sync=True)
    """list[dict], default []: a conversation's messages (``Explanation.messages``), each
    ``{"role": str, "start": int, "end": int, "generated": bool}`` over tokens
    ``[start, end)``; the token strips mark where each message starts, with its role."""

    def _set_generation(self, explanation: Any) -> None:
        """``prompt_length`` and ``token_probabilities`` from a generation Explanation (no-op
        for an ``explain()`` one), and ``message_spans`` from a conversation's."""
        messages = getattr(explanation, "messages", ())
        self.message_spans = [message.to_json() for message in messages]
        generation = getattr(explanation, "generation", None)
        if generation is None:
            return
        self.prompt_length = int(generation.prompt_length)
        self.token_probabilities = [float(p) for p in generation.token_probabilities]

    def close(self) -> None:
        # anywidget keeps every instance reachable (its file-watch signal holds ``self``), so
        # drop what the view holds here: a closed widget must not pin a model, an Explanation
        # (q/k, possibly GBs at long T), probe weights or maps in memory.
        for name in self._dropped_on_close:
            setattr(self, name, None)
        super().close()

    def _dimensions(self) -> dict[str, int | None]:
        """Sizes to validate against: ``{"layers": L, "heads": H, "tokens": T}``."""
        return dict(self._dims)

    def _valid_metrics(self) -> Sequence[str] | None:
        return None

    @traitlets.validate("selected_layer")
    def _check_layer(self, proposal: dict[str, Any]) -> int:
        layer = int(proposal["value"])
        n = self._dimensions()["layers"]
        if layer < -1 or (n is not None and layer >= n):
            limit = f"0..{n - 1}" if n is not None else "0 or more"
            raise ValueError(f"selected_layer={layer} is out of range: use {limit}, or -1 for none")
        return layer

    @traitlets.validate("selected_heads")
    def _check_heads(self, proposal: dict[str, Any]) -> list[int]:
        n_heads = self._dimensions()["heads"]
        return _checked_indices("selected_heads", "head", proposal["value"], n_heads)

    @traitlets.validate("selected_tokens")
    def _check_tokens(self, proposal: dict[str, Any]) -> list[int]:
        n_tokens = self._dimensions()["tokens"]
        return _checked_indices("selected_tokens", "token", proposal["value"], n_tokens)

    @traitlets.validate("hovered_token")
    def _check_hovered(self, proposal: dict[str, Any]) -> int:
        token = int(proposal["value"])
        n = self._dimensions()["tokens"]
        if token < -1 or (n is not None and token >= n):
            limit = f"0..{n - 1}" if n is not None else "0 or more"
            raise ValueError(f"hovered_token={token} is out of range: use {limit}, or -1 for none")
        return token

    @traitlets.validate("metric")
    def _check_metric(self, proposal: dict[str, Any]) -> str:
        value = str(proposal["value"])
        valid = self._valid_metrics()
        if valid is not None and value not in valid:
            raise ValueError(f"unknown metric {value!r}; valid metrics: {', '.join(valid)}")
        return value


class TokensWidget(SelectionWidget):
    """A :class:`SelectionWidget` that shows a text's tokens; :meth:`_show_tokens` sets them.

    The token strips of the front end read the three traits through
    ``js/src/lib/token_text.ts`` (``shownTokens``).
    """

    tokens = traitlets.List(traitlets.Unicode(), read_only=True).tag(sync=True)
    """list[str], read-only: the tokens exactly as the tokenizer split them (raw strings)."""

    display_tokens = traitlets.List(traitlets.Unicode(), read_only=True).tag(sync=True)
    """list[str], read-only: each token as a reader reads it (decoded text, real whitespace,
    "" for a continuation; shown as text); see ``llmasos_widgets._readable_tokens.show_tokens``."""

    token_kinds = traitlets.List(traitlets.Unicode(), read_only=True).tag(sync=True)
    """list[str], read-only: per token "text", "special", "continuation" (later bytes of a
    character shown on an earlier token) or "bytes" (bytes that form no character)."""

    def _show_tokens(self, tokens: Sequence[str], style: Any) -> None:
        """Set ``tokens`` and their readable ``display_tokens`` / ``token_kinds`` in ``style``
        (a :class:`~llmasos_widgets._readable_tokens.TokenStyle`; ``None``: raw strings)."""
        self.set_trait("tokens", list(tokens))
        for name, values in display_traits(tokens, style).items():
            self.set_trait(name, values)


class ResultWidget(SelectionWidget):
    """A :class:`SelectionWidget` that shows one result object (``result``).

    Subclasses set ``self._result`` and ``self._dims`` before ``super().__init__``.
    """

    _result: Any
    _dropped_on_close: tuple[str, ...] = ("_result",)

    @property
    def result(self) -> Any:
        """The result shown (read-only; ``None`` after :meth:`close`)."""
        return self._result


def resolve_explanation(source: Any, text: str | None, tokenizer: Any, *, widget: str) -> Any:
    """What ``widget(source, text, tokenizer=...)`` shows: an Explanation as is; otherwise
    ``text`` explained by the model (imports kept lazy)."""
    if all(hasattr(source, name) for name in _EXPLANATION_ATTRIBUTES):
        if text is not None or tokenizer is not None:
            raise TypeError(
                f"{widget} got an Explanation plus text/tokenizer; pass the Explanation "
                "alone, or a model with the text"
            )
        return source
    if text is None:
        raise TypeError(f"{widget}(model, text): text is required when passing a model")
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if hasattr(source, "explain"):
        if tokenizer is not None:
            raise TypeError(
                "tokenizer= is only for a bare transformers model, not an ExplainableModel"
            )
        return source.explain(text, saliency=False)
    if tokenizer is None:
        raise TypeError(
            f"{widget} got a {type(source).__name__} without tokenizer=; pass an "
            "Explanation, an ExplainableModel (load_model(...)), or a transformers model "
            "with tokenizer=tok"
        )
    from llmasos_widgets.models import as_explainable

    return as_explainable(source, tokenizer).explain(text, saliency=False)


def display_traits(tokens: Sequence[str], style: Any) -> dict[str, list[str]]:
    """``display_tokens`` and ``token_kinds`` for raw ``tokens`` written in ``style`` (a
    :class:`~llmasos_widgets._readable_tokens.TokenStyle`; ``None`` shows the raw strings)."""
    from llmasos_widgets._readable_tokens import TokenStyle, show_tokens

    shown = show_tokens(list(tokens), style if isinstance(style, TokenStyle) else TokenStyle())
    return {
        "display_tokens": [token.text for token in shown],
        "token_kinds": [token.kind for token in shown],
    }


def _checked_indices(trait: str, what: str, values: Sequence[int], n: int | None) -> list[int]:
    out = sorted({int(v) for v in values})
    bad = [v for v in out if v < 0 or (n is not None and v >= n)]
    if bad:
        limit = f"0..{n - 1}" if n is not None else "0 or more"
        raise ValueError(f"{trait}: {what} index {bad[0]} is out of range (valid: {limit})")
    return out


def tensor_payload(array: np.ndarray) -> dict[str, Any]:
    """``{"view", "dtype", "shape"}`` for a trait; ipywidgets sends ``view`` as a binary buffer.

    Only float32 and uint8 are accepted: convert explicitly before calling, so a lossy cast
    is a visible decision at the call site.
    """
    if array.dtype.name not in _PAYLOAD_DTYPES:
        raise TypeError(
            f"tensor payloads must be {' or '.join(_PAYLOAD_DTYPES)}, got {array.dtype}; "
            "convert explicitly (e.g. array.astype(np.float32))"
        )
    contiguous = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False)
    return {
        "view": contiguous.data.cast("B"),
        "dtype": array.dtype.name,
        "shape": list(array.shape),
    }


# --- attention pattern codec (mirror: js/src/lib/buffers.ts::decodePatternMessage) ----------


def quantize_rows(pattern: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Quantize a [query, key] pattern to uint8 levels scaled per query row.

    ``row_scale[i] = max_j pattern[i, j]`` and ``levels[i, j] = round(255 * pattern[i, j] /
    row_scale[i])``, so ``pattern ≈ levels * row_scale[:, None] / 255`` with an error of at most
    ``row_scale[i] / 510``: 256 levels per row, i.e. visually exact on a 256-color map, and a
    diffuse head (all weights ≈ 1/T) keeps its shape instead of rounding to zero.
    """
    p = np.asarray(pattern)
    if p.ndim != 2 or p.shape[0] != p.shape[1]:
        raise ValueError(f"an attention pattern must be [query, key] square, got shape {p.shape}")
    if not np.isfinite(p).all():
        raise ValueError("attention pattern contains NaN or inf")
    p = np.clip(p.astype(np.float64, copy=False), 0.0, None)
    row_scale = p.max(axis=1) if p.size else np.zeros(0)
    safe = np.where(row_scale > 0, row_scale, 1.0)
    levels = np.rint(p / safe[:, None] * 255.0).astype(np.uint8)
    return row_scale.astype(np.float32), levels


def lower_triangle(levels: np.ndarray) -> np.ndarray:
    """Row-major packing of ``levels[i, :i + 1]`` (causal attention: the rest is zero)."""
    return levels[np.tril_indices(levels.shape[0])]


def encode_pattern(pattern: np.ndarray) -> tuple[dict[str, Any], list[bytes]]:
    """Message metadata + buffers ``[row_scale float32 LE, levels uint8]`` for one pattern.

    Levels are packed as the lower triangle when everything above the diagonal quantizes to
    zero (causal models: halves the bytes) and zlib-deflated when that is smaller (the browser
    inflates with the built-in ``DecompressionStream("deflate")``).
    """
    row_scale, levels = quantize_rows(pattern)
    n = levels.shape[0]
    lower = not np.triu(levels, k=1).any()
    packed = lower_triangle(levels) if lower else levels.reshape(-1)
    raw = packed.tobytes()
    deflated = zlib.compress(raw, 1)
    use_deflate = len(deflated) < len(raw)
    meta = {
        "n_tokens": n,
        "layout": "lower" if lower else "full",
        "encoding": "deflate" if use_deflate else "raw",
    }
    return meta, [row_scale.astype("<f4").tobytes(), deflated if use_deflate else raw]
