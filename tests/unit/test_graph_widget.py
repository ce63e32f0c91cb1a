"""GraphWidget without a model: what the browser gets equals the graph's numbers, the slider's
re-pruning gives circuit-tracer's masks back, and clicks select what they should.

The graph is tests/_hand_graph.py's, pruned by a transcription of circuit-tracer's
``prune_graph``; ``edge_heads`` is replaced by a hand-written answer where a test needs one.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import traitlets

from llmasos_widgets import graphs
from llmasos_widgets.widgets import GraphWidget, link_selection
from llmasos_widgets.widgets._base import SelectionWidget
from llmasos_widgets.widgets._graph_view import edge_table, node_table, visible_at
from tests._hand_graph import circuit_tracer_prune, hand_adjacency, hand_graph


def _decoded(payload: dict[str, Any]) -> np.ndarray:
    return np.frombuffer(payload["view"], dtype=payload["dtype"]).reshape(payload["shape"])


def test_the_payload_holds_the_kept_nodes_and_edges_with_the_graphs_numbers() -> None:
    graph = hand_graph(0.95)
    widget = GraphWidget(graph)
    nodes, edges = _decoded(widget.nodes), _decoded(widget.edges)
    kept = np.flatnonzero(graph.node_mask)
    assert nodes[:, 0].astype(int).tolist() == kept.tolist() == [0, 1, 2, 10, 11, 12, 13, 14]
    for column, values in enumerate(
        (graph.node_kind, graph.node_layer, graph.node_position, graph.node_index,
         graph.node_value, graph.node_influence), start=1,
    ):  # fmt: skip
        np.testing.assert_array_equal(nodes[:, column], values[kept].astype(np.float32))
    # every kept edge once, with its adjacency weight, weakest first
    pairs = {(int(kept[int(s)]), int(kept[int(t)])): w for s, t, w in edges}
    targets, sources = np.nonzero(graph.edge_mask)
    assert set(pairs) == set(zip(sources.tolist(), targets.tolist(), strict=True))
    assert all(pairs[s, t] == graph.adjacency[t, s] for s, t in pairs)
    assert pairs[(0, 1)] == 1.5 and pairs[(12, 13)] == 0.5
    assert np.all(np.diff(np.abs(edges[:, 2])) >= 0)
    assert widget.max_node_threshold == widget.node_threshold == 0.95
    assert widget.tokens == ["a", "<b>b</b>", "c"]  # raw strings: the browser sets them as text
    assert widget.logit_labels == ["#40", "#41"]


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.8, 0.95, 1.0])
def test_the_slider_gives_circuit_tracers_masks_at_each_threshold(threshold: float) -> None:
    """The view of the graph pruned at 1.0, slid to ``threshold``, shows what circuit-tracer's
    ``prune_graph`` keeps at ``threshold`` (on this graph the edge scores it recomputes keep
    the same edges, so the two agree at every threshold)."""
    widget = GraphWidget(hand_graph(1.0), node_threshold=threshold)
    _, node_mask, edge_mask = circuit_tracer_prune(
        hand_adjacency(), np.array([0.7, 0.3]), 4, 3, threshold, 0.98
    )
    shown_nodes, shown_edges = widget.shown()
    assert shown_nodes.tolist() == np.flatnonzero(node_mask).tolist()
    targets, sources = np.nonzero(edge_mask)
    expected = sorted(zip(sources.tolist(), targets.tolist(), strict=True))
    assert sorted(map(tuple, shown_edges.tolist())) == expected


def test_at_the_graphs_own_threshold_the_view_is_the_kernels_masks() -> None:
    for threshold in (0.3, 0.5, 0.8, 0.95):
        graph = hand_graph(threshold)
        nodes, edges = node_table(graph), edge_table(graph)
        node_shown, edge_shown = visible_at(nodes, edges, threshold)
        assert nodes[node_shown, 0].astype(int).tolist() == np.flatnonzero(graph.node_mask).tolist()
        assert edge_shown.sum() == graph.edge_mask.sum()


def test_a_tighter_slider_hides_the_features_ranked_past_it_and_their_orphans() -> None:
    """Hand-worked: at 0.6 the share ranked above node 0 (0.315) and node 1 (0) is below, node 2
    (0.945) is hidden; at 0.31 node 0 (0.315) goes and node 1 loses its only incoming edge."""
    widget = GraphWidget(hand_graph(1.0), node_threshold=0.6)
    assert widget.shown()[0].tolist() == [0, 1, 10, 11, 12, 13, 14]
    widget.node_threshold = 0.31
    nodes, edges = widget.shown()
    assert nodes.tolist() == [10, 11, 12, 13, 14]
    assert edges.tolist() == [[12, 13]]


def test_a_clicked_node_selects_its_token_and_layer_and_shows_its_card() -> None:
    widget = GraphWidget(hand_graph(0.95))
    widget.selected_node = 1  # L1 #2 @2
    assert (widget.selected_tokens, widget.selected_layer, widget.focused_node) == ([2], 1, 1)
    assert widget.card["name"] == "L1 #2 @2" and widget.card["value"] == pytest.approx(0.6071, 1e-3)
    assert "model and transcoders" in widget.card["note"]
    widget.selected_node = 11  # token @1: its token, the layer left as it was
    assert (widget.selected_tokens, widget.selected_layer) == ([1], 1)
    widget.focused_node = 13
    assert widget.card["kind"] == "logit" and widget.card["probability"] == pytest.approx(0.7)
    widget.focused_node = -1
    assert widget.card == {}


class _FakeModel:
    """What the widget reads of a model without cards: heads, a tokenizer, a name."""

    config = SimpleNamespace(num_attention_heads=4)
    tokenizer = SimpleNamespace(decode=lambda ids: f"tok{ids[0]}")
    name = "fake"


def _fake_model() -> Any:
    return _FakeModel()


def test_an_attention_edge_selects_the_top_heads_and_the_query_key_cell(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = []

    def edge_heads(model: Any, transcoders: Any, graph: Any, source: int, target: int) -> Any:
        calls.append((source, target))
        return SimpleNamespace(
            layers=np.array([1, 1, 0, 1]),
            heads=np.array([2, 0, 3, 1]),
            values=np.array([0.9, -0.5, 0.4, 0.3]),
            across_positions=np.array([0.2, -0.5, 0.4, 0.3]),  # moved between positions
            total=1.5,
            query_position=2,
            key_position=1,
        )

    monkeypatch.setattr(graphs, "edge_heads", edge_heads, raising=False)
    widget = GraphWidget(hand_graph(0.95), _fake_model(), transcoders=[])
    other = GraphWidget(hand_graph(0.95), _fake_model(), transcoders=[])
    link_selection(widget, other)
    assert widget.logit_labels == ["tok40", "tok41"]
    widget.selected_edge = [0, 1]  # L0 #5 @1 -> L1 #2 @2: attention moved it
    assert calls == [(0, 1)]
    # the layer of the head moving most across positions (L1H0: 0.5), and its heads moving at
    # least half as much (L1H1: 0.3; not L1H2: 0.2; L0H3 is another layer)
    assert (widget.selected_layer, widget.selected_heads) == (1, [0, 1])
    assert widget.selected_cell == [2, 1] and widget.selected_tokens == [2]
    assert (other.selected_layer, other.selected_heads, other.selected_cell) == (1, [0, 1], [2, 1])
    assert widget.edge_heads["selected"] == [[1, 0], [1, 1]]
    assert widget.edge_heads["heads"] == [0, 3, 1, 2]  # most moved first
    widget.selected_edge = [2, 1]  # both at position 2: no head to find
    assert calls == [(0, 1)] and "share a position" in widget.edge_heads["note"]


def test_without_the_model_an_edge_says_what_is_missing() -> None:
    widget = GraphWidget(hand_graph(0.95))
    widget.selected_edge = [0, 1]
    assert "pass the model" in widget.edge_heads["note"] and widget.selected_cell == []


def test_bad_input_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="AttributionGraph"):
        GraphWidget({"nodes": []})
    with pytest.raises(TypeError, match="needs the model"):
        GraphWidget(hand_graph(), transcoders=[])
    widget = GraphWidget(hand_graph())
    with pytest.raises(ValueError, match="within 0..1"):
        widget.node_threshold = 1.5
    with pytest.raises(ValueError, match="out of range"):
        widget.selected_node = 15
    with pytest.raises(ValueError, match=r"\[source, target\]"):
        widget.selected_edge = [0]
    assert widget.node_threshold == 0.8 and widget.selected_node == -1


def test_the_attention_cell_links_only_over_shared_tokens() -> None:
    class Cells(SelectionWidget):
        tokens = traitlets.List()
        selected_cell = traitlets.List(traitlets.Int(), default_value=[])

    widget = GraphWidget(hand_graph(0.95))
    same, shorter = Cells(tokens=["a", "<b>b</b>", "c", "d"]), Cells(tokens=["a", "x"])
    link_selection(widget, same, shorter)
    widget.selected_cell = [2, 1]
    assert same.selected_cell == [2, 1] and shorter.selected_cell == []


def test_a_closed_widget_lets_go_of_the_graph_and_model() -> None:
    import gc
    import weakref

    model = _fake_model()
    widget = GraphWidget(hand_graph(), model, transcoders=[])
    held = weakref.ref(model)
    widget.close()
    del model
    gc.collect()
    assert widget.graph is None and held() is None
