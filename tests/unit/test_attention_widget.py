"""AttentionWidget without a model: trait sync, binary pattern messages, linking, safety."""

from __future__ import annotations

import gc
import json
import weakref
from typing import Any

import numpy as np
import pytest
import traitlets
from ipywidgets.widgets.widget import _remove_buffers

from llmasos_widgets.widgets import AttentionWidget, Selection, link_selection
from llmasos_widgets.widgets._base import (
    STATIC_DIR,
    quantize_rows,
    tensor_payload,
)
from tests._attention_flow import attention_flow
from tests._wire import decode_pattern, dequantize

HOSTILE = "<img src=x onerror=alert(1)>"


class FakeExplanation:
    """Explanation-shaped test double: seeded causal softmax patterns, float32 summaries."""

    def __init__(self, n_layers: int = 3, n_heads: int = 4, tokens: list[str] | None = None):
        self.tokens = tokens or ["<bos>", "▁The", "▁keys", HOSTILE, "▁are", "\n", "▁on"]
        self.token_ids = np.arange(len(self.tokens), dtype=np.int64)
        self.n_layers = n_layers
        self.n_heads = n_heads
        rng = np.random.default_rng(0)
        self.head_summaries = {
            name: rng.random((n_layers, n_heads), dtype=np.float32)
            for name in ("entropy", "previous_token", "first_token", "induction")
        }
        self.calls: list[tuple[int, int]] = []

    def attention(self, layer: int, head: int) -> np.ndarray:
        if not (0 <= layer < self.n_layers and 0 <= head < self.n_heads):
            raise ValueError("out of range")
        self.calls.append((layer, head))
        n = len(self.tokens)
        rng = np.random.default_rng(1000 * layer + head)
        scores = rng.normal(scale=3.0, size=(n, n))
        scores[np.triu_indices(n, k=1)] = -np.inf
        weights = np.exp(scores - scores.max(axis=1, keepdims=True))
        return (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[dict[str, Any], list[bytes]]]:
    """Every custom message the widgets send to the browser."""
    messages: list[tuple[dict[str, Any], list[bytes]]] = []

    def record(self: Any, content: dict[str, Any], buffers: list[bytes] | None = None) -> None:
        messages.append((content, list(buffers or [])))

    monkeypatch.setattr(AttentionWidget, "send", record)
    return messages


def browser_says(widget: AttentionWidget, content: dict[str, Any]) -> None:
    """Deliver a custom message as if it came from the front end."""
    widget._handle_custom_msg(content, [])


def test_first_render_state_is_binary_and_small() -> None:
    exp = FakeExplanation()
    w = AttentionWidget(exp)
    state, buffer_paths, buffers = _remove_buffers(w.get_state())
    assert sorted(p[-1] for p in buffer_paths) == ["view"] * 4
    assert len(buffers) == 4
    for name in exp.head_summaries:  # the tensor went to a buffer, only metadata is JSON
        assert state["head_summaries"][name] == {"dtype": "float32", "shape": [3, 4]}
    data = {k: v for k, v in state.items() if k not in ("_esm", "_css")}
    assert len(json.dumps(data)) < 2000
    payload = w.head_summaries["induction"]
    decoded = np.frombuffer(payload["view"], dtype="<f4").reshape(payload["shape"])
    np.testing.assert_array_equal(decoded, exp.head_summaries["induction"])
    assert (w.n_layers, w.n_heads, w.tokens) == (3, 4, exp.tokens)


def test_selecting_heads_sends_exact_quantized_patterns(sent: list[Any]) -> None:
    exp = FakeExplanation()
    w = AttentionWidget(exp)
    assert sent == []
    w.selected_layer = 2
    w.selected_heads = [3, 1]
    assert w.selected_heads == [1, 3]  # normalized: sorted, unique
    assert [(m["layer"], m["head"]) for m, _ in sent] == [(2, 1), (2, 3)]
    for content, buffers in sent:
        assert content["type"] == "pattern"
        assert content["layout"] == "lower"  # causal: upper triangle not sent
        assert all(isinstance(b, bytes) for b in buffers)
        row_scale, levels = decode_pattern(content, buffers)
        exact = exp.attention(2, content["head"])
        want_scale, want_levels = quantize_rows(exact)
        np.testing.assert_array_equal(levels, want_levels)
        np.testing.assert_array_equal(row_scale, want_scale)
        error = np.abs(dequantize(row_scale, levels) - exact)
        assert (error <= row_scale[:, None] / 510 + 1e-7).all()
        assert levels.max(axis=1).tolist() == [255] * len(exp.tokens)  # every row keeps 256 levels


