"""Standalone HTML report of an :class:`Explanation`: one file, no network, no external assets.

Every token string goes through :func:`html.escape` (tokens are data, never markup); the only
script is the inlined figure module (``export/_report_figures.py``): it paints the figures from
base64 data with the widgets' own code and adds their save buttons. Tokens
are shown as readers read them (``llmasos_widgets._readable_tokens``: decoded text, quiet
whitespace marks, characters joined across byte pieces, specials marked); each token's
tooltip keeps its raw string.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from llmasos_widgets._readable_tokens import (
    ShownToken,
    TokenStyle,
    readable_quoted,
    show_token,
    show_tokens,
    token_pieces,
)
from llmasos_widgets.export._causal_html import causal_sections
from llmasos_widgets.export._chat_html import messages_section
from llmasos_widgets.export._faithfulness_html import faithfulness_html
from llmasos_widgets.export._features_html import features_sections
from llmasos_widgets.export._generation_html import generation_section
from llmasos_widgets.export._report_figures import figure_script, figures_section, pattern_canvas
from llmasos_widgets.tracing import site_label

if TYPE_CHECKING:
    from llmasos_widgets.explanation import Explanation

_MAX_LENS_COLUMNS = 48
_MAX_PATTERN_TOKENS = 512
_SUMMARY_TITLES = {
    "entropy": "Entropy (nats; low = focused)",
    "previous_token": "Previous-token score",
    "first_token": "Attention to the first token",
    "induction": "Induction score (repeated random sequence)",
}

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#1f2328;max-width:1200px}
h1{font-size:20px} h2{font-size:16px;margin-top:28px;border-bottom:1px solid #d0d7de}
.tok{display:inline-block;padding:1px 3px;margin:1px;border-radius:3px;font-family:monospace;
 white-space:pre;border:1px solid #d0d7de}
.grid td{width:18px;height:18px;padding:0;border:1px solid #fff}
table{border-collapse:collapse} th,td{font-size:12px;padding:2px 4px;text-align:left}
.lens td{font-family:monospace;border:1px solid #eee;white-space:pre}
.muted{color:#656d76} .mk{opacity:.45} .tok.special{font-style:italic;color:#6a1b9a}
.tok.bytes{font-style:italic;color:#8a6d00} figure{display:inline-block;margin:8px 16px 8px 0}
canvas{image-rendering:pixelated;border:1px solid #d0d7de}
.warn{color:#7c2d12;background:#fff7ed;border:1px solid #fdba74;border-radius:4px;padding:4px 8px}
.tok.sink{outline:2px dashed #8e44ad;outline-offset:1px;position:relative}
.tok.sink::after{content:"sink";position:absolute;top:-9px;right:-4px;font:8px/1 system-ui,
 sans-serif;color:#fff;background:#8e44ad;border-radius:2px;padding:1px 2px;font-style:normal}
"""


def write_report(explanation: Explanation, path: Path) -> Path:
    """Write the report to ``path`` (parents created) and return it."""
    sections = [
        _tokens_section(explanation),
        _predictions_section(explanation),
        _summaries_section(explanation),
        figures_section(explanation),
        _patterns_section(explanation),
        _lens_section(explanation),
        features_sections(explanation),  # "" unless explain(saes=...) recorded some
        causal_sections(explanation),  # "" unless results are attached
    ]
    if explanation.saliency is not None:
        sections.insert(1, _saliency_section(explanation))
    sections.insert(1, generation_section(explanation))  # "" unless generated
    sections.insert(1, messages_section(explanation))  # "" unless a conversation
    title = f"llmasos-widgets report: {explanation.model_name}"
    document = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        f"<p class='muted'>{explanation.n_tokens} tokens · {explanation.n_layers} layers · "
        f"{explanation.n_heads} heads per layer</p>"
        + "".join(sections)
        + figure_script()
        + "</body></html>"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document, encoding="utf-8")
    return path


