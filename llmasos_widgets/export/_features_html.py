"""The report's feature sections: per SAE recorded by ``explain(saes=...)``, each token's top
latents (with activation) and the logit effects of the latents shown. Text escaped."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from llmasos_widgets._readable_tokens import TokenStyle, show_token, show_tokens
from llmasos_widgets.tracing import site_label

if TYPE_CHECKING:
    from llmasos_widgets.explanation import Explanation
    from llmasos_widgets.features import FeatureActivations

TOP_LATENTS = 5
MAX_TOKENS = 256


def features_sections(explanation: Explanation) -> str:
    """One section per SAE ("" when none were recorded)."""
    style = explanation.token_style
    return "".join(_section(explanation, record, style) for record in explanation.features)


def _section(explanation: Explanation, record: FeatureActivations, style: TokenStyle) -> str:
    shown = show_tokens(explanation.tokens, style)
    n = min(record.n_tokens, MAX_TOKENS)
    rows = []
    latents_shown: set[int] = set()
    for position in range(n):
        top = record.top(position, TOP_LATENTS)
        latents_shown.update(latent for latent, _ in top)
        cells = "".join(
            f"<td data-latent='{latent}'>#{latent} <span class='muted'>{value:.3g}</span></td>"
            for latent, value in top
        )
        rows.append(
            f"<tr><td class='tok'>{html.escape(shown[position].text)}</td>"
            f"<td class='muted'>{record.error_norm[position]:.3g}</td>{cells}</tr>"
        )
    effects = []
    for latent in sorted(latents_shown)[:64]:
        found = record.logit_effects(latent)
        up = " ".join(_effect_token(t, style) for t, _ in found["promoted"][:5])
        down = " ".join(_effect_token(t, style) for t, _ in found["suppressed"][:5])
        effects.append(f"<tr><td>#{latent}</td><td>{up}</td><td>{down}</td></tr>")
    note = "" if n == record.n_tokens else f" (first {n} tokens)"
    return (
        f"<h2>Features: {html.escape(record.name)}</h2>"
        f"<p class='muted'>sparse autoencoder at {html.escape(site_label(record.site))}, "
        f"{record.d_sae} latents; per token its {TOP_LATENTS} most active latents "
        f"(#latent activation) and the norm of what the SAE does not reconstruct{note}</p>"
        "<table class='lens'><tr><th>token</th><th>error</th><th colspan='5'>top latents</th>"
        f"</tr>{''.join(rows)}</table>"
        "<p class='muted'>logit effects: the model's head read on each latent's decoder "
        "direction</p><table class='lens'><tr><th>latent</th><th>promotes</th>"
        f"<th>suppresses</th></tr>{''.join(effects)}</table>"
    )


def _effect_token(raw: str, style: TokenStyle) -> str:
    return f"<span class='tok'>{html.escape(show_token(raw, style).text)}</span>"
