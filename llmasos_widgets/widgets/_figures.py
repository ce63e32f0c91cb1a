"""Save a widget's views as image files from Python: ``widget.save_figure("pattern.png")``.

The front end draws the figures, so it also encodes them (``js/src/lib/figures.ts``): every
element marked ``data-figure="<name>"`` is a figure, a canvas saved as PNG (device pixels) and an
svg as a standalone SVG. This module is the kernel half of that protocol:

- every displayed view reports ``{"type": "figure_view", "view_id", "figures", "formats"}`` when
  it renders and when its figures change (``figures: None`` when it is removed);
- :meth:`FigureExportMixin.save_figure` sends ``figure_request`` to the most recently reported
  view that has the figure and returns a :class:`FigureRequest` (a ``concurrent.futures.Future``)
  resolved with the written path when ``figure`` (bytes in one buffer) or ``figure_error``
  comes back.

Timing. The kernel handles a message from the browser on its event loop: after the running
cell, or while the cell ``await``s (ipykernel 7, tested in tests/browser/test_figures_browser.py).
So a view displayed in the cell that calls ``save_figure`` has not reported yet (the call raises
:class:`FigureUnavailableError`: display in one cell, save in a later one), and the request is
resolved either while the same cell runs ``await request`` or once the cell finishes (the next
cell's ``request.result()`` returns at once). A blocking ``request.result()`` in the calling
cell blocks that loop, so the reply cannot arrive: it ends in ``TimeoutError`` after
``timeout``. marimo runs cells without an event loop the reply could use meanwhile: there the
file is written after the cell.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import threading
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

_FORMATS = {".png": "png", ".svg": "svg"}
_KIND = {"png": "a PNG (canvas)", "svg": "an SVG plot"}
_request_ids = itertools.count(1)


class FigureUnavailableError(RuntimeError):
    """No displayed view can produce the figure now (none displayed, or none has it)."""


class FigureRequest(concurrent.futures.Future[Path]):
    """A pending figure: ``result()`` is the written :class:`~pathlib.Path`.

    Resolved when the front end replies (while the calling cell awaits it, or after the cell;
    see the module notes); failed with ``TimeoutError`` when no reply came within the
    ``timeout`` given to ``save_figure``, or ``RuntimeError`` with the front end's message.
    """

    def __init__(self, path: Path, view: str, request_id: int) -> None:
        super().__init__()
        self.path = path
        self.view = view
        self.request_id = request_id
        self.size: tuple[int, int] | None = None
        """(width, height) of the written image once done: pixels (PNG) or CSS pixels (SVG)."""

    def __await__(self) -> Generator[Any, None, Path]:
        return asyncio.wrap_future(self).__await__()

    def __repr__(self) -> str:
        if not self.done():
            state = "pending: written when the front end replies (await it, or use a later cell)"
        elif self.exception() is not None:
            state = f"failed: {self.exception()}"
        else:
            state = f"written, {self.size[0]}x{self.size[1]}" if self.size else "written"
        return f"<FigureRequest {self.view!r} -> {str(self.path)!r}: {state}>"


class FigureExportMixin:
    """``save_figure`` for an anywidget whose front end calls ``attachFigureExport``."""

    _default_figure: str | None = None
    """The figure ``save_figure`` saves when no ``view`` is given (else the view's first)."""

    def _figure_state(
        self,
    ) -> tuple[dict[str, dict[str, str]], dict[int, FigureRequest], threading.Lock]:
        state = self.__dict__.get("_llmw_figures")
        if state is None:
            state = self.__dict__.setdefault("_llmw_figures", ({}, {}, threading.Lock()))
        return state

    @property
    def figures(self) -> list[str]:
        """Figure names the displayed views have reported (``[]`` while none has)."""
        views, _, lock = self._figure_state()
        with lock:
            names = [name for figures in views.values() for name in figures]
        return list(dict.fromkeys(names))

    def save_figure(
        self, path: str | Path, view: str | None = None, *, timeout: float = 30.0
    ) -> FigureRequest:
        """Ask the front end for figure ``view`` and write it to ``path`` (``.png`` or ``.svg``).

        Returns at once with a :class:`FigureRequest`; the file is written when the browser
        replies, which the kernel handles while the cell ``await``s the request or after the
        cell (a blocking ``request.result()`` in the same cell only times out). Raises
        :class:`FigureUnavailableError` immediately when no view of this widget has reported to
        the kernel (not displayed, or displayed in this same cell) or none has figure ``view``,
        and ``ValueError`` for a suffix that does not match the figure (canvas views are PNG,
        plots SVG). ``timeout`` (seconds) fails the request with ``TimeoutError`` when no reply
        comes (a closed page, a kernel without a front end).
        """
        target = Path(path)
        fmt = _FORMATS.get(target.suffix.lower())
        if fmt is None:
            raise ValueError(
                f"save_figure writes .png or .svg files, got {str(target)!r}; "
                "use one of those suffixes"
            )
        if not timeout > 0:
            raise ValueError(f"timeout must be positive seconds, got {timeout!r}")
        views, requests, lock = self._figure_state()
        widget = type(self).__name__
        with lock:
            reported = list(views.items())
        if not reported:
            raise FigureUnavailableError(
                f"no view of this {widget} has reported to the kernel: display it first "
                "(display(widget), or mo.ui.anywidget(widget) in marimo) and call save_figure in a "
                "later cell; a front end's messages reach the kernel only between cells"
            )
        name = (
            view
            or self._default_figure
            or next((next(iter(f)) for _, f in reversed(reported) if f), None)
        )
        match = next(
            ((vid, figures) for vid, figures in reversed(reported) if name in figures), None
        )
        if name is None or match is None:
            known = ", ".join(self.figures) or "none yet (select something to show first)"
            raise FigureUnavailableError(
                f"no displayed view of this {widget} shows figure {name!r}; figures: {known}"
            )
        view_id, figures = match
        if figures[name] != fmt:
            raise ValueError(
                f"figure {name!r} is {_KIND[figures[name]]}; "
                f"save it to a .{figures[name]} path, not {str(target)!r}"
            )
        request = FigureRequest(target, name, next(_request_ids))
        timer = threading.Timer(timeout, self._expire_figure, (request.request_id, timeout))
        timer.daemon = True
        with lock:
            requests[request.request_id] = request
        request.add_done_callback(lambda _: timer.cancel())
        message = {"type": "figure_request", "request_id": request.request_id}
        message.update(view_id=view_id, name=name, format=fmt)
        self.send(message)  # type: ignore[attr-defined]  # the widget's (anywidget) send
        timer.start()
        return request

    def _expire_figure(self, request_id: int, timeout: float) -> None:
        _, requests, lock = self._figure_state()
        with lock:
            request = requests.pop(request_id, None)
        if request is not None and not request.done():
            request.set_exception(
                TimeoutError(
                    f"no reply from the front end within {timeout:g} s for figure "
                    f"{request.view!r}: a blocking result() in the calling cell keeps the "
                    "reply out (use `await request`, or a later cell); otherwise the view was "
                    "closed or the page reloaded: display the widget again"
                )
            )

    def _handle_custom_msg(self, content: Any, buffers: Sequence[Any]) -> None:
        # ipywidgets (and marimo's comm) deliver custom messages here; figure messages stop here,
        # everything else goes to the widget's own on_msg handlers.
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "figure_view":
            self._on_figure_view(content)
        elif kind in ("figure", "figure_error"):
            self._on_figure_reply(content, buffers)
        else:
            super()._handle_custom_msg(content, buffers)  # type: ignore[misc]

    def _on_figure_view(self, content: dict[str, Any]) -> None:
        views, _, lock = self._figure_state()
        view_id = str(content.get("view_id", ""))
        figures, formats = content.get("figures"), content.get("formats") or []
        with lock:
            views.pop(view_id, None)  # re-inserted last: the most recent view answers
            if figures is not None:
                views[view_id] = {str(n): str(f) for n, f in zip(figures, formats, strict=False)}

    def _on_figure_reply(self, content: dict[str, Any], buffers: Sequence[Any]) -> None:
        _, requests, lock = self._figure_state()
        with lock:
            request = requests.pop(int(content.get("request_id", -1)), None)
        if request is None or request.done():
            return  # timed out already, or another view answered first
        if content["type"] == "figure_error" or not buffers:
            message = content.get("message", "the front end sent no bytes")
            request.set_exception(
                RuntimeError(f"the front end could not export {request.view!r}: {message}")
            )
            return
        try:
            request.path.parent.mkdir(parents=True, exist_ok=True)
            request.path.write_bytes(bytes(buffers[0]))
        except OSError as err:
            request.set_exception(err)
            return
        request.size = (int(content.get("width", 0)), int(content.get("height", 0)))
        request.set_result(request.path)
