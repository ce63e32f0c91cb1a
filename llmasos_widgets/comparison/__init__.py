"""Two models on one text: ``compare(model_a, model_b, text)`` -> :class:`Comparison`, and a
small seeded :func:`fine_tune` to make model B from model A (docs/compare.md)."""

from llmasos_widgets.comparison._compare import check_comparable, compare, lens_difference
from llmasos_widgets.comparison._comparison import ATTENTION, Comparison
from llmasos_widgets.comparison._finetune import fine_tune

__all__ = ["ATTENTION", "Comparison", "check_comparable", "compare", "fine_tune", "lens_difference"]
