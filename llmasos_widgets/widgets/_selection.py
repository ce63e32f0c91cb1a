"""Selection shared between widgets: ``link_selection(a, b, ...)`` / ``Selection``.

What linking means when the widgets show different texts (or models):

- **layers and heads** always link; a layer or head the receiving widget does not have
  arrives as "none" (``-1`` / dropped from the list).
- **tokens** link by position only over the *shared prefix*: the leading positions where both
  widgets show the same tokens. A token brushed or hovered past it in one widget is not
  shown in the other (hover becomes ``-1``, the brush keeps only shared positions). Each
  widget's ``linked_tokens`` says how many leading tokens it shares with every widget it is
  linked to (``-1`` when it is not linked), and the token strip marks the tokens past it.

Nothing a linked widget sends can make another raise: values are translated, never forced.
Links are kernel-side observers through one hub object, so a change in any widget (from Python
or from a click in its view) reaches all the others, also before anything is displayed. Hover
reaches the kernel debounced (``js/src/lib/selection.ts``), which is the rate other widgets
follow it at; inside one widget hover is linked in the browser.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import traitlets

from llmasos_widgets.widgets._base import SELECTION_TRAITS

LINKED_BY_DEFAULT = (*SELECTION_TRAITS, "selected_cell")
"""What :func:`link_selection` links unless told: the selection, and the clicked attention cell
``[query, key]`` of the widgets that have one (AttentionWidget, GraphWidget)."""

LINKABLE_TRAITS = (*LINKED_BY_DEFAULT, "metric")


class Selection(traitlets.HasTraits):
    """One selection state linked into several widgets.

    The first widget added gives its state to the selection; widgets added later take it.
    Only traits a widget has are linked (a widget without heads still shares tokens). The
    hub's own traits hold the last value written by any widget, untranslated.
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

    selected_cell = traitlets.List(traitlets.Int(), default_value=[])
    """list[int], default []: ``[query, key]`` of the clicked attention cell ([] = none)."""

    def __init__(self, *widgets: Any, traits: Iterable[str] = LINKED_BY_DEFAULT) -> None:
        super().__init__()
        self.traits_linked = tuple(traits)
        unknown = [t for t in self.traits_linked if t not in LINKABLE_TRAITS]
        if unknown:
            raise ValueError(
                f"cannot link trait {unknown[0]!r}; linkable traits: {', '.join(LINKABLE_TRAITS)}"
            )
        self._observers: dict[int, list[tuple[str, Callable[[dict[str, Any]], None]]]] = {}
        self._widgets: list[Any] = []
        self._source: Any = None  # widget whose tokens the hub's token values refer to
        self._busy = False
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
        if id(widget) in self._observers:
            return
        names = [name for name in self.traits_linked if widget.has_trait(name)]
        first = not self._widgets
        self._widgets.append(widget)
        if first:
            self._source = widget
            for name in names:
                self.set_trait(name, getattr(widget, name))
        else:
            for name in names:
                self._send(name, getattr(self, name), self._source, widget)
        observers = []
        for name in names:
            observer = self._observer(widget, name)
            widget.observe(observer, names=name)
            observers.append((name, observer))
        self._observers[id(widget)] = observers
        self._update_linked_tokens()

    def remove(self, widget: Any) -> None:
        """Unlink ``widget``; it keeps its current values."""
        for name, observer in self._observers.pop(id(widget), []):
            widget.unobserve(observer, names=name)
        self._widgets = [w for w in self._widgets if w is not widget]
        if self._source is widget:
            self._source = self._widgets[0] if self._widgets else None
        if widget.has_trait("linked_tokens"):
            widget.set_trait("linked_tokens", -1)
        self._update_linked_tokens()

    def unlink(self) -> None:
        """Unlink every widget."""
        for widget in list(self._widgets):
            self.remove(widget)

    def _observer(self, widget: Any, name: str) -> Callable[[dict[str, Any]], None]:
        def forward(change: dict[str, Any]) -> None:
            if self._busy:
                return
            self._busy = True
            try:
                self._source = widget
                self.set_trait(name, change["new"])
                for other in self._widgets:
                    if other is not widget and other.has_trait(name):
                        self._send(name, change["new"], widget, other)
            finally:
                self._busy = False

        return forward

    def _send(self, name: str, value: Any, source: Any, target: Any) -> None:
        was_busy, self._busy = self._busy, True
        try:
            setattr(target, name, translate(name, value, source, target))
        finally:
            self._busy = was_busy

    def _update_linked_tokens(self) -> None:
        for widget in self._widgets:
            if not widget.has_trait("linked_tokens"):
                continue
            others = [w for w in self._widgets if w is not widget]
            shared = [shared_prefix(widget, other) for other in others]
            known = [n for n in shared if n is not None]
            widget.set_trait("linked_tokens", min(known) if others and known else -1)


def _tokens(widget: Any) -> Sequence[str] | None:
    tokens = getattr(widget, "tokens", None) if widget.has_trait("tokens") else None
    return list(tokens) if tokens is not None else None


def shared_prefix(a: Any, b: Any) -> int | None:
    """How many leading tokens ``a`` and ``b`` show alike; ``None`` when either has no tokens
    (a probe plot): it then takes token positions as they come."""
    ta, tb = _tokens(a), _tokens(b)
    if ta is None or tb is None:
        return None
    n = 0
    for x, y in zip(ta, tb, strict=False):
        if x != y:
            break
        n += 1
    return n


def _size(widget: Any, dimension: str) -> int | None:
    dimensions = getattr(widget, "_dimensions", None)
    return dimensions().get(dimension) if callable(dimensions) else None


def _token_bound(source: Any, target: Any) -> int | None:
    """Positions below this reach ``target`` from ``source`` (None: any)."""
    limit = shared_prefix(source, target) if source is not None else None
    n = _size(target, "tokens")
    return min(x for x in (limit, n) if x is not None) if (limit, n) != (None, None) else None


def translate(name: str, value: Any, source: Any, target: Any) -> Any:
    """``value`` of trait ``name`` in ``source`` as ``target`` should receive it."""
    if name == "selected_layer":
        n = _size(target, "layers")
        return value if n is None or -1 <= value < n else -1
    if name == "selected_heads":
        n = _size(target, "heads")
        return [h for h in value if n is None or 0 <= h < n]
    if name in ("selected_tokens", "hovered_token"):
        bound = _token_bound(source, target)
        if name == "hovered_token":
            return value if bound is None or -1 <= value < bound else -1
        return [t for t in value if bound is None or 0 <= t < bound]
    if name == "selected_cell":
        bound = _token_bound(source, target)
        return list(value) if bound is None or all(0 <= t < bound for t in value) else []
    return value


def link_selection(*widgets: Any, traits: Iterable[str] = LINKED_BY_DEFAULT) -> Selection:
    """Link the selection of two or more widgets: select a head or brush tokens in one,
    every other follows. Returns the :class:`Selection` (``.unlink()`` to undo).

    Layers and heads always link; tokens link by position over the leading tokens the
    widgets' texts share (see this module's docstring). ``traits`` defaults to
    ``selected_layer``, ``selected_heads``, ``selected_tokens``, ``hovered_token`` and
    ``selected_cell`` (the attention cell whose q·k breakdown is shown); add
    ``"metric"`` only between widgets that accept the same metric names.
    """
    if len(widgets) < 2:
        raise TypeError(f"link_selection needs at least two widgets, got {len(widgets)}")
    return Selection(*widgets, traits=traits)
