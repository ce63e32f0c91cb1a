"""The explanation report's causal sections: one per result attached with
``Explanation.attach``, each the fragment of that result's own page (patching, attribution
patching labelled as an estimate, direct logit attribution, path patching)."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from llmasos_widgets.export._counterfactuals_html import counterfactuals_fragment
from llmasos_widgets.export._logit_attribution_html import logit_attribution_fragment
from llmasos_widgets.export._patching_html import MAP_STYLE, patching_fragment
from llmasos_widgets.export._path_patching_html import (
    path_patching_fragment,
    path_patching_map_fragment,
)

if TYPE_CHECKING:
    from llmasos_widgets.explanation import Explanation


def causal_sections(explanation: Explanation) -> str:
    """``""`` when nothing is attached, else a heading and one ``<section>`` per result."""
    results = explanation.causal_results
    if not results:
        return ""
    sections = "".join(
        f"<section data-testid='report-causal-{index}'>{_fragment(result)}</section>"
        for index, result in enumerate(results)
    )
    return (
        f"<style>{MAP_STYLE}</style><h2>Causal tests</h2><p class='muted'>{len(results)} "
        "result(s) attached with <code>explanation.attach(...)</code>; colors: blue lowers, "
        "red raises, white is no effect</p>" + sections
    )


def _fragment(result: Any) -> str:
    from llmasos_widgets.interventions import (
        CounterfactualResult,
        LogitAttribution,
        PatchingResult,
        PathPatchingMap,
        PathPatchingResult,
    )

    if isinstance(result, PatchingResult):  # attribution patching too, titled an estimate
        return patching_fragment(result, level=3)
    if isinstance(result, LogitAttribution):
        return logit_attribution_fragment(result, level=3)
    if isinstance(result, PathPatchingResult):
        return path_patching_fragment(result, level=3)
    if isinstance(result, PathPatchingMap):
        return path_patching_map_fragment(result, level=3)
    if isinstance(result, CounterfactualResult):
        return counterfactuals_fragment(result, level=3)
    return f"<p class='warn'>no report section for {html.escape(type(result).__name__)}</p>"
