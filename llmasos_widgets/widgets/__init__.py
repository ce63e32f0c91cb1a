"""Jupyter widgets (anywidget). Each Python class mirrors a ``js/src/<name>.ts`` bundle."""

from llmasos_widgets.widgets._selection import Selection, link_selection
from llmasos_widgets.widgets.attention import AttentionWidget
from llmasos_widgets.widgets.probe import ProbeWidget
from llmasos_widgets.widgets.saliency import SaliencyWidget

__all__ = ["AttentionWidget", "ProbeWidget", "SaliencyWidget", "Selection", "link_selection"]