def _label(token: ShownToken) -> str:
    """A token's text, escaped, with its quiet marks (whitespace, continuation) faded."""
    return "".join(
        f"<span class='mk'>{html.escape(text)}</span>" if quiet else html.escape(text)
        for text, quiet in token_pieces(token)
    )


def _token(token: ShownToken, title: str = "") -> str:
    title_attr = f" title='{html.escape(title, quote=True)}'" if title else ""
    kind = f" {token.kind}" if token.kind != "text" else ""
    return f"<span class='tok{kind}' data-kind='{token.kind}'{title_attr}>{_label(token)}</span>"


def _raw_title(raw: str, shown: ShownToken, index: int | None = None) -> str:
    """Tooltip: the raw token string (exact) and, for a continuation, whose part it is."""
    where = f"position {index}, " if index is not None else ""
    title = f"{where}raw {raw!r}"
    if shown.kind == "continuation":
        title += f", rest of the character on token {shown.span}"
    return title


def _shown_inputs(explanation: Explanation) -> list[ShownToken]:
    return show_tokens(explanation.tokens, _style(explanation))


def _style(explanation: Explanation) -> TokenStyle:
    style = getattr(explanation, "token_style", None)
    return style if isinstance(style, TokenStyle) else TokenStyle()


def _prediction(raw: str, style: TokenStyle) -> str:
    """One predicted token on its own (half a character shows as its bytes)."""
    shown = show_token(raw, style)
    return _token(shown, title=_raw_title(raw, shown))


def _sequential(value: float) -> str:
    """White -> blue for a value in [0, 1]."""
    v = float(np.clip(value, 0.0, 1.0))
    return f"rgb({round(255 - 200 * v)},{round(255 - 140 * v)},255)"


def _diverging(value: float) -> str:
    """Blue (negative) - white - red (positive) for a value in [-1, 1]."""
    v = float(np.clip(value, -1.0, 1.0))
    fade = round(255 * (1 - abs(v)))
    return f"rgb(255,{fade},{fade})" if v >= 0 else f"rgb({fade},{fade},255)"


def _head_table(
    values: np.ndarray,
    scale: Any,
    *,
    color: Callable[[Any], str] = _sequential,
    value_format: str = ".3f",
) -> str:
    """A ``[layer, head]`` grid of colored cells, ``color(value / scale)``, the value on hover.

    ``scale`` is used as given (a numpy float32 divides in float32), so colors do not move."""
    rows = "".join(
        f"<tr><th>L{layer}</th>"
        + "".join(
            f"<td style='background:{color(v / scale)}' "
            f"title='L{layer} H{head}: {v:{value_format}}'></td>"
            for head, v in enumerate(row)
        )
        + "</tr>"
        for layer, row in enumerate(values)
    )
    return f"<table class='grid'>{rows}</table>"


def _tokens_section(explanation: Explanation) -> str:
    shown = _shown_inputs(explanation)
    sinks = _sinks(explanation)
    tokens = "".join(
        _sink_mark(
            _token(
                token,
                title=f"{_raw_title(raw, token, i)}, id {explanation.token_ids[i]}"
                + sinks.get(i, ""),
            ),
            i in sinks,
        )
        for i, (raw, token) in enumerate(zip(explanation.tokens, shown, strict=True))
    )
    sinks_note = _sinks_note(explanation, shown)
    return f"<h2>Tokens</h2><div data-testid='report-tokens'>{tokens}</div>{sinks_note}"


_SINK_NOTE = (
    " · attention sink: most heads attend here whatever the query, so its large attention "
    "weight (and often its saliency) says little about what the token means"
)


def _sinks(explanation: Explanation) -> dict[int, str]:
    """Sink position -> its tooltip line (explanation/_sinks.py)."""
    summary = _sinks_summary(explanation)
    return {
        int(j): f"{_SINK_NOTE} ({share:.0%} of heads; mean weight {mass:.2f})"
        for j, share, mass in zip(
            summary.get("positions", []),
            summary.get("head_share", []),
            summary.get("mass", []),
            strict=True,
        )
    }


