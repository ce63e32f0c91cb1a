"""The analyses behind ``ExplainableModel.explain`` and ``.generate``, bound from above.

They are implemented in ``explanation``, which lies above ``models``: importing it registers
them here (:func:`register_analysis`), and the first call imports it, so ``model.explain(...)``
works for a user who imported only ``llmasos_widgets`` -- the way ``_views.py`` lets the view
packages register.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

# the module whose import registers the built-in analyses
_PROVIDER = "llmasos_widgets.explanation"

# name -> function(model, ...); filled at import time of the provider, never per call
_ANALYSES: dict[str, Callable[..., Any]] = {}


def register_analysis(name: str, function: Callable[..., Any]) -> None:
    """Run ``function(model, *args, **kwargs)`` for ``ExplainableModel.<name>``."""
    _ANALYSES[name] = function


def analysis(name: str) -> Callable[..., Any]:
    """The function registered as ``name``, importing the provider on first use."""
    if name not in _ANALYSES:
        importlib.import_module(_PROVIDER)
    return _ANALYSES[name]
