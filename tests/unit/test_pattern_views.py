"""AttentionWidget's level-of-detail views (``request_view`` -> ``view``) without a model.

The pooled computation itself is ``Explanation.pooled_attention`` (llmasos_widgets/views/, tested
there); here a stand-in pools the exact pattern so that the message -- edges, values, argmax
offsets, head averaging, encoding -- can be checked against known answers.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from llmasos_widgets.widgets import AttentionWidget
from llmasos_widgets.widgets._pattern_views import (
    PANELS_BYTES,
    VIEW_BYTES,
    ViewRequest,
    view_message,
)
from tests._long_context import planted_explanation
from tests._wire import decode_view


@dataclass(frozen=True)
class StandInPooled:
    values: np.ndarray
    row_edges: np.ndarray
    col_edges: np.ndarray
    reduce: str
    argmax_query: np.ndarray
    argmax_key: np.ndarray
    exact: bool


def edges(start: int, stop: int, n: int) -> np.ndarray:
    n = min(n, stop - start)
    return np.round(np.linspace(start, stop, n + 1)).astype(np.int64)


class LongExplanation:
    """T tokens, seeded causal patterns with one planted far-back peak per head."""

    def __init__(self, n_tokens: int, n_layers: int = 2, n_heads: int = 3) -> None:
        self.tokens = [f"w{i}" for i in range(n_tokens)]
        self.n_layers, self.n_heads = n_layers, n_heads
        self.head_summaries = {"entropy": np.zeros((n_layers, n_heads), np.float32)}
        self.summary_notes = {"entropy": "estimated from 64 of 600 query rows (seed 0)"}
        self.full_calls = 0

    def exact(self, layer: int, head: int) -> np.ndarray:
        n = len(self.tokens)
        rng = np.random.default_rng(100 * layer + head)
        scores = rng.normal(size=(n, n))
        scores[n - 1, 7 + head] += 30.0  # the last query reads one early key
        scores[np.triu_indices(n, k=1)] = -np.inf
        w = np.exp(scores - scores.max(axis=1, keepdims=True))
        return (w / w.sum(axis=1, keepdims=True)).astype(np.float32)

    def attention(self, layer: int, head: int) -> np.ndarray:
        self.full_calls += 1
        return self.exact(layer, head)

    def pooled_attention(self, layer: int, head: int, *, rows, cols, shape, reduce="max"):  # type: ignore[no-untyped-def]
        p = self.exact(layer, head)
        re, ce = edges(*rows, shape[0]), edges(*cols, shape[1])
        values = np.zeros((len(re) - 1, len(ce) - 1), np.float32)
        aq = np.full(values.shape, -1, np.int64)
        ak = np.full(values.shape, -1, np.int64)
        for r in range(values.shape[0]):
            for c in range(values.shape[1]):
                block = p[re[r] : re[r + 1], ce[c] : ce[c + 1]]
                if reduce == "sum":
                    values[r, c] = block.sum()
                    continue
                i, j = np.unravel_index(block.argmax(), block.shape)
                values[r, c] = block[i, j]
                if block[i, j] > 0:
                    aq[r, c], ak[r, c] = re[r] + i, ce[c] + j
        exact = bool((np.diff(re) == 1).all() and (np.diff(ce) == 1).all())
        return StandInPooled(values, re, ce, reduce, aq, ak, exact)


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[dict[str, Any], list[bytes]]]:
    messages: list[tuple[dict[str, Any], list[bytes]]] = []

    def record(self: Any, content: dict[str, Any], buffers: list[bytes] | None = None) -> None:
        messages.append((content, list(buffers or [])))

    monkeypatch.setattr(AttentionWidget, "send", record)
    return messages


def ask(widget: AttentionWidget, **request: Any) -> None:
    base = {"type": "request_view", "request_id": 1, "layer": 1, "heads": [2], "reduce": "max"}
    widget._handle_custom_msg({**base, **request}, [])


def test_long_text_sends_no_whole_pattern_and_the_view_is_the_pooled_pattern(
    sent: list[Any],
) -> None:
    exp = LongExplanation(600)
    w = AttentionWidget(exp, selected_layer=1, selected_heads=[2])
    assert sent == [] and exp.full_calls == 0  # above full_pattern_limit: no [T, T]
    assert w.summary_notes == exp.summary_notes
    ask(w, rows=[0, 600], cols=[0, 600], shape=[100, 100])
    ((content, buffers),) = sent
    view = decode_view(content, buffers)
    assert exp.full_calls == 0
    assert (content["n_rows"], content["n_cols"], content["exact"]) == (100, 100, False)
    p = exp.exact(1, 2)
    assert view.arg_query is not None and view.arg_key is not None
    for r, c in [(99, 1), (50, 20), (99, 99), (0, 0)]:
        re, ce = view.row_edges, view.col_edges
        block = p[re[r] : re[r + 1], ce[c] : ce[c + 1]]
        assert view.values[0, r, c] == block.max()
        if block.max() > 0:
            assert p[view.arg_query[0, r, c], view.arg_key[0, r, c]] == block.max()
    # the planted peak: query 599 reads key 9 with weight ~1, in block (99, 1)
    assert (view.arg_query[0, 99, 1], view.arg_key[0, 99, 1]) == (599, 9)
    assert view.values[0, 99, 1] > 0.99
    # masked blocks (above the diagonal) are empty: weight 0 and no argmax
    assert view.values[0, 0, 99] == 0 and view.arg_query[0, 0, 99] == -1
    assert content["arg_dtype"] == "uint8"


def test_zoomed_to_single_cells_the_view_is_exact_and_carries_no_argmax(sent: list[Any]) -> None:
    exp = LongExplanation(600)
    w = AttentionWidget(exp)
    ask(w, rows=[590, 600], cols=[0, 12], shape=[360, 360])
    ((content, buffers),) = sent
    view = decode_view(content, buffers)
    assert content["exact"] and len(buffers) == 3 and view.arg_query is None
    np.testing.assert_array_equal(view.values[0], exp.exact(1, 2)[590:600, 0:12])


def test_mean_over_heads_and_side_by_side(sent: list[Any]) -> None:
    exp = LongExplanation(600)
    w = AttentionWidget(exp)
    ask(w, heads=[0, 1, 2], combine="mean", rows=[550, 560], cols=[0, 10], shape=[10, 10])
    ask(w, heads=[0, 2], combine="each", rows=[0, 600], cols=[0, 600], shape=[30, 30])
    mean = decode_view(*sent[0])
    each = decode_view(*sent[1])
    expected = np.mean([exp.exact(1, h)[550:560, 0:10] for h in range(3)], axis=0)
    np.testing.assert_allclose(mean.values[0], expected, rtol=1e-6)
    assert each.values.shape == (2, 30, 30)
    assert each.arg_key is not None and each.arg_key[1, 29, 0] == 9  # head 2's planted key


def message_bytes(content: dict[str, Any], buffers: list[bytes]) -> int:
    return len(json.dumps(content).encode()) + sum(len(b) for b in buffers)


def test_a_view_of_a_few_hundred_kilobytes_at_the_canvas_resolution(sent: list[Any]) -> None:
    exp = LongExplanation(600)
    w = AttentionWidget(exp)
    ask(w, rows=[0, 600], cols=[0, 600], shape=[250, 250])
    ask(w, rows=[0, 600], cols=[0, 600], shape=[512, 512])  # more than fits: pooled coarser
    (small, small_buffers), (capped, capped_buffers) = sent
    assert small["n_rows"] == 250  # fits (~6 B a block): as asked
    assert message_bytes(small, small_buffers) <= VIEW_BYTES
    assert capped["n_rows"] < 512 and message_bytes(capped, capped_buffers) <= VIEW_BYTES


def test_views_at_32k_planted_stay_within_512_kb_and_keep_exact_values() -> None:
    """At T = 32768 (planted peak 20k back) every kind of view the browser asks for -- whole
    pattern at 512 x 512, a zoom, single cells at the canvas size, one strip row -- is at most
    512 kB on the wire, raw (incompressible values) as well as deflated, and holds the
    pooled_attention values of the shape it was capped to."""
    n_tokens, query, key = 32768, 32668, 12668
    exp = planted_explanation(n_tokens, 1, 1, planted=[(0, 0, query, key)])
    requests = [
        ((0, n_tokens), (0, n_tokens), (512, 512)),
        ((28672, 32768), (10620, 14716), (512, 512)),
        ((query - 178, query + 99), (key - 178, key + 179), (357, 357)),
        ((query, query + 1), (0, n_tokens), (1, n_tokens)),
    ]
    views = []
    for request_id, (rows, cols, shape) in enumerate(requests):
        request = ViewRequest(
            request_id=request_id, layer=0, heads=(0,), rows=rows, cols=cols, shape=shape
        )
        content, buffers = view_message(exp, request)
        raw = [zlib.decompress(b) if e == "deflate" else b for b, e in zip(
            buffers, content["encodings"], strict=True)]  # fmt: skip
        assert max(message_bytes(content, buffers), message_bytes(content, raw)) <= VIEW_BYTES
        view = decode_view(content, buffers)
        views.append(view)
        sent_shape = (content["n_rows"], content["n_cols"])
        expected = exp.pooled_attention(0, 0, rows=rows, cols=cols, shape=sent_shape)
        np.testing.assert_array_equal(view.values[0], expected.values)
        np.testing.assert_array_equal(view.row_edges, expected.row_edges)
        if view.arg_query is not None:
            np.testing.assert_array_equal(view.arg_query[0], expected.argmax_query)
    # the whole view was capped below 512 x 512 and still shows the planted cell's block
    first = views[0]
    assert first.values.shape[1] < 512
    assert first.arg_query is not None and first.arg_key is not None
    r = int(np.searchsorted(first.row_edges, query, side="right")) - 1
    c = int(np.searchsorted(first.col_edges, key, side="right")) - 1
    assert (first.arg_query[0, r, c], first.arg_key[0, r, c]) == (query, key)
    # the strip row is exact: the planted key holds almost all of the row's weight
    assert views[3].values[0, 0, key] > 0.99


def test_a_whole_layer_side_by_side_stays_within_4_mb(sent: list[Any]) -> None:
    exp = LongExplanation(600, n_heads=32)
    w = AttentionWidget(exp)
    ask(w, heads=list(range(32)), combine="each", rows=[0, 600], cols=[0, 600], shape=[200, 200])
    ((content, buffers),) = sent
    assert content["n_panels"] == 32 and content["n_rows"] < 200
    assert message_bytes(content, buffers) <= PANELS_BYTES == 4_000_000


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ({"rows": [0, 601], "cols": [0, 10], "shape": [4, 4]}, "rows=[0, 601]"),
        ({"rows": [0, 10], "cols": [5, 5], "shape": [4, 4]}, "cols=[5, 5]"),
        ({"rows": [0, 10], "cols": [0, 10], "shape": [0, 4]}, "shape=[0, 4]"),
        ({"rows": [0, 10], "cols": [0, 10], "shape": [4, 4], "reduce": "mean"}, "reduce='mean'"),
        ({"rows": [0, 10], "cols": [0, 10], "shape": [4, 4], "heads": [9]}, "head 9"),
    ],
)
def test_bad_view_requests_are_logged_and_ignored(
    sent: list[Any], caplog: pytest.LogCaptureFixture, request_: dict[str, Any], message: str
) -> None:
    w = AttentionWidget(LongExplanation(600))
    ask(w, **request_)
    assert sent == []
    assert message in caplog.text


def test_selected_cell_is_validated() -> None:
    w = AttentionWidget(LongExplanation(600))
    w.selected_cell = [599, 9]
    assert w.selected_cell == [599, 9]
    with pytest.raises(ValueError, match=r"selected_cell=\[600, 0\]"):
        w.selected_cell = [600, 0]


def test_first_render_at_32k_tokens_is_under_1_mb_with_every_token_readable() -> None:
    """The widget state at (32 layers, 32 heads, T = 32768) as ipywidgets sends it (bundle
    aside) stays under 1 MB: display strings equal to the raw tokens travel as [] and the
    token kinds as "index:kind" entries of the few that are not text; the Python traits keep
    every value."""
    from ipywidgets.widgets.widget import _remove_buffers

    exp = planted_explanation(32768, 32, 32, share_layers=True)
    w = AttentionWidget(exp)
    state, _, buffers = _remove_buffers(w.get_state())
    for name in ("_esm", "_css"):
        state.pop(name)
    data = len(json.dumps(state).encode()) + sum(len(memoryview(b).cast("B")) for b in buffers)
    assert data < 1_000_000
    assert state["display_tokens"] == [] and state["token_kinds"] == []
    assert w.display_tokens == list(exp.tokens) and w.token_kinds == ["text"] * 32768


def test_compact_token_traits_keep_what_differs() -> None:
    from llmasos_widgets.widgets.attention import _elided_display, _sparse_kinds

    assert _elided_display(["<s>", " a"], ["<s>", "▁a"]) == ["<s>", " a"]
    assert _elided_display(["a", "b"], ["a", "b"]) == []
    assert _sparse_kinds(["special", "text", "text", "bytes", "text"]) == ["0:special", "3:bytes"]
    assert _sparse_kinds(["special", "continuation", "text"]) == ["special", "continuation", "text"]


class CountingExplanation(LongExplanation):
    def __init__(self, n_tokens: int) -> None:
        super().__init__(n_tokens)
        self.pooled_calls = 0

    def pooled_attention(self, layer: int, head: int, **kwargs: Any):  # type: ignore[no-untyped-def]
        self.pooled_calls += 1
        return super().pooled_attention(layer, head, **kwargs)


def test_views_asked_again_come_from_the_widgets_cache_unchanged(sent: list[Any]) -> None:
    """Going back (zoom out, reset) re-sends the kept reply: same bytes, the new request id,
    no recomputation; the cache keeps the last 8 views and is emptied on close."""
    exp = CountingExplanation(600)
    w = AttentionWidget(exp)
    whole = {"rows": [0, 600], "cols": [0, 600], "shape": [100, 100]}
    ask(w, request_id=1, **whole)
    ask(w, request_id=2, rows=[500, 600], cols=[0, 100], shape=[100, 100])
    ask(w, request_id=3, **whole)
    assert exp.pooled_calls == 2
    (first, first_buffers), _, (again, again_buffers) = sent
    assert again == {**first, "request_id": 3} and again_buffers == first_buffers
    fresh_sent: list[Any] = []
    fresh = AttentionWidget(LongExplanation(600))
    fresh.send = lambda content, buffers=None: fresh_sent.append((content, buffers))  # type: ignore[method-assign]
    ask(fresh, request_id=3, **whole)
    assert fresh_sent[0][0] == again and fresh_sent[0][1] == again_buffers
    for i in range(8):  # eight other views push the whole one out
        ask(w, request_id=10 + i, rows=[i, 600], cols=[0, 600], shape=[10, 10])
    ask(w, request_id=20, **whole)
    assert exp.pooled_calls == 2 + 8 + 1 and len(w._views) == 8
    w.close()
    assert len(w._views) == 0


def test_the_view_cache_answers_threads_with_the_single_threaded_reply() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from llmasos_widgets.widgets._pattern_views import ViewCache

    exp = LongExplanation(300)
    cache = ViewCache(size=4)
    requests = [
        ViewRequest(request_id=i, layer=1, heads=(i % 3,), rows=(0, 300), cols=(0, 300),
                    shape=(20, 20))
        for i in range(24)
    ]  # fmt: skip
    with ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(lambda r: cache.reply(exp, r), requests))
    for request, (content, buffers) in zip(requests, replies, strict=True):
        expected, expected_buffers = view_message(exp, request)
        assert content == expected and buffers == expected_buffers
    assert len(cache) == 3 and cache.hits >= 24 - 3 * 4  # each head computed at most 4 times
