"""Export explanations to standalone files."""

from llmasos_widgets._views import register_view
from llmasos_widgets.explanation import Explanation
from llmasos_widgets.export._explanation_html import write_report

register_view("html", Explanation, write_report)


def _register_patching() -> None:
    from llmasos_widgets.export._counterfactuals_html import (
        counterfactuals_fragment,
        write_counterfactuals_report,
    )
    from llmasos_widgets.export._logit_attribution_html import write_logit_attribution_report
    from llmasos_widgets.export._patching_html import write_patching_report
    from llmasos_widgets.export._path_patching_html import write_path_patching_report
    from llmasos_widgets.interventions import (
        CounterfactualResult,
        LogitAttribution,
        PatchingResult,
        PathPatchingMap,
        PathPatchingResult,
    )

    register_view("html", PatchingResult, write_patching_report)
    register_view("html", LogitAttribution, write_logit_attribution_report)
    register_view("html", PathPatchingResult, write_path_patching_report)
    register_view("html", PathPatchingMap, write_path_patching_report)
    register_view("html", CounterfactualResult, write_counterfactuals_report)
    register_view("html_fragment", CounterfactualResult, counterfactuals_fragment)


_register_patching()


def _register_comparison() -> None:
    from llmasos_widgets.comparison import Comparison
    from llmasos_widgets.export._compare_html import write_comparison_report

    register_view("html", Comparison, write_comparison_report)


_register_comparison()

__all__ = ["write_report"]
