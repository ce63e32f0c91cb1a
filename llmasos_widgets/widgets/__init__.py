"""Jupyter widgets (anywidget). Each Python class mirrors a ``js/src/<name>.ts`` bundle."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from llmasos_widgets.widgets._selection import Selection, link_selection
from llmasos_widgets.widgets.attention import AttentionWidget

# Widgets in modules written separately; imported on first use so that a missing or broken
# one does not break `import llmasos_widgets.widgets`.
_LAZY = {
    "SaliencyWidget": "llmasos_widgets.widgets.saliency",
    "ProbeWidget": "llmasos_widgets.widgets.probe",
}

__all__ = ["AttentionWidget", "ProbeWidget", "SaliencyWidget", "Selection", "link_selection"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'llmasos_widgets.widgets' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:
    from llmasos_widgets.widgets.probe import ProbeWidget
    from llmasos_widgets.widgets.saliency import SaliencyWidget
