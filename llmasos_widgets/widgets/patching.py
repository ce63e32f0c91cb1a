"""PatchingWidget: activation-patching maps as heatmaps, linked to the other widgets.

Front end: ``js/src/patching.ts`` (built to ``static/patching.js``). What travels: the two
maps as float32 binary buffers (``[site, position]`` and ``[layer, head]``, normalised so the
clean run is 1 and the corrupted run 0), both prompts' tokens and the target's description.

Selection. Clicking a head-map cell ``(layer, head)`` selects that layer and head; clicking a
residual-map cell ``(site, position)`` selects token ``position`` and the decoder layer whose
output the site is (``after L{i}`` -> layer ``i``; ``emb`` belongs to no layer: -1), as the
probe and saliency widgets do. ``tokens`` are the clean prompt's, so linked to an
AttentionWidget of the clean prompt (``link_selection``) tokens link over the whole text; to
one of the corrupted prompt they link up to the first differing token.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import traitlets

from llmasos_widgets.interventions import HEAD_NODES
from llmasos_widgets.widgets._base import (
    STATIC_DIR,
    ResultWidget,
    TokensWidget,
    display_traits,
    tensor_payload,
)


def _grad_drop_note(result: Any) -> str:
    """GradDrop's top heads, when the estimate has its scores (they rank; no sign)."""
    scores = getattr(result, "grad_drop_heads", None)
    if scores is None:
        return ""
    top = np.argsort(-scores, axis=None, kind="stable")[:5]
    cells = ", ".join(
        f"L{layer}H{head} {scores[layer, head]:.2f}"
        for layer, head in zip(*np.unravel_index(top, scores.shape), strict=True)
    )
    return f"; GradDrop's top heads (|effect|, no sign): {cells}"


def site_to_selected_layer(site: int) -> int:
    """The ``selected_layer`` of residual site ``site`` (mirror of ``js/src/patching.ts``)."""
    return site - 1


