"""Export explanations to standalone files."""

from llmasos_widgets._views import register_view
from llmasos_widgets.explanation import Explanation
from llmasos_widgets.export._html import write_report

register_view("html", Explanation, write_report)

__all__ = ["write_report"]
