"""``to_neuronpedia_json`` writes what Neuronpedia's graph viewer reads: valid against its
published schema (vendored in tests/data/neuronpedia/, draft-07, with ``jsonschema``), with
the graph's kept nodes and edges under circuit-tracer's ids and numbers."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from llmasos_widgets.graphs import cumulative_influence, to_neuronpedia_json
from llmasos_widgets.widgets import GraphWidget
from tests._hand_graph import hand_graph

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[1] / "data" / "neuronpedia" / "graph-schema.json").read_text()
)


def test_the_json_validates_against_neuronpedias_schema(tmp_path: Path) -> None:
    path = tmp_path / "graph.json"
    data = to_neuronpedia_json(hand_graph(0.95), slug="hand", scan="tiny", path=path)
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    jsonschema.Draft7Validator(SCHEMA).validate(data)
    assert json.loads(path.read_text(encoding="utf-8")) == data
    # the validator does reject what the viewer cannot read
    broken = {**data, "nodes": [{k: v for k, v in data["nodes"][0].items() if k != "jsNodeId"}]}
    with pytest.raises(jsonschema.ValidationError, match="jsNodeId"):
        jsonschema.Draft7Validator(SCHEMA).validate(broken)


def test_nodes_and_links_are_the_kept_graph_under_circuit_tracers_ids() -> None:
    graph = hand_graph(0.95)
    data = to_neuronpedia_json(graph, logit_tokens=[" are", "\nis"])
    by_id = {node["node_id"]: node for node in data["nodes"]}
    assert sorted(by_id) == sorted(
        ["0_5_1", "1_2_2", "0_7_2", "E_3_0", "E_4_1", "E_5_2", "3_40_2", "3_41_2"]
    )  # features 0, 1, 2; the three tokens; the two logits (error nodes were pruned)
    links = {(link["source"], link["target"]): link["weight"] for link in data["links"]}
    assert links == {
        ("E_4_1", "0_5_1"): 2.0,
        ("0_5_1", "1_2_2"): 1.5,
        ("0_7_2", "1_2_2"): pytest.approx(0.1),
        ("E_5_2", "0_7_2"): pytest.approx(0.3),
        ("1_2_2", "3_40_2"): 3.0,
        ("E_5_2", "3_40_2"): 0.5,
        ("1_2_2", "3_41_2"): -1.0,
    }
    scores = cumulative_influence(graph.node_influence)
    feature = by_id["1_2_2"]
    assert feature["influence"] == pytest.approx(scores[1])
    assert feature["activation"] == pytest.approx(float(graph.node_value[1]))
    assert (feature["feature_type"], feature["layer"], feature["ctx_idx"]) == (
        "cross layer transcoder", "1", 2,
    )  # fmt: skip
    top = by_id["3_40_2"]
    assert top["is_target_logit"] and top["token_prob"] == pytest.approx(0.7)
    assert top["clerp"] == 'Output " are" (p=0.700)'
    assert by_id["3_41_2"]["clerp"] == 'Output "⏎is" (p=0.300)'  # circuit-tracer's process_token
    assert data["metadata"]["prompt_tokens"] == ["a", "<b>b</b>", "c"]
    assert data["metadata"]["node_threshold"] == 0.95


def test_cumulative_influence_is_circuit_tracers_score_but_zero_without_influence() -> None:
    scores = cumulative_influence(np.array([0.1, 0.6, 0.0, 0.3]))
    np.testing.assert_allclose(scores, [1.0, 0.6, 0.0, 0.9])


def test_error_nodes_get_ids_no_feature_can_have_and_global_feature_numbers() -> None:
    graph = hand_graph(1.0)  # keeps error L1 @2
    data = to_neuronpedia_json(graph, d_transcoder=16)
    by_id = {node["node_id"]: node for node in data["nodes"]}
    assert by_id["1_error_2"]["feature_type"] == "mlp reconstruction error"
    assert by_id["1_2_2"]["feature"] == 2 + 100 * 1  # 10**ceil(log10(16)) per layer
    assert len(by_id) == len(data["nodes"])


def test_the_widget_exports_with_its_labels_and_bad_input_is_named(tmp_path: Path) -> None:
    widget = GraphWidget(hand_graph(0.95))
    data = widget.to_neuronpedia(tmp_path / "g.json", slug="x")
    assert data["metadata"]["scan"] == "hand-built" and (tmp_path / "g.json").exists()
    with pytest.raises(ValueError, match="logit_tokens has 1"):
        to_neuronpedia_json(hand_graph(), logit_tokens=["a"])
    with pytest.raises(TypeError, match="AttributionGraph"):
        to_neuronpedia_json({"nodes": []})  # type: ignore[arg-type]