class PatchingWidget(ResultWidget, TokensWidget):
    """Activation patching at a glance (``PatchingWidget(activation_patching(...))``).

    Shows the residual ``[site, position]`` map and the head ``[layer, head]`` map as
    heatmaps with a legend, the target and its clean/corrupted values, and the two prompts
    side by side with the differing tokens marked. Given an ``AblationMap``
    (``interventions.ablation_map``) it shows the head map of target changes alone.
    """

    _esm = STATIC_DIR / "patching.js"

    corrupted_tokens = traitlets.List(traitlets.Unicode(), read_only=True).tag(sync=True)
    """list[str], read-only: the corrupted prompt's tokens, shown as text."""

    differing = traitlets.List(traitlets.Int(), read_only=True).tag(sync=True)
    """list[int], read-only: positions where the two prompts differ (marked in the view)."""

    site_names = traitlets.List(traitlets.Unicode(), read_only=True).tag(sync=True)
    """list[str], read-only: row labels of the residual map (``emb``, ``after L0``, ...)."""

    residual = traitlets.Dict(read_only=True).tag(sync=True)
    """dict, read-only: float32 ``[site, position]`` payload, or ``{}`` when not computed."""

    heads = traitlets.Dict(read_only=True).tag(sync=True)
    """dict, read-only: float32 ``[layer, head]`` payload, or ``{}`` when not computed."""

    target = traitlets.Unicode("", read_only=True).tag(sync=True)
    """str, read-only: the patched target, e.g. ``logit('are') - logit('is') after token 5``."""

    clean_value = traitlets.Float(0.0, read_only=True).tag(sync=True)
    """float, read-only: the target on the clean prompt (normalised to 1)."""

    corrupted_value = traitlets.Float(0.0, read_only=True).tag(sync=True)
    """float, read-only: the target on the corrupted prompt (normalised to 0)."""

    target_position = traitlets.Int(-1, read_only=True).tag(sync=True)
    """int, read-only: the position the target is read after (-1 for an ablation map)."""

    caption = traitlets.Unicode("", read_only=True).tag(sync=True)
    """str, read-only: what the maps show, one line above them (text)."""

    head_title = traitlets.Unicode("", read_only=True).tag(sync=True)
    """str, read-only: title of the head map."""

    residual_title = traitlets.Unicode("", read_only=True).tag(sync=True)
    """str, read-only: title of the residual map ("" = the patching one)."""

    residual_layers = traitlets.List(traitlets.Int(), read_only=True).tag(sync=True)
    """list[int], read-only: the layer each residual-map row selects on a click ([] = the site
    rule, ``site - 1``; a logit attribution's components: ``emb`` -1, ``L{i} attn``/``MLP`` i)."""

    head_positions = traitlets.Dict(read_only=True).tag(sync=True)
    """dict, read-only: float32 ``[layer, head, position]`` payload of a logit attribution (the
    selected head's contribution at every token colors the text), or ``{}``."""

    legend = traitlets.Dict(read_only=True).tag(sync=True)
    """dict, read-only: ``{"label", "units", "note"}`` of the color legend."""

    def __init__(self, result: Any, **kwargs: Any) -> None:
        from llmasos_widgets.interventions import (
            AblationMap,
            LogitAttribution,
            PatchingResult,
            PathPatchingMap,
        )

        if not isinstance(
            result, PatchingResult | AblationMap | LogitAttribution | PathPatchingMap
        ):
            raise TypeError(
                "PatchingWidget takes a PatchingResult (llmasos_widgets.activation_patching), "
                "a LogitAttribution (llmasos_widgets.logit_attribution), a PathPatchingMap "
                "(interventions.path_patching_map) or an AblationMap "
                f"(interventions.ablation_map), got {type(result).__name__}"
            )
        n_tokens = None
        if isinstance(result, PatchingResult):
            n_tokens = len(result.clean_tokens)
        elif isinstance(result, LogitAttribution):
            n_tokens = len(result.tokens)
        # validators read these, so they exist before the traits are initialised
        self._dims = {
            "layers": result.n_layers,
            "heads": result.n_heads,
            "tokens": n_tokens,
        }
        self._result = result
        super().__init__(**kwargs)
        if isinstance(result, PatchingResult):
            self._show_patching(result)
        elif isinstance(result, LogitAttribution):
            self._show_logit_attribution(result)
        elif isinstance(result, PathPatchingMap):
            self._show_path_map(result)
        else:
            self._show_ablation(result)

    def _show_patching(self, result: Any) -> None:
        style = getattr(result, "token_style", None)
        self._show_tokens(result.clean_tokens, style)  # token linking uses the clean prompt's
        corrupted = display_traits(result.corrupted_tokens, style)["display_tokens"]
        self.set_trait("corrupted_tokens", corrupted)
        self.set_trait("differing", list(result.differing_positions))
        self.set_trait("site_names", list(result.site_names))
        for name, values in (("residual", result.residual), ("heads", result.heads)):
            payload = {} if values is None else tensor_payload(np.asarray(values, np.float32))
            self.set_trait(name, payload)
        self.set_trait("target", result.target)
        self.set_trait("clean_value", float(result.clean_value))
        self.set_trait("corrupted_value", float(result.corrupted_value))
        self.set_trait("target_position", int(result.target_position))
        method = getattr(result, "method", None)  # an estimate says so (attribution patching)
        self.set_trait(
            "caption",
            (f"estimate by {method}, first order: " if method else "")
            + f"metric: (patched − corrupted) / (clean − corrupted) of {result.target}; "
            f"clean = {result.clean_value:.3f} (1), corrupted = {result.corrupted_value:.3f} (0)"
            + _grad_drop_note(result),
        )
        shared = " (heads of one key/value head share a cell)" if result.head_node in "kv" else ""
        self.set_trait(
            "head_title",
            f"head {HEAD_NODES[result.head_node]} at every position{shared}: layer × head "
            "(click: head)",
        )
        self.set_trait(
            "legend",
            {
                "label": "patching effect",
                "units": "fraction of the clean − corrupted difference",
                "note": "1 = patch restores the clean run, 0 = no effect, < 0 = moves away from it",
            },
        )

    def _show_logit_attribution(self, result: Any) -> None:
        self._show_tokens(result.tokens, result.token_style)
        self.set_trait("site_names", list(result.component_names))
        self.set_trait("residual_layers", list(result.component_layers))
        self.set_trait("residual", tensor_payload(result.component_map))
        self.set_trait("heads", tensor_payload(result.head_map))
        self.set_trait("head_positions", tensor_payload(result.heads))
        self.set_trait("target", result.target)
        self.set_trait("clean_value", float(result.logits[result.position]))
        self.set_trait("target_position", int(result.position))
        self.set_trait(
            "caption",
            f"direct logit attribution of {result.target} (the model's value "
            f"{float(result.logits[result.position]):.3f}): each part's direct contribution "
            "through the final norm, its scale frozen; each token's column adds up to that "
            "token's logit",
        )
        self.set_trait("residual_title", "components × token (click: that layer and token)")
        self.set_trait(
            "head_title",
            f"heads at token {result.position}: layer × head (click: a head colors the text "
            "by its contribution at every token)",
        )
        self.set_trait(
            "legend",
            {
                "label": "direct contribution",
                "units": "logit",
                "note": "> 0 raises the target, < 0 lowers it",
            },
        )

    def _show_path_map(self, result: Any) -> None:
        senders = ", ".join(f"L{layer}H{head}" for layer, head in result.senders)
        part = {"q": "query", "k": "key", "v": "value"}[result.which]
        self.set_trait("heads", tensor_payload(result.effect))
        self.set_trait("target", result.target)
        self.set_trait("clean_value", float(result.clean_value))
        self.set_trait("corrupted_value", float(result.corrupted_value))
        self.set_trait(
            "caption",
            f"path patching: the effect of {senders} on {result.target} through each later "
            f"head's {part} alone (every path together: {result.total_effect:.3f}); clean = "
            f"{result.clean_value:.3f} (1), corrupted = {result.corrupted_value:.3f} (0)",
        )
        self.set_trait("head_title", f"receiving head ({part}): layer × head (click: that head)")
        self.set_trait(
            "legend",
            {
                "label": "effect through this head",
                "units": "fraction of the clean − corrupted difference",
                "note": "blank: layers that cannot receive (up to the senders')",
            },
        )

    def _show_ablation(self, result: Any) -> None:
        self.set_trait("heads", tensor_payload(result.change))
        self.set_trait("target", result.target)
        self.set_trait("clean_value", float(result.before))
        self.set_trait(
            "caption",
            f"{result.mode}-ablating one head at a time over {result.n_texts} text(s): change in "
            f"{result.target} (without ablation: {result.before:.3f})",
        )
        self.set_trait("head_title", "head ablated alone: layer × head (click: that head)")
        self.set_trait(
            "legend",
            {
                "label": "change when the head is ablated",
                "units": "target units",
                "note": "< 0: the head helps the target; 0: no effect",
            },
        )

    def select_head(self, layer: int, head: int) -> None:
        """Select head-map cell ``(layer, head)`` as a click on it does."""
        self.selected_layer = layer
        self.selected_heads = [head]

    def select_residual(self, site: int, position: int) -> None:
        """Select residual-map cell ``(site, position)`` as a click on it does (for a logit
        attribution, ``site`` is the component row)."""
        n_sites = len(self.site_names)
        if not 0 <= site < n_sites:
            raise ValueError(f"site {site} is out of range: use 0..{n_sites - 1}")
        layers = self.residual_layers
        self.selected_layer = layers[site] if layers else site_to_selected_layer(site)
        self.selected_tokens = [position]
