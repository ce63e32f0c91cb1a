"""The HTML report's generation section (an Explanation from ``generate()``).

Shows the prompt/completion boundary, each generated token's probability and top
alternatives at its step, and the ``[generated, token]`` saliency matrix at the embeddings
as a report figure (``data-figure='saliency-matrix'``, painted like the saliency map: each
row scaled by its largest |score|). Token strings are escaped text, as in ``_html.py``.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

import numpy as np

from llmasos_widgets._readable_tokens import TokenStyle, show_token, show_tokens, token_label
from llmasos_widgets.export._report_figures import matrix_canvas

if TYPE_CHECKING:
    from llmasos_widgets.explanation import Explanation

_ROW_PX = 16
_MAX_WIDTH_PX = 900


def generation_section(explanation: Explanation) -> str:
    """``""`` unless ``explanation`` was generated."""
    generation = explanation.generation
    if generation is None:
        return ""
    style = explanation.token_style if isinstance(explanation.token_style, TokenStyle) else None
    style = style or TokenStyle()
    shown = show_tokens(explanation.tokens, style)
    prompt_length = generation.prompt_length

    def chip(index: int) -> str:
        probability = generation.token_probabilities[index]
        p = "" if probability < 0 else f", P(token | prefix) = {probability:.3f}"
        title = html.escape(f"position {index}, raw {explanation.tokens[index]!r}{p}", quote=True)
        kind = "generated" if index >= prompt_length else "prompt"
        return (
            f"<span class='tok' data-kind='{kind}' title='{title}'>"
            f"{html.escape(token_label(shown[index]))}</span>"
        )

    strip = (
        "".join(chip(i) for i in range(prompt_length))
        + "<span data-testid='report-generation-boundary' title='generated from here on'"
        " style='border-left:3px solid #d97706;margin:0 4px'></span>"
        + "".join(
            f"<span style='background:#fff7ed'>{chip(i)}</span>"
            for i in range(prompt_length, explanation.n_tokens)
        )
    )
    how = "sampled" if generation.settings.get("do_sample") else "greedy"
    rows = []
    for step in range(generation.n_generated):
        position = prompt_length + step
        alternatives = ", ".join(
            f"{html.escape(token_label(show_token(token, style)))} {p:.3f}"
            for token, p in zip(
                generation.alternative_tokens[step], generation.alternative_probs[step], strict=True
            )
        )
        rows.append(
            f"<tr data-testid='report-generated-{position}'><td>{position}</td>"
            f"<td>{chip(position)}</td><td>{generation.step_probabilities[step]:.3f}</td>"
            f"<td>{alternatives}</td></tr>"
        )
    parts = [
        "<h2>Generation</h2>",
        f"<p>{prompt_length} prompt tokens, {generation.n_generated} generated ({how}; "
        f"probabilities are those of the distribution each token was chosen from).</p>",
        f"<div data-testid='report-generation'>{strip}</div>",
        "<table data-testid='report-generation-steps'><tr><th>position</th><th>token</th>"
        "<th>p</th><th>top alternatives</th></tr>" + "".join(rows) + "</table>",
    ]
    matrix = generation.saliency
    if matrix is not None:
        values = np.asarray(matrix.matrix(0), dtype=np.float32)
        cell = max(2, min(28, _MAX_WIDTH_PX // max(explanation.n_tokens, 1)))
        parts.append(
            f"<h3>Saliency matrix ({html.escape(matrix.method)}, at the embeddings)</h3>"
            "<p class='muted'>row i: log p of generated token i attributed to every token "
            "(columns); each row scaled by its largest |score|.</p>"
            + matrix_canvas(
                "saliency",
                "saliency-matrix",
                values,
                cell * explanation.n_tokens,
                _ROW_PX * matrix.n_generated,
                f"saliency matrix: {matrix.n_generated} generated tokens x "
                f"{explanation.n_tokens} tokens",
            )
        )
    return "".join(parts)
