"""Export explanations to standalone files."""

from llmasos_widgets.export._html import write_report

__all__ = ["write_report"]
