"""``explain()`` and the :class:`Explanation` it returns."""

from llmasos_widgets.explanation._explain import explain, resolve_saliency_method
from llmasos_widgets.explanation._explanation import Explanation, ExplanationFileError
from llmasos_widgets.explanation._generate import generate
from llmasos_widgets.explanation._generation import Generation
from llmasos_widgets.explanation._lens import final_logits
from llmasos_widgets.explanation._sinks import measure_sinks
from llmasos_widgets.explanation._summaries import SUMMARY_NAMES
from llmasos_widgets.models import register_analysis

# ExplainableModel.explain / .generate (models lies below and cannot import these)
register_analysis("explain", explain)
register_analysis("generate", generate)

__all__ = [
    "SUMMARY_NAMES",
    "Explanation",
    "ExplanationFileError",
    "Generation",
    "explain",
    "final_logits",
    "generate",
    "measure_sinks",
    "resolve_saliency_method",
]
