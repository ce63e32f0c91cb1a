"""How data objects are shown, registered by the packages that show them.

Results (``Explanation``) are plain data and import no view code: ``widgets`` registers how a
notebook displays them (kind ``"mimebundle"``) and ``export`` how they become a standalone
page (kind ``"html"``; ``probing`` registers its ``ProbeResult`` page itself) or the body of
one (kind ``"html_fragment"``, which a notebook view can show without ``widgets`` importing
``export``). :func:`render`
imports the built-in provider of a kind on first use, so ``Explanation.to_html`` works without
the user importing ``export`` first. Computed views bind the same way: ``views`` registers kind
``"pooled_attention"`` (``Explanation.pooled_attention``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

# kind -> module whose import registers the built-in views of that kind
_BUILTIN_PROVIDERS: dict[str, str] = {
    "mimebundle": "llmasos_widgets.widgets",
    "html": "llmasos_widgets.export",
    "html_fragment": "llmasos_widgets.export",
    "pooled_attention": "llmasos_widgets.views",
}

# (kind, type) -> view function; filled at import time of the providers, never per call
_VIEWS: dict[tuple[str, type], Callable[..., Any]] = {}


def register_view(kind: str, cls: type, view: Callable[..., Any]) -> None:
    """Show instances of ``cls`` (and subclasses) as ``kind`` with ``view(obj, *args, **kw)``."""
    if not kind:
        raise ValueError("kind must be a non-empty name such as 'html' or 'mimebundle'")
    _VIEWS[(kind, cls)] = view


def render(kind: str, obj: Any, *args: Any, **kwargs: Any) -> Any:
    """``view(obj, *args, **kwargs)`` for the view of ``kind`` registered for ``obj``'s type."""
    view = _find(kind, type(obj))
    if view is None and kind in _BUILTIN_PROVIDERS:
        importlib.import_module(_BUILTIN_PROVIDERS[kind])
        view = _find(kind, type(obj))
    if view is None:
        kinds = sorted({k for k, cls in _VIEWS if isinstance(obj, cls)} | set(_BUILTIN_PROVIDERS))
        raise LookupError(
            f"no {kind!r} view is registered for {type(obj).__name__}; known kinds: "
            f"{', '.join(kinds)} (register one with llmasos_widgets._views.register_view)"
        )
    return view(obj, *args, **kwargs)


def _find(kind: str, cls: type) -> Callable[..., Any] | None:
    for base in cls.__mro__:
        view = _VIEWS.get((kind, base))
        if view is not None:
            return view
    return None
