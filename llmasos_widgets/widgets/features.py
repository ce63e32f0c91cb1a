"""FeatureWidget: one SAE's latents on a text, linked to the other views by token and layer.

Front end: ``js/src/features.ts`` (built to ``static/features.js``). What travels: each
token's top latents and their activations as float32 ``[token, n]`` binary payloads (latent
ids are exact in float32 below 2**24), and for the selected latent its activation on every
token (float32 ``[token]``) plus a small card (logit effects, histogram counts, examples).

Linking. The SAE reads residual site ``s``; like PatchingWidget's residual rows
(:func:`~llmasos_widgets.widgets.patching.site_to_selected_layer`), a click on a token or a
latent selects decoder layer ``s - 1`` (the layer whose output the site is; -1 for ``emb``)
and the clicked token, so a linked AttentionWidget or SaliencyWidget follows. The token whose
latents are listed is the first of ``selected_tokens``, wherever it was selected.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import traitlets

from llmasos_widgets.widgets._base import STATIC_DIR, ResultWidget, TokensWidget, tensor_payload
from llmasos_widgets.widgets.patching import site_to_selected_layer

TOP_LATENTS = 10
"""Latents listed per token."""
_EXACT_IN_FLOAT32 = 2**24


class FeatureWidget(ResultWidget, TokensWidget):
    """Sparse-autoencoder latents of a text (``FeatureWidget(explanation)`` of
    ``explain(model, text, saes=[sae])``, or ``FeatureWidget(model, text, saes=[sae])``).

    For the selected token it lists the most active latents; for the selected latent a card:
    its activation on every token, the tokens its decoder direction promotes and suppresses,
    a histogram of its activations (over the text, or over ``examples``' corpus) and, with
    ``examples`` (:func:`~llmasos_widgets.features.feature_examples`), its max-activating
    contexts. ``sae=`` picks one of several SAEs recorded by name.
    """

    _esm = STATIC_DIR / "features.js"
    _dropped_on_close = ("_result", "_record", "_examples")

    sae_name = traitlets.Unicode("", read_only=True).tag(sync=True)
    """str, read-only: the SAE shown (``FeatureActivations.name``), as text."""

    site = traitlets.Int(0, read_only=True).tag(sync=True)
    """int, read-only: the residual site the SAE reads (0 = ``emb``)."""

    site_name = traitlets.Unicode("", read_only=True).tag(sync=True)
    """str, read-only: the site's label (``emb``, ``after L3``)."""

    d_sae = traitlets.Int(0, read_only=True).tag(sync=True)
    """int, read-only: the number of latents."""

    top_latents = traitlets.Dict(read_only=True).tag(sync=True)
    """dict, read-only: float32 ``[token, n]`` payload of each token's most active latents,
    most active first (-1 past the last active one)."""

    top_values = traitlets.Dict(read_only=True).tag(sync=True)
    """dict, read-only: float32 ``[token, n]`` payload of their activations."""

    selected_latent = traitlets.Int(-1).tag(sync=True)
    """int, default -1: the latent whose card is shown (-1 = none)."""

    latent_activations = traitlets.Dict(read_only=True).tag(sync=True)
    """dict, read-only: float32 ``[token]`` payload of the selected latent's activation on
    every token (``[0]`` when none is selected)."""

    card = traitlets.Dict(read_only=True).tag(sync=True)
    """dict, read-only: the selected latent's card, ``{}`` when none: ``{"latent", "max",
    "promoted": [[token, logit], ...], "suppressed": [...], "histogram": {"edges", "counts",
    "over"}, "density", "examples": [{"tokens", "kinds", "values", "center", "activation",
    "text"}]}`` (a few dozen numbers: JSON)."""

    def __init__(
        self,
        source: Any,
        text: str | None = None,
        *,
        saes: Sequence[Any] | Mapping[str, Any] | None = None,
        sae: str | None = None,
        examples: Any = None,
        tokenizer: Any = None,
        top_n: int = TOP_LATENTS,
        **kwargs: Any,
    ) -> None:
        explanation = _explanation(source, text, saes, tokenizer)
        record = explanation.feature(sae)
        if record.d_sae >= _EXACT_IN_FLOAT32:
            raise ValueError(f"FeatureWidget shows up to {_EXACT_IN_FLOAT32} latents")
        if examples is not None and examples.d_sae != record.d_sae:
            raise ValueError(
                f"examples are of an SAE with {examples.d_sae} latents, this one has "
                f"{record.d_sae}; pass feature_examples(...) of the same SAE"
            )
        self._result = explanation
        self._record = record
        self._examples = examples
        n = explanation.n_tokens
        self._dims = {"layers": explanation.n_layers, "heads": explanation.n_heads, "tokens": n}
        super().__init__(**kwargs)
        from llmasos_widgets.tracing import site_label

        self._show_tokens(explanation.tokens, explanation.token_style)
        self._set_generation(explanation)
        self.set_trait("sae_name", record.name)
        self.set_trait("site", record.site)
        self.set_trait("site_name", site_label(record.site))
        self.set_trait("d_sae", record.d_sae)
        latents = np.full((n, top_n), -1.0, dtype=np.float32)
        values = np.zeros((n, top_n), dtype=np.float32)
        for position in range(n):
            top = record.top(position, top_n)
            latents[position, : len(top)] = [latent for latent, _ in top]
            values[position, : len(top)] = [value for _, value in top]
        self.set_trait("top_latents", tensor_payload(latents))
        self.set_trait("top_values", tensor_payload(values))
        self._show_latent(self.selected_latent)

    @property
    def features(self) -> Any:
        """The ``FeatureActivations`` shown."""
        return self._record

    def select_latent(self, latent: int) -> None:
        """Show ``latent``'s card and select the SAE's layer, as a click on it does."""
        self.selected_latent = latent
        self.selected_layer = max(-1, site_to_selected_layer(self.site))

    @traitlets.validate("selected_latent")
    def _check_latent(self, proposal: dict[str, Any]) -> int:
        latent = int(proposal["value"])
        if not -1 <= latent < self._record.d_sae:
            raise ValueError(
                f"selected_latent={latent} is out of range: use 0..{self._record.d_sae - 1}, "
                "or -1 for none"
            )
        return latent

    @traitlets.observe("selected_latent")
    def _on_latent(self, change: dict[str, Any]) -> None:
        self._show_latent(int(change["new"]))

    def _show_latent(self, latent: int) -> None:
        if latent < 0 or self._record is None:
            self.set_trait("latent_activations", tensor_payload(np.zeros(0, np.float32)))
            self.set_trait("card", {})
            return
        from llmasos_widgets.widgets._feature_card import latent_card

        activations = self._record.activations(latent)
        self.set_trait("latent_activations", tensor_payload(activations))
        self.set_trait("card", latent_card(self._record, latent, activations, self._examples))


def _explanation(source: Any, text: str | None, saes: Any, tokenizer: Any) -> Any:
    """An Explanation with features: ``source`` itself, or ``text`` explained with ``saes``."""
    if hasattr(source, "features") and hasattr(source, "tokens"):
        if text is not None or saes is not None or tokenizer is not None:
            raise TypeError(
                "FeatureWidget got an Explanation plus text/saes/tokenizer; pass the "
                "Explanation alone, or a model with text and saes="
            )
        if not source.features:
            raise ValueError("this Explanation has no features: explain it with saes=[sae] first")
        return source
    if text is None or not saes:
        raise TypeError("FeatureWidget(model, text, saes=[sae]): text and saes are required")
    from llmasos_widgets.explanation import explain

    return explain(source, text, saes=saes, saliency=False, tokenizer=tokenizer)
