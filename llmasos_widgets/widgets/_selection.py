"""Selection shared between widgets: ``link_selection(a, b, ...)`` / ``Selection``.

Links are kernel-side ``traitlets.link``s through one hub object, so a change in any widget
(from Python or from a click in its view) reaches all the others, also before anything is
displayed. Hover reaches the kernel debounced (``js/src/lib/selection.ts``), which is the
rate other widgets follow it at; inside one widget hover is linked in the browser.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import traitlets

from llmasos_widgets.widgets._base import SELECTION_TRAITS

LINKABLE_TRAITS = (*SELECTION_TRAITS, "metric")


class Selection(traitlets.HasTraits):
    """One selection state linked into several widgets.

    The first widget added gives its state to the selection; widgets added later take it.
    Only traits a widget has are linked (a widget without heads still shares tokens).
    """

    selected_layer = traitlets.Int(-1)
    """int, default -1: the selected layer (-1 = none)."""

    selected_heads = traitlets.List(traitlets.Int(), default_value=[])
    """list[int], default []: selected heads of ``selected_layer``."""

    selected_tokens = traitlets.List(traitlets.Int(), default_value=[])
    """list[int], default []: brushed token positions."""

    hovered_token = traitlets.Int(-1)
    """int, default -1: token under the pointer (-1 = none)."""

    metric = traitlets.Unicode("")
    """str, default "": shared metric, linked only when requested with ``traits=``."""

    def __init__(self, *widgets: Any, traits: Iterable[str] = SELECTION_TRAITS) -> None:
        super().__init__()
        self.traits_linked = tuple(traits)
        unknown = [t for t in self.traits_linked if t not in LINKABLE_TRAITS]
        if unknown:
            raise ValueError(
                f"cannot link trait {unknown[0]!r}; linkable traits: {', '.join(LINKABLE_TRAITS)}"
            )
        self._links: dict[int, list[traitlets.link]] = {}
        self._widgets: list[Any] = []
        for widget in widgets:
            self.add(widget)

    @property
    def widgets(self) -> tuple[Any, ...]:
        """The linked widgets, in the order they were added."""
        return tuple(self._widgets)

    def add(self, widget: Any) -> None:
        """Link ``widget``'s selection traits to this selection."""
        if not isinstance(widget, traitlets.HasTraits):
            raise TypeError(f"can only link widgets with traits, got {type(widget).__name__}")
        if id(widget) in self._links:
            return
        first = not self._widgets
        links = []
        for name in self.traits_linked:
            if not widget.has_trait(name):
                continue
            # traitlets.link copies source → target once on creation: first widget wins.
            pair = ((widget, name), (self, name)) if first else ((self, name), (widget, name))
            links.append(traitlets.link(*pair))
        self._links[id(widget)] = links
        self._widgets.append(widget)

    def remove(self, widget: Any) -> None:
        """Unlink ``widget``; it keeps its current values."""
        for link in self._links.pop(id(widget), []):
            link.unlink()
        self._widgets = [w for w in self._widgets if w is not widget]

    def unlink(self) -> None:
        """Unlink every widget."""
        for widget in list(self._widgets):
            self.remove(widget)


def link_selection(*widgets: Any, traits: Iterable[str] = SELECTION_TRAITS) -> Selection:
    """Link the selection of two or more widgets: select a head or brush tokens in one,
    every other follows. Returns the :class:`Selection` (``.unlink()`` to undo).

    ``traits`` defaults to ``selected_layer``, ``selected_heads``, ``selected_tokens``,
    ``hovered_token``; add ``"metric"`` only between widgets that accept the same metric names.
    """
    if len(widgets) < 2:
        raise TypeError(f"link_selection needs at least two widgets, got {len(widgets)}")
    return Selection(*widgets, traits=traits)