def _sinks_summary(explanation: Explanation) -> dict[str, Any]:
    find = getattr(explanation, "find_attention_sinks", None)
    if find is None:
        return {}
    summary: dict[str, Any] = find().summary()
    return summary


def _sink_mark(token_html: str, sink: bool) -> str:
    """A token marked as a sink: class ``sink`` (dashed outline and a "sink" badge)."""
    if not sink:
        return token_html
    return token_html.replace("<span class='tok", "<span class='tok sink", 1).replace(
        " data-kind=", " data-sink='true' data-kind=", 1
    )


def _sinks_note(explanation: Explanation, shown: list[ShownToken]) -> str:
    summary = _sinks_summary(explanation)
    if not summary:
        return ""
    positions = summary["positions"]
    if positions:
        found = "; ".join(
            f"position {j} {_token(shown[j])}: {share:.0%} of heads, mean weight {mass:.2f}"
            for j, share, mass in zip(
                positions, summary["head_share"], summary["mass"], strict=True
            )
        )
        text = f"Attention sinks (marked <i>sink</i> above): {found}."
    else:
        text = "No attention sink in this text."
    estimated = f" Estimated: {html.escape(summary['note'])}." if summary.get("note") else ""
    return (
        f"<p class='muted' data-testid='report-sinks'>{text} Rule: "
        f"{html.escape(summary['rule'])}.{estimated} A sink's attention weight and saliency "
        "are large whatever it means; read them as the model's resting place, not as the "
        "token's importance.</p>"
    )


def _saliency_section(explanation: Explanation) -> str:
    saliency = explanation.saliency
    assert saliency is not None  # checked by the caller
    scores = np.asarray(saliency.scores, dtype=np.float64)
    shown = _shown_inputs(explanation)
    sinks = _sinks(explanation)
    header = "".join(
        f"<th>{_sink_mark(_token(token, _raw_title(raw, token, i) + sinks.get(i, '')), i in sinks)}"
        "</th>"
        for i, (raw, token) in enumerate(zip(explanation.tokens, shown, strict=True))
    )
    rows = []
    for row_index, row in enumerate(scores):
        scale = float(np.abs(row).max()) or 1.0
        cells = "".join(
            f"<td style='background:{_diverging(v / scale)}' "
            f"title='{html.escape(shown[i].text, quote=True)} (position {i}): {v:.4g}'>"
            f"{v:.2g}</td>"
            for i, v in enumerate(row)
        )
        label = site_label(int(saliency.layers[row_index]))  # residual site: emb, after L0, ..
        rows.append(f"<tr><th>{label}</th>{cells}</tr>")
    facts = [
        f"method <b>{html.escape(saliency.method)}</b>",
        f"target <b>{html.escape(readable_quoted(saliency.target, _style(explanation)))}</b>",
        f"p = {saliency.target_probability:.3f}",
        f"f(x) = {saliency.f_x:.4g}",
    ]
    if saliency.baseline:
        facts.append(f"baseline {html.escape(saliency.baseline)}")
    if saliency.f_baseline is not None:
        facts.append(f"f(baseline) = {saliency.f_baseline:.4g}")
    relative = saliency.relative_convergence_delta
    if saliency.convergence_delta is not None and relative is not None:
        worst = int(np.argmax(np.where(np.isnan(relative), np.inf, relative)))
        facts.append(
            f"largest completeness error {float(saliency.convergence_delta[worst]):.3g} "
            f"({100 * float(relative[worst]):.3g}% of |f(x) − f(baseline)|)"
        )
    # next to the table it qualifies: the user reads the map there
    warning = saliency.convergence_warning
    warning_html = (
        f"<p class='warn' role='alert' data-testid='report-convergence-warning'>"
        f"⚠ {html.escape(warning)}</p>"
        if warning
        else ""
    )
    return (
        f"<h2>Gradient saliency</h2><p>{' · '.join(facts)}</p>{warning_html}"
        f"<table class='lens'><tr><th></th>{header}</tr>{''.join(rows)}</table>"
        f"{faithfulness_html(explanation)}"
        "<p class='muted'>rows: where the attribution is taken (the input embeddings, or the "
        "residual stream after a layer); red raises the target, blue lowers it; each row is "
        "scaled to its own largest magnitude</p>"
    )


