"""View computation for the widgets and reports: attention pooled at screen resolution (zoomable,
never ``[T, T]``) and the hover flow, computed from an Explanation's q/k.

Layered above ``explanation`` (it reads an Explanation and its row-normaliser cache) and below
``widgets``/``export``. ``Explanation.pooled_attention`` reaches :func:`pooled_view` through
the ``"pooled_attention"`` view registered here (``llmasos_widgets._views``), so
``explanation`` imports nothing from this package.
"""

from llmasos_widgets._views import register_view
from llmasos_widgets.explanation import Explanation
from llmasos_widgets.views._flow import flow_values
from llmasos_widgets.views._pooled_pattern import (
    REDUCTIONS,
    PooledPattern,
    block_edges,
    check_region,
)
from llmasos_widgets.views._pooled_view import pooled_view
from llmasos_widgets.views._pooling import pooled_patterns_from_qk

register_view("pooled_attention", Explanation, pooled_view)

__all__ = [
    "REDUCTIONS",
    "PooledPattern",
    "block_edges",
    "check_region",
    "flow_values",
    "pooled_patterns_from_qk",
    "pooled_view",
]
