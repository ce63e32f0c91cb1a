"""save_figure's kernel half (widgets/_figures.py), driven by the messages the front end sends
(js/src/lib/figures.ts; the real browser round trip: tests/browser/test_figures_browser.py)."""

from __future__ import annotations

import struct
from typing import Any

import pytest

from llmasos_widgets.widgets._base import SelectionWidget
from llmasos_widgets.widgets._figures import FigureRequest, FigureUnavailableError

PNG = b"\x89PNG\r\n\x1a\n" + struct.pack(">I4sII", 13, b"IHDR", 300, 150) + b"rest"


class _Widget(SelectionWidget):
    _esm = "export default { render() {} }"

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[dict[str, Any]] = []
        self.other: list[dict[str, Any]] = []
        self.on_msg(lambda _w, content, _b: self.other.append(content))

    def send(self, content: Any, buffers: Any = None) -> None:  # the comm to the browser
        self.sent.append(content)


def _report(widget: _Widget, view_id: str, figures: dict[str, str] | None) -> None:
    names = None if figures is None else list(figures)
    formats = None if figures is None else list(figures.values())
    widget._handle_custom_msg(
        {"type": "figure_view", "view_id": view_id, "figures": names, "formats": formats}, []
    )


def test_no_view_fails_at_once_and_says_to_use_a_later_cell(tmp_path):
    widget = _Widget()
    with pytest.raises(FigureUnavailableError, match="later cell"):
        widget.save_figure(tmp_path / "a.png")
    assert widget.sent == []


def test_reply_writes_the_bytes_and_resolves_with_the_path(tmp_path):
    widget = _Widget()
    _report(widget, "old", {"grid": "png"})
    _report(widget, "new", {"grid": "png", "pattern": "png", "probe": "svg"})
    assert widget.figures == ["grid", "pattern", "probe"]
    request = widget.save_figure(tmp_path / "sub" / "p.png", "pattern")
    assert isinstance(request, FigureRequest) and not request.done()
    assert "pending" in repr(request)
    (message,) = widget.sent
    assert (
        message["view_id"] == "new" and message["name"] == "pattern" and message["format"] == "png"
    )
    reply = {"type": "figure", "request_id": message["request_id"], "width": 300, "height": 150}
    widget._handle_custom_msg(reply, [memoryview(PNG)])
    assert request.result(timeout=0) == tmp_path / "sub" / "p.png"
    assert (tmp_path / "sub" / "p.png").read_bytes() == PNG
    assert request.size == (300, 150)
    widget._handle_custom_msg(reply, [memoryview(b"second view")])  # a later reply is ignored
    assert (tmp_path / "sub" / "p.png").read_bytes() == PNG
    assert widget.other == []  # figure messages do not reach the widget's own handlers


def test_default_figure_is_the_latest_views_first(tmp_path):
    widget = _Widget()
    _report(widget, "v", {"grid": "png", "line": "png"})
    widget.save_figure(tmp_path / "g.png")
    assert widget.sent[-1]["name"] == "grid"


def test_wrong_suffix_unknown_figure_and_removed_view_are_clear_errors(tmp_path):
    widget = _Widget()
    _report(widget, "v", {"probe": "svg"})
    with pytest.raises(ValueError, match=r"\.png or \.svg"):
        widget.save_figure(tmp_path / "a.jpg", "probe")
    with pytest.raises(ValueError, match=r"SVG plot; save it to a \.svg path"):
        widget.save_figure(tmp_path / "a.png", "probe")
    with pytest.raises(FigureUnavailableError, match="figures: probe"):
        widget.save_figure(tmp_path / "a.png", "pattern")
    _report(widget, "v", None)
    with pytest.raises(FigureUnavailableError, match="no view"):
        widget.save_figure(tmp_path / "a.svg", "probe")
    assert widget.sent == []


def test_front_end_error_and_timeout_fail_the_request(tmp_path):
    widget = _Widget()
    _report(widget, "v", {"grid": "png"})
    failed = widget.save_figure(tmp_path / "a.png", "grid")
    widget._handle_custom_msg(
        {"type": "figure_error", "request_id": failed.request_id, "message": "boom"}, []
    )
    with pytest.raises(RuntimeError, match="could not export 'grid': boom"):
        failed.result(timeout=0)
    late = widget.save_figure(tmp_path / "b.png", "grid", timeout=0.05)
    with pytest.raises(TimeoutError, match="use `await request`, or a later cell"):
        late.result(timeout=5)
    assert not (tmp_path / "b.png").exists()


def test_other_messages_still_reach_the_widget():
    widget = _Widget()
    widget._handle_custom_msg({"type": "request_patterns"}, [])
    assert widget.other == [{"type": "request_patterns"}]
