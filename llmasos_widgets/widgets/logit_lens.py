"""LogitLensWidget: what each residual site would predict, as a ``[site, token]`` grid.

Front end: ``js/src/logit_lens.ts`` (built to ``static/logit_lens.js``). Row ``r`` is residual
site ``r`` (``emb``, ``after L0``, ..., named by ``site_label``); column ``t`` is token ``t``; a
cell shows the top-1 next token that the model's own head (final norm + unembedding) reads off
that site after that token, as text, shaded by its probability. The data is the
Explanation's ``lens_token_ids`` / ``lens_probs`` (``explanation/_lens.py``).

Selection is the shared one (``link_selection`` links it with AttentionWidget and
SaliencyWidget): clicking a row selects its layer -- row ``after L{i}`` is decoder layer ``i``
(``selected_layer == i``) and ``emb`` clears it (-1), as the SaliencyWidget's rows do;
clicking a column brushes that token (``selected_tokens``) and hovering sets ``hovered_token``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import traitlets

from llmasos_widgets._readable_tokens import TokenStyle
from llmasos_widgets.tracing import site_label
from llmasos_widgets.widgets._base import (
    STATIC_DIR,
    TokensWidget,
    display_traits,
    resolve_explanation,
    tensor_payload,
)


class LogitLensWidget(TokensWidget):
    """The logit lens of one text, linked to layer and token selection.

    ``LogitLensWidget(explanation)`` or ``LogitLensWidget(model, text)`` (an
    ``ExplainableModel``, or a ``transformers`` model with ``tokenizer=``).
    """

    _esm = STATIC_DIR / "logit_lens.js"
    _dropped_on_close = ("_explanation",)

    site_names = traitlets.List(traitlets.Unicode(), read_only=True).tag(sync=True)
    """list[str], read-only: row labels, ``emb``, ``after L0``, ... (one per residual site)."""

    lens_tokens = traitlets.List(traitlets.List(traitlets.Unicode()), read_only=True).tag(sync=True)
    """list[list[str]], read-only: ``[site][token]`` top-1 next token, readable text (shown as
    text, never markup)."""

    lens_probs = traitlets.Dict(read_only=True).tag(sync=True)
    """payload, read-only: float32 ``[site, token]`` probability of that token."""

    n_layers = traitlets.Int(0, read_only=True).tag(sync=True)
    """int, read-only: decoder layers (rows = n_layers + 1 sites)."""

    def __init__(
        self, source: Any, text: str | None = None, *, tokenizer: Any = None, **kwargs: Any
    ) -> None:
        explanation = resolve_explanation(source, text, tokenizer, widget="LogitLensWidget")
        tokens = [str(t) for t in explanation.tokens]
        n_layers = int(explanation.n_layers)
        probs = np.asarray(explanation.lens_probs, dtype=np.float32)
        if probs.shape != (n_layers + 1, len(tokens)):
            raise ValueError(
                f"the explanation's lens_probs has shape {probs.shape}; expected "
                f"({n_layers + 1}, {len(tokens)}) -- one row per residual site"
            )
        self._dims = {
            "layers": n_layers,
            "heads": None,
            "tokens": len(tokens),
        }
        self._explanation: Any = explanation
        super().__init__(**kwargs)
        style = getattr(explanation, "token_style", None)
        self._show_tokens(tokens, style)
        self.set_trait("n_layers", n_layers)
        self.set_trait("site_names", [site_label(site) for site in range(n_layers + 1)])
        self.set_trait("lens_tokens", [_readable(row, style) for row in explanation.lens_tokens])
        self.set_trait("lens_probs", tensor_payload(probs))

    @property
    def explanation(self) -> Any:
        """The Explanation shown (read-only)."""
        return self._explanation

    @staticmethod
    def site_of_layer(selected_layer: int) -> int:
        """The row (residual site) a ``selected_layer`` highlights: -1 -> ``emb`` (0)."""
        return selected_layer + 1


def _readable(row: Any, style: Any) -> list[str]:
    """Each predicted token on its own as a reader reads it (a lone token, not a sequence)."""
    style = style if isinstance(style, TokenStyle) else TokenStyle()
    return [display_traits([str(token)], style)["display_tokens"][0] for token in row]
