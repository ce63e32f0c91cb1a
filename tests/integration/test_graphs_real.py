"""Attribution graphs on the real checkpoint (SmolLM2-135M-Instruct: 30 layers, 9 query heads
on 3 kv heads, RoPE): with random transcoders, every feature and logit row still adds up to
its node's input, since the error nodes hold whatever the transcoders miss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llmasos_widgets.features import Transcoder, TranscoderConfig
from llmasos_widgets.graphs import attribution_graph

pytestmark = [pytest.mark.real_model, pytest.mark.slow]


def test_smollm2_graph_is_complete(real_model) -> None:
    hidden, layers = real_model.config.hidden_size, real_model.config.num_hidden_layers
    torch.manual_seed(0)
    transcoders = []
    for layer in range(layers):
        config = TranscoderConfig(d_in=hidden, d_transcoder=64, d_out=hidden, layer=layer,
                                  activation="topk", k=3)  # fmt: skip
        transcoder = Transcoder(config)
        with torch.no_grad():
            transcoder.b_dec.normal_(0, 0.1)
        transcoders.append(transcoder)
    graph = attribution_graph(real_model, transcoders, "The capital of France is", batch_size=128)
    assert graph.metadata["active_features"] == layers * len(graph.tokens) * 3
    targets = np.flatnonzero(np.isin(graph.node_kind, [0, 3]))
    rows = graph.adjacency[targets].astype(np.float64)
    total = rows.sum(1) + graph.node_constant[targets]
    scale = np.abs(rows).sum(1) + np.abs(graph.node_input[targets]) + 1
    assert np.all(np.abs(total - graph.node_input[targets]) <= 1e-5 * scale)
    logit = graph.node_index[graph.nodes_of("logit")[0]]
    assert real_model.tokenizer.decode([int(logit)]) == " Paris"
    node_mask, edge_mask = graph.reprune(graph.node_threshold, graph.edge_threshold)
    assert np.array_equal(node_mask, graph.node_mask) and np.array_equal(edge_mask, graph.edge_mask)