def test_patterns_are_sent_once_until_the_browser_asks_or_evicts(sent: list[Any]) -> None:
    w = AttentionWidget(FakeExplanation(), selected_layer=0, selected_heads=[0])
    assert len(sent) == 1  # selection given at construction is pushed too
    w.selected_heads = [0, 2]
    w.selected_heads = [0]
    w.selected_heads = [0, 2]
    assert [(m["layer"], m["head"]) for m, _ in sent] == [(0, 0), (0, 2)]
    browser_says(w, {"type": "request_patterns", "layer": 0, "heads": [2]})  # a new view
    browser_says(w, {"type": "evicted", "heads": [[0, 0]]})
    w.selected_heads = [2]
    w.selected_heads = [0]
    assert [(m["layer"], m["head"]) for m, _ in sent] == [(0, 0), (0, 2), (0, 2), (0, 0)]


def test_full_layout_for_non_causal_patterns() -> None:
    rng = np.random.default_rng(3)
    pattern = rng.random((5, 5)).astype(np.float32)
    exp = FakeExplanation()
    exp.attention = lambda layer, head: pattern  # type: ignore[method-assign]
    exp.tokens = exp.tokens[:5]
    content, buffers = AttentionWidget(exp).pattern_message(0, 0)
    assert content["layout"] == "full"
    _, levels = decode_pattern(content, buffers)
    np.testing.assert_array_equal(levels, quantize_rows(pattern)[1])


@pytest.mark.parametrize(
    ("trait", "value", "message"),
    [
        ("selected_layer", 3, "selected_layer=3 is out of range: use 0..2"),
        ("selected_layer", -2, "out of range"),
        ("selected_heads", [1, 4], "head index 4 is out of range (valid: 0..3)"),
        ("selected_tokens", [-1], "token index -1 is out of range"),
        ("hovered_token", 7, "hovered_token=7 is out of range"),
        ("metric", "entropi", "unknown metric 'entropi'; valid metrics: entropy"),
    ],
)
def test_invalid_selection_raises_clear_value_error(trait: str, value: Any, message: str) -> None:
    w = AttentionWidget(FakeExplanation())
    before = getattr(w, trait)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        setattr(w, trait, value)
    assert getattr(w, trait) == before


def test_invalid_pattern_request_is_value_error_and_ignored_from_browser(sent: list[Any]) -> None:
    w = AttentionWidget(FakeExplanation())
    with pytest.raises(ValueError, match="head 9 is out of range"):
        w.pattern_message(0, 9)
    browser_says(w, {"type": "request_patterns", "layer": 5, "heads": [0]})
    browser_says(w, {"type": "no-such-message"})
    assert sent == []


def test_constructor_rejects_ambiguous_sources() -> None:
    with pytest.raises(TypeError, match="Explanation plus text"):
        AttentionWidget(FakeExplanation(), "some text")
    with pytest.raises(TypeError, match="text is required"):
        AttentionWidget(object())
    with pytest.raises(TypeError, match="without tokenizer="):
        AttentionWidget(object(), "text")


def test_explainable_model_is_explained_without_saliency() -> None:
    class Model:
        def __init__(self) -> None:
            self.kwargs: dict[str, Any] = {}

        def explain(self, text: str, **kwargs: Any) -> FakeExplanation:
            self.kwargs = {"text": text, **kwargs}
            return FakeExplanation()

    model = Model()
    w = AttentionWidget(model, "The keys")
    assert model.kwargs == {"text": "The keys", "saliency": False}
    assert w.n_heads == 4


def test_link_selection_propagates_both_ways() -> None:
    a = AttentionWidget(FakeExplanation())
    b = AttentionWidget(FakeExplanation())
    a.selected_layer = 1
    selection = link_selection(a, b)
    assert b.selected_layer == 1  # the first widget's state wins
    a.selected_heads = [2, 0]
    assert b.selected_heads == [0, 2]
    b.hovered_token = 4
    b.selected_tokens = [5, 3]
    assert (a.hovered_token, a.selected_tokens) == (4, [3, 5])
    assert selection.selected_tokens == [3, 5]
    b.metric = "induction"  # metric is widget specific: not linked by default
    assert a.metric == "entropy"
    selection.unlink()
    a.selected_layer = 2
    assert b.selected_layer == 1


def test_selection_links_only_traits_a_widget_has() -> None:
    class TokensOnly(traitlets.HasTraits):
        selected_tokens = traitlets.List(traitlets.Int())

    a = AttentionWidget(FakeExplanation())
    other = TokensOnly()
    selection = Selection(a, other, traits=("selected_tokens", "selected_layer", "metric"))
    other.selected_tokens = [1]
    assert a.selected_tokens == [1]
    a.metric = "induction"
    assert selection.metric == "induction"
    with pytest.raises(ValueError, match="cannot link trait 'tokens'"):
        Selection(traits=("tokens",))
    with pytest.raises(TypeError, match="at least two widgets"):
        link_selection(a)


