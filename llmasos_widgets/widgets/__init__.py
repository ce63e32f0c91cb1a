"""Jupyter widgets (anywidget). Each Python class mirrors a ``js/src/<name>.ts`` bundle."""

from typing import Any

from llmasos_widgets._views import register_view, render
from llmasos_widgets.explanation import Explanation
from llmasos_widgets.widgets._figures import FigureRequest, FigureUnavailableError
from llmasos_widgets.widgets._qk import QKBreakdown, qk_breakdown
from llmasos_widgets.widgets._selection import Selection, link_selection
from llmasos_widgets.widgets.attention import AttentionWidget
from llmasos_widgets.widgets.compare import CompareDifferenceWidget, CompareWidget
from llmasos_widgets.widgets.features import FeatureWidget
from llmasos_widgets.widgets.graph import GraphWidget
from llmasos_widgets.widgets.logit_lens import LogitLensWidget
from llmasos_widgets.widgets.patching import PatchingWidget
from llmasos_widgets.widgets.probe import ProbeWidget
from llmasos_widgets.widgets.saliency import SaliencyWidget


def _explanation_bundle(explanation: Explanation, **kwargs: Any) -> Any:
    """An explanation in a notebook: its AttentionWidget (with saliency, when present)."""
    return AttentionWidget(explanation)._repr_mimebundle_(**kwargs)


register_view("mimebundle", Explanation, _explanation_bundle)


def _comparison_bundle(comparison: Any, **kwargs: Any) -> Any:
    """A comparison in a notebook: its CompareWidget (A and B side by side, linked)."""
    return CompareWidget(comparison)._repr_mimebundle_(**kwargs)


def _register_comparison() -> None:
    from llmasos_widgets.comparison import Comparison

    register_view("mimebundle", Comparison, _comparison_bundle)


_register_comparison()


def _register_patching() -> None:
    """A patching result, logit attribution, path map or ablation map in a notebook: its
    PatchingWidget."""
    from llmasos_widgets.interventions import (
        AblationMap,
        LogitAttribution,
        PatchingResult,
        PathPatchingMap,
    )

    for shown in (PatchingResult, LogitAttribution, PathPatchingMap, AblationMap):
        register_view(
            "mimebundle",
            shown,
            lambda result, **kwargs: PatchingWidget(result)._repr_mimebundle_(**kwargs),
        )


_register_patching()


def _counterfactuals_bundle(result: Any, **_: Any) -> dict[str, str]:
    """Counterfactuals in a notebook: the page's tables (export's ``"html_fragment"`` view)
    and the repr; each pair's ``atp`` and ``dla_*`` results show in the PatchingWidget."""
    return {"text/html": render("html_fragment", result), "text/plain": repr(result)}


def _register_counterfactuals() -> None:
    from llmasos_widgets.interventions import CounterfactualResult

    register_view("mimebundle", CounterfactualResult, _counterfactuals_bundle)


_register_counterfactuals()

__all__ = [
    "AttentionWidget",
    "CompareDifferenceWidget",
    "CompareWidget",
    "FeatureWidget",
    "FigureRequest",
    "FigureUnavailableError",
    "GraphWidget",
    "LogitLensWidget",
    "PatchingWidget",
    "ProbeWidget",
    "QKBreakdown",
    "SaliencyWidget",
    "Selection",
    "link_selection",
    "qk_breakdown",
]