def _predictions_section(explanation: Explanation) -> str:
    last = explanation.n_tokens - 1
    style = _style(explanation)
    rows = "".join(
        f"<tr><td>{_prediction(tok, style)}</td><td>{p:.3f}</td></tr>"
        for tok, p in zip(explanation.top_tokens[last], explanation.top_probs[last], strict=True)
    )
    shown = _shown_inputs(explanation)[last]
    return (
        f"<h2>Next-token prediction after "
        f"{_token(shown, _raw_title(explanation.tokens[last], shown, last))}</h2>"
        f"<table><tr><th>token</th><th>probability</th></tr>{rows}</table>"
    )


def _summaries_section(explanation: Explanation) -> str:
    figures = []
    for name, scores in explanation.head_summaries.items():
        best = ", ".join(
            f"L{layer_}H{h} ({s:.2f})" for layer_, h, s in explanation.top_heads(name, 3)
        )
        figures.append(
            f"<figure><figcaption>{html.escape(_SUMMARY_TITLES.get(name, name))}"
            f"<br><span class='muted'>top: {best}</span></figcaption>"
            f"{_head_table(scores, scores.max() or 1.0)}</figure>"
        )
    return "<h2>Heads (layer × head)</h2>" + "".join(figures)


def _patterns_section(explanation: Explanation) -> str:
    n = min(explanation.n_tokens, _MAX_PATTERN_TOKENS)
    figures = []
    for name in ("induction", "previous_token", "first_token"):
        if name not in explanation.head_summaries:
            continue
        layer, head, _ = explanation.top_heads(name, 1)[0]
        pattern = explanation.attention(layer, head)[:n, :n]
        size = max(128, min(512, 4 * n))
        label = f"L{layer} H{head}"
        figures.append(
            f"<figure><figcaption>top {html.escape(name)} head: {label}</figcaption>"
            + pattern_canvas(pattern, f"pattern-L{layer}H{head}", size, f"pattern {label}")
            + "</figure>"
        )
    note = "" if n == explanation.n_tokens else f" (first {n} tokens)"
    return (
        f"<h2>Attention patterns{note}</h2><p class='muted'>rows = query, columns = key</p>"
        + "".join(figures)
    )


def _lens_section(explanation: Explanation) -> str:
    start = max(0, explanation.n_tokens - _MAX_LENS_COLUMNS)
    style = _style(explanation)
    shown = _shown_inputs(explanation)
    header = "".join(
        f"<th>{_token(shown[i], _raw_title(explanation.tokens[i], shown[i], i))}</th>"
        for i in range(start, explanation.n_tokens)
    )
    rows = []
    for layer in range(explanation.n_layers, -1, -1):
        label = "embeddings" if layer == 0 else f"layer {layer - 1}"
        cells = []
        for i in range(start, explanation.n_tokens):
            raw = explanation.lens_tokens[layer][i]
            token = show_token(raw, style)
            probability = float(explanation.lens_probs[layer, i])
            cells.append(
                f"<td style='background:{_sequential(probability)}' data-kind='{token.kind}' "
                f"title='{html.escape(f'p={probability:.3f}, raw {raw!r}', quote=True)}'>"
                f"{_label(token)}</td>"
            )
        rows.append(f"<tr><th>{label}</th>{''.join(cells)}</tr>")
    return (
        "<h2>Logit lens</h2><p class='muted'>top next token read from each residual stream "
        "through the final norm and unembedding; the top row is the model's output</p>"
        f"<table class='lens'><tr><th></th>{header}</tr>{''.join(rows)}</table>"
    )