def test_hostile_token_strings_are_data_not_markup() -> None:
    w = AttentionWidget(FakeExplanation())
    state, _, _ = _remove_buffers(w.get_state())
    assert HOSTILE in state["tokens"]  # sent verbatim, no escaping games in Python
    bundle = (STATIC_DIR / "attention.js").read_text()
    # the front end writes token strings with textContent only
    assert "innerHTML" not in bundle and "insertAdjacentHTML" not in bundle
    assert "textContent" in bundle


def test_flow_request_matches_python_attention_flow(sent: list[Any], bundled: Any) -> None:
    exp = bundled.explain("the cat sat on the mat", saliency=False)
    w = AttentionWidget(exp)
    request = {
        "type": "request_flow",
        "request_id": 7,
        "focus": [4],
        "others": [2],
        "direction": "from",
    }
    browser_says(w, request)
    ((content, buffers),) = sent
    n_layers, n_heads = exp.n_layers, exp.n_heads
    assert content == {"type": "flow", "request_id": 7, "n_layers": n_layers, "n_heads": n_heads}
    values = np.frombuffer(buffers[0], dtype="<f4").reshape(n_layers, n_heads)
    assert values[1, 0] == pytest.approx(exp.attention(1, 0)[4, 2])


def test_attention_flow_definitions() -> None:
    p = np.array([[1.0, 0, 0], [0.5, 0.5, 0], [0.2, 0.3, 0.5]])
    assert attention_flow(p, [2], [1], "from") == pytest.approx(0.3)
    assert attention_flow(p, [2], [], "from") == pytest.approx(0.3)  # not the sink, not itself
    assert attention_flow(p, [1], [], "to") == pytest.approx(0.3)  # query 2 into key 1
    assert attention_flow(p, [0, 1], [2], "to") == pytest.approx(0.5)
    assert np.isnan(attention_flow(p, [], [], "from"))


def test_tensor_payload_refuses_silent_casts() -> None:
    with pytest.raises(TypeError, match="convert explicitly"):
        tensor_payload(np.zeros(3, dtype=np.float64))
    payload = tensor_payload(np.arange(6, dtype=np.float32).reshape(2, 3))
    assert payload["shape"] == [2, 3] and payload["view"].nbytes == 24


def test_esm_and_css_are_the_built_files() -> None:
    # anywidget turns a Path into file contents it watches (hot reload); compare the text
    assert str(AttentionWidget._esm) == (STATIC_DIR / "attention.js").read_text()
    assert str(AttentionWidget._css) == (STATIC_DIR / "attention.css").read_text()


def test_closing_releases_the_explanation() -> None:
    exp = FakeExplanation()
    w = AttentionWidget(exp)
    ref = weakref.ref(exp)
    del exp
    w.close()
    gc.collect()
    assert ref() is None
    with pytest.raises(RuntimeError, match="closed"):
        w.pattern_message(0, 0)


def test_link_selection_of_different_texts_links_tokens_over_the_shared_prefix() -> None:
    """The README's case: a long widget linked with a shorter one whose text differs. Hover
    and brush past the shorter text never raise; tokens link only where both show the same
    tokens; layers and heads always link."""
    words = ["<bos>", "▁the", "▁keys", "▁near", "▁the", "▁cabinet", "▁are", "▁on", "▁the"]
    long_widget = AttentionWidget(FakeExplanation(tokens=words))
    short_widget = AttentionWidget(FakeExplanation(tokens=[*words[:3], "▁to", "▁the"]))
    selection = link_selection(long_widget, short_widget)
    assert (long_widget.linked_tokens, short_widget.linked_tokens) == (3, 3)
    long_widget.hovered_token = len(words) - 1  # past the shorter text: no error, no hover
    assert short_widget.hovered_token == -1
    long_widget.hovered_token = 2  # a shared position: linked
    assert short_widget.hovered_token == 2
    long_widget.selected_tokens = [0, 2, 3, len(words) - 1]
    assert short_widget.selected_tokens == [0, 2]  # position 3 differs ("▁near" / "▁to")
    short_widget.selected_tokens = [1, 4]
    assert long_widget.selected_tokens == [1]
    long_widget.selected_layer = 2
    long_widget.selected_heads = [1, 3]
    assert (short_widget.selected_layer, short_widget.selected_heads) == (2, [1, 3])
    selection.unlink()
    assert (long_widget.linked_tokens, short_widget.linked_tokens) == (-1, -1)


def test_link_selection_translates_layers_a_widget_does_not_have() -> None:
    deep = AttentionWidget(FakeExplanation(n_layers=3, n_heads=4))
    shallow = AttentionWidget(FakeExplanation(n_layers=2, n_heads=2))
    link_selection(deep, shallow)
    deep.selected_layer = 2
    deep.selected_heads = [0, 3]
    assert (shallow.selected_layer, shallow.selected_heads) == (-1, [0])
