"""GraphWidget on a real attribution graph of the bundled model (random TopK transcoders,
seeded): the slider's re-pruning is the graph's own ``reprune`` at every threshold, an edge
between positions selects the heads ``edge_heads`` says move it and opens that query/key pair's
q·k breakdown in a linked AttentionWidget, and the Neuronpedia JSON validates and carries the
graph's cumulative scores."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
import torch

from llmasos_widgets.features import Transcoder, TranscoderConfig
from llmasos_widgets.graphs import attribution_graph, edge_heads, node_ids
from llmasos_widgets.widgets import AttentionWidget, GraphWidget, link_selection

TEXT = "the keys to the cabinet are"
SCHEMA = Path(__file__).resolve().parents[1] / "data" / "neuronpedia" / "graph-schema.json"


@pytest.fixture(scope="module")
def setup(bundled: Any) -> tuple[Any, list[Transcoder], Any]:
    hidden = bundled.config.hidden_size
    torch.manual_seed(0)
    transcoders = [
        Transcoder(TranscoderConfig(d_in=hidden, d_transcoder=64, d_out=hidden, layer=layer,
                                    activation="topk", k=4))
        for layer in range(bundled.config.num_hidden_layers)
    ]  # fmt: skip
    return bundled, transcoders, attribution_graph(bundled, transcoders, TEXT)


def test_the_slider_is_the_graphs_reprune_at_every_threshold(setup: Any) -> None:
    _, _, graph = setup
    widget = GraphWidget(graph)
    counts = []
    for threshold in (0.05, 0.3, 0.5, 0.7, graph.node_threshold):
        widget.node_threshold = threshold
        node_mask, edge_mask = graph.reprune(threshold, graph.edge_threshold)
        nodes, edges = widget.shown()
        assert nodes.tolist() == np.flatnonzero(node_mask).tolist(), threshold
        targets, sources = np.nonzero(edge_mask)
        expected = sorted(zip(sources.tolist(), targets.tolist(), strict=True))
        assert sorted(map(tuple, edges.tolist())) == expected, threshold
        counts.append(len(edges))
    assert counts[0] < counts[-1]  # the thresholds do prune differently
    assert np.array_equal(node_mask, graph.node_mask) and np.array_equal(edge_mask, graph.edge_mask)


@pytest.mark.slow  # 2.5-6 s on 2 loaded cores (explain + edge_heads' own forward); the fast
# tier keeps the selection rule (tests/unit/test_graph_widget.py, a hand-written EdgeHeads)
def test_an_attention_edge_selects_its_heads_and_the_qk_pair_in_the_attention_view(
    setup: Any,
) -> None:
    model, transcoders, graph = setup
    widget = GraphWidget(graph, model, transcoders)
    attention = AttentionWidget(model, TEXT)
    link_selection(widget, attention)
    _, edges = widget.shown()
    across = [(s, t) for s, t in edges.tolist() if graph.node_position[s] != graph.node_position[t]]
    source, target = max(across, key=lambda e: abs(graph.adjacency[e[1], e[0]]))
    widget.selected_edge = [source, target]

    heads = edge_heads(model, transcoders, graph, source, target)
    moved = np.abs(heads.across_positions)
    top = int(np.argmax(moved))
    layer = int(heads.layers[top])
    expected = sorted(
        int(h)
        for l_, h, m in zip(heads.layers, heads.heads, moved, strict=True)
        if l_ == layer and m >= 0.5 * moved[top]
    )
    assert moved[top] > 0 and int(heads.heads[top]) in expected
    cell = [int(graph.node_position[target]), int(graph.node_position[source])]
    assert (attention.selected_layer, attention.selected_heads) == (layer, expected)
    assert attention.selected_cell == cell and cell[0] > cell[1]
    assert (attention.qk["layer"], attention.qk["query"], attention.qk["key"]) == (layer, *cell)
    assert attention.qk["heads"] == expected


def test_the_neuronpedia_json_of_a_real_graph(setup: Any) -> None:
    model, _, graph = setup
    data = GraphWidget(graph, model).to_neuronpedia(slug="keys")
    jsonschema.Draft7Validator(json.loads(SCHEMA.read_text())).validate(data)
    index = {node_id: i for i, node_id in enumerate(node_ids(graph))}
    for node in data["nodes"]:
        if node["feature_type"] != "logit":  # the viewer prunes by circuit-tracer's score
            assert node["influence"] == pytest.approx(graph.node_cumulative[index[node["node_id"]]])
    for link in data["links"]:
        weight = graph.adjacency[index[link["target"]], index[link["source"]]]
        assert link["weight"] == pytest.approx(float(weight))
    assert len(data["links"]) == int(graph.edge_mask.sum())
    top = next(node for node in data["nodes"] if node.get("is_target_logit"))
    first = int(graph.node_index[graph.nodes_of("logit")[0]])
    assert top["feature"] == first and model.tokenizer.decode([first]) in top["clerp"]
