"""Attribution graphs on random-init and hand-built LLaMAs: completeness, causality, an edge
computed on paper, attention-mediated edges, pruning from stored scores, and the contracts
(hooks removed, train/eval flags kept, clear errors)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from llmasos_widgets._hooks import count_hooks
from llmasos_widgets.features import Transcoder, TranscoderConfig
from llmasos_widgets.graphs import attribution_graph, edge_heads
from llmasos_widgets.graphs._frozen import freeze_run
from llmasos_widgets.graphs._linear import ReplacementSystem
from llmasos_widgets.graphs._nodes import read_features
from llmasos_widgets.models import as_explainable
from llmasos_widgets.tracing import anatomy
from tests.conftest import random_llama, word_tokenizer

TEXT = "w1 w2 w3 w4 w5 w1 w2"
# (activation, k, skip connection, input site) of layer i % 3
ACTIVATIONS = [
    ("relu", None, False, "mlp_in"),
    ("topk", 6, True, "mlp_in"),
    ("jumprelu", None, True, "resid_mid"),
]


def random_transcoders(hidden: int, layers: int, *, width: int = 40, seed: int = 1):
    """One per layer, with biases (and, on some layers, a skip connection) set at random, and
    outputs the size of the random model's MLP outputs (hundredths)."""
    torch.manual_seed(seed)
    found = []
    for layer in range(layers):
        activation, k, skip, site = ACTIVATIONS[layer % len(ACTIVATIONS)]
        config = TranscoderConfig(d_in=hidden, d_transcoder=width, d_out=hidden, layer=layer,
                                  activation=activation, k=k, skip_connection=skip,
                                  input_site=site)  # fmt: skip
        transcoder = Transcoder(config)
        with torch.no_grad():
            transcoder.b_enc.normal_(0, 0.1)
            transcoder.W_dec.mul_(0.01)
            transcoder.b_dec.normal_(0, 0.01)
            transcoder.threshold.fill_(0.05)
            if transcoder.W_skip is not None:
                transcoder.W_skip.normal_(0, 0.01)
        found.append(transcoder)
    return found


@pytest.fixture(scope="module")
def setup():
    """A 3-layer GQA LLaMA with attention biases (RoPE, 4 heads on 2 kv heads), its
    transcoders and the full graph of TEXT."""
    model = as_explainable(random_llama(layers=3, attention_bias=True), word_tokenizer())
    transcoders = random_transcoders(32, 3)
    graph = attribution_graph(model, transcoders, TEXT)
    return model, transcoders, graph


def test_replacement_model_reproduces_the_real_logits(setup) -> None:
    """With error nodes, the frozen linear map run on the node values gives the real logits
    (an independent plain forward) and what each transcoder reads (the MLP input, or for
    layer 2 the residual stream before the pre-MLP norm), to float32 rounding."""
    model, transcoders, _ = setup
    parts, ids = anatomy(model.hf_model), model.encode(TEXT)
    run = freeze_run(parts, ids)
    system = ReplacementSystem(parts, run, transcoders)
    _, errors = read_features(run, transcoders)
    writes = []
    with torch.no_grad():
        for layer, transcoder in enumerate(transcoders):
            codes = transcoder.encode(run.transcoder_input(layer, layer != 2))
            writes.append(codes @ transcoder.W_dec + transcoder.b_dec + errors[layer])
        mlp_inputs, final = system.forward(run.embeddings, writes, biases=True)
        logits = final @ model.hf_model.get_output_embeddings().weight.T
        real = model.hf_model(input_ids=ids).logits[0]
    torch.testing.assert_close(logits, real, rtol=0, atol=1e-5 * float(real.abs().max()))
    for layer, ours in enumerate(mlp_inputs):
        theirs = run.transcoder_input(layer, layer != 2)
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5 * float(theirs.abs().max()))


def test_each_row_sums_to_its_nodes_input(setup) -> None:
    """Completeness: a feature's incoming edges plus its constant part (biases) give its
    pre-activation; a logit node's give its logit minus the mean logit."""
    _, _, graph = setup
    targets = np.flatnonzero(np.isin(graph.node_kind, [0, 3]))
    rows = graph.adjacency[targets].astype(np.float64)
    total = rows.sum(1) + graph.node_constant[targets]
    scale = np.abs(rows).sum(1) + np.abs(graph.node_input[targets]) + 1
    assert np.all(np.abs(total - graph.node_input[targets]) <= 2e-6 * scale)
    assert len(graph.nodes_of("logit")) >= 1 and len(graph.nodes_of("feature")) > 20
    # the constant part is not negligible here (biases everywhere): the identity tests it
    assert np.abs(graph.node_constant[targets]).max() > 0.05


def test_edges_respect_layer_and_position_order(setup) -> None:
    """A feature reads only what earlier layers wrote at its position or before: every
    other entry of its row is exactly zero, and error and token rows are empty."""
    _, _, graph = setup
    for kind_of_target in (0,):
        for target in np.flatnonzero(graph.node_kind == kind_of_target):
            layer, position = graph.node_layer[target], graph.node_position[target]
            late = graph.node_position > position
            same_or_later_layer = (graph.node_kind <= 1) & (graph.node_layer >= layer)
            assert not graph.adjacency[target, late | same_or_later_layer].any()
    assert not graph.adjacency[np.isin(graph.node_kind, [1, 2])].any()
    assert not graph.adjacency[:, graph.node_kind == 3].any()


def test_stored_scores_reprune_to_the_graphs_masks(setup) -> None:
    _, _, graph = setup
    node_mask, edge_mask = graph.reprune(graph.node_threshold, graph.edge_threshold)
    assert np.array_equal(node_mask, graph.node_mask)
    assert np.array_equal(edge_mask, graph.edge_mask)
    assert 0 < graph.node_mask.sum() < graph.n_nodes
    assert graph.edge_mask.sum() > 0
    # pruning recomputed at the same thresholds is the same; looser keeps more
    again = graph.pruned(graph.node_threshold, graph.edge_threshold)
    assert np.array_equal(again.node_mask, graph.node_mask)
    assert graph.pruned(0.99, 0.999).edge_mask.sum() > graph.edge_mask.sum()


def test_max_features_keeps_the_full_graphs_rows(setup) -> None:
    """With a feature budget, the kept features' edges are the full graph's edges."""
    model, transcoders, full = setup
    small = attribution_graph(model, transcoders, TEXT, max_features=9, batch_size=4)
    features = small.nodes_of("feature")
    assert len(features) == 9
    key = {(int(full.node_kind[i]), int(full.node_layer[i]), int(full.node_position[i]),
            int(full.node_index[i])): i for i in range(full.n_nodes)}  # fmt: skip
    mapped = np.array([key[(int(small.node_kind[i]), int(small.node_layer[i]),
                            int(small.node_position[i]), int(small.node_index[i]))]
                       for i in range(small.n_nodes)])  # fmt: skip
    np.testing.assert_allclose(
        small.adjacency, full.adjacency[np.ix_(mapped, mapped)], rtol=1e-5, atol=1e-6
    )


def test_edge_heads_of_a_cross_position_edge_sum_to_it(setup) -> None:
    """L0 feature -> L1 feature at another position: only L1's attention moves it, so the
    heads' parts add up to the edge and all of each part moves across positions."""
    model, transcoders, graph = setup
    features = graph.nodes_of("feature")
    sources = features[(graph.node_layer[features] == 0) & (graph.node_position[features] == 2)]
    targets = features[(graph.node_layer[features] == 1) & (graph.node_position[features] == 5)]
    block = np.abs(graph.adjacency[np.ix_(targets, sources)])
    t, s = np.unravel_index(np.argmax(block), block.shape)
    source, target = int(sources[s]), int(targets[t])
    assert abs(graph.adjacency[target, source]) > 1e-3
    heads = edge_heads(model, transcoders, graph, source, target)
    assert set(heads.layers.tolist()) == {1} and len(heads.heads) == 4
    assert heads.total == pytest.approx(float(graph.adjacency[target, source]), rel=1e-5)
    assert float(heads.values.sum()) == pytest.approx(heads.total, rel=1e-5)
    np.testing.assert_allclose(heads.across_positions, heads.values, rtol=1e-5, atol=1e-7)
    assert np.all(np.diff(np.abs(heads.values)) <= 0)
    assert (heads.query_position, heads.key_position) == (5, 2)


def test_edge_heads_of_a_same_position_edge_move_nothing_across(setup) -> None:
    """Token -> logit at the last position: every head carries part of it through its
    query = key cell only; the residual path carries the rest."""
    model, transcoders, graph = setup
    token = int(graph.nodes_of("token")[-1])
    logit = int(graph.nodes_of("logit")[0])
    heads = edge_heads(model, transcoders, graph, token, logit)
    assert sorted(set(heads.layers.tolist())) == [0, 1, 2]
    assert heads.total == pytest.approx(float(graph.adjacency[logit, token]), rel=1e-5)
    scale = np.abs(heads.values).max()
    assert scale > 1e-4
    assert np.abs(heads.across_positions).max() <= 1e-5 * scale
    # an error node's edge too (its vector is recomputed from the transcoder)
    errors = graph.nodes_of("error")
    error = int(errors[(graph.node_layer[errors] == 1) & (graph.node_position[errors] == 6)][0])
    heads = edge_heads(model, transcoders, graph, error, logit)
    assert sorted(set(heads.layers.tolist())) == [2]
    assert heads.total == pytest.approx(float(graph.adjacency[logit, error]), rel=1e-5)


def test_hooks_removed_and_training_flags_kept() -> None:
    hf_model = random_llama(layers=2)
    hf_model.train()
    hf_model.model.layers[1].eval()  # mixed flags survive too
    flags = [m.training for m in hf_model.modules()]
    model = as_explainable(hf_model, word_tokenizer())
    graph = attribution_graph(model, random_transcoders(32, 2), "w1 w2 w3")
    assert count_hooks(hf_model) == 0
    assert [m.training for m in hf_model.modules()] == flags
    assert all(p.grad is None for p in hf_model.parameters())
    assert graph.tokens == ["<bos>", "w1", "w2", "w3"]

    def broken(*args, **kwargs):
        raise RuntimeError("the MLP failed")

    hf_model.model.layers[1].mlp.forward = broken
    with pytest.raises(RuntimeError, match="the MLP failed"):
        attribution_graph(model, random_transcoders(32, 2), "w1 w2 w3")
    assert count_hooks(hf_model) == 0
    assert [m.training for m in hf_model.modules()] == flags


def test_target_picks_the_logit_nodes() -> None:
    model = as_explainable(random_llama(layers=2), word_tokenizer())
    transcoders = random_transcoders(32, 2)
    graph = attribution_graph(model, transcoders, "w1 w2 w3", target=["w7", 12])
    logits = graph.nodes_of("logit")
    assert graph.node_index[logits].tolist() == [model.tokenizer.convert_tokens_to_ids("w7"), 12]
    one = attribution_graph(model, transcoders, "w1 w2 w3", target="w9", max_features=0)
    assert len(one.nodes_of("logit")) == 1 and len(one.nodes_of("feature")) == 0
    with pytest.raises(ValueError, match="contrast"):
        attribution_graph(model, transcoders, "w1 w2", target=("w1", "w2"))


def test_bad_transcoders_are_refused_with_what_to_do() -> None:
    model = as_explainable(random_llama(layers=2), word_tokenizer())
    first, second = random_transcoders(32, 2)
    with pytest.raises(TypeError, match=r"transcoders\[1\] is NoneType"):
        attribution_graph(model, [first, None], "w1")
    with pytest.raises(ValueError, match="2 layers but 1 transcoders"):
        attribution_graph(model, [first], "w1")
    with pytest.raises(ValueError, match="put layer i's transcoder at index i"):
        attribution_graph(model, [second, first], "w1")
    with pytest.raises(TypeError, match="sequence"):
        attribution_graph(model, {0: first, 1: second}, "w1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="node_threshold"):
        attribution_graph(model, [first, second], "w1", node_threshold=1.5)


# ---- a hand-built model: edges computed on paper ----------------------------------------------


def hand_built():
    """Two layers, hidden 4, one head. Token id ``i`` embeds as ``2 e_{i mod 4}`` (rms 1).
    Layer 0's attention and both MLPs write nothing; layer 1's attention has zero queries and
    keys (uniform over the visible keys) and identity V and O. Transcoder 0's feature A reads
    dim 0 and writes ``e_3``; transcoder 1's feature B reads dim 3. Norm weights are ones."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=64, hidden_size=4, intermediate_size=8, num_hidden_layers=2,
                         num_attention_heads=1, num_key_value_heads=1, head_dim=4,
                         max_position_embeddings=32, attn_implementation="sdpa")  # fmt: skip
    torch.manual_seed(0)
    hf_model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        embed = hf_model.get_input_embeddings().weight
        embed.zero_()
        embed[torch.arange(64), torch.arange(64) % 4] = 2.0
        for layer, decoder in enumerate(hf_model.model.layers):
            attention = decoder.self_attn
            for projection in (attention.q_proj, attention.k_proj):
                projection.weight.zero_()
            attention.v_proj.weight.copy_(torch.eye(4))
            attention.o_proj.weight.copy_(torch.eye(4) * layer)  # layer 0 writes nothing
            decoder.mlp.down_proj.weight.zero_()
    transcoders = []
    for layer, (reads, writes) in enumerate([(0, 3), (3, 0)]):
        transcoder = Transcoder(TranscoderConfig(d_in=4, d_transcoder=2, d_out=4, layer=layer,
                                                 activation="relu"))  # fmt: skip
        with torch.no_grad():
            transcoder.W_enc.zero_()
            transcoder.W_enc[reads, 0] = 1.0
            transcoder.b_enc.copy_(torch.tensor([0.0, -1.0]))  # latent 1 never fires
            transcoder.W_dec.zero_()
            transcoder.W_dec[0, writes] = 1.0
        transcoders.append(transcoder)
    return as_explainable(hf_model, word_tokenizer()), transcoders


def test_hand_built_edges_equal_the_weights_set() -> None:
    model, transcoders = hand_built()
    text = "w0 w3 w4 w1 w8"  # ids 4 7 8 5 12 after <bos> (id 2): dims 2 0 3 0 1 0
    graph = attribution_graph(model, transcoders, text)
    eps = model.config.rms_norm_eps
    ids = [2, 4, 7, 8, 5, 12]
    emb = np.zeros((6, 4))
    emb[np.arange(6), np.array(ids) % 4] = 2.0

    def scale(v: np.ndarray) -> float:
        return 1 / math.sqrt(float(np.mean(v * v)) + eps)

    # what layer 1's MLP norm receives: emb + the uniform average of the normed embeddings
    middle = np.stack([emb[t] + np.mean([scale(emb[u]) * emb[u] for u in range(t + 1)], 0)
                       for t in range(6)])  # fmt: skip
    a = {u: scale(emb[u]) * 2.0 for u in range(6) if ids[u] % 4 == 0}  # feature A at u
    features = graph.nodes_of("feature")
    node = {(int(graph.node_layer[i]), int(graph.node_position[i])): int(i) for i in features}
    assert sorted(p for (layer, p) in node if layer == 0) == sorted(a)
    assert sorted(p for (layer, p) in node if layer == 1) == [2, 3, 4, 5]  # after the first e_3
    for t in (2, 3, 4, 5):
        assert graph.node_value[node[1, t]] == pytest.approx(scale(middle[t]) * middle[t][3])
        for u, activation in a.items():
            if u > t:
                continue
            through_attention = scale(emb[u]) / (t + 1)  # uniform weight, V = O = I
            expected = scale(middle[t]) * activation * (through_attention + (u == t))
            assert graph.adjacency[node[1, t], node[0, u]] == pytest.approx(expected, rel=1e-5)
            heads = edge_heads(model, transcoders, graph, node[0, u], node[1, t])
            assert heads.values.tolist() == pytest.approx(
                [scale(middle[t]) * activation * through_attention], rel=1e-5
            )
            assert heads.across_positions[0] == pytest.approx(
                0.0 if u == t else heads.values[0], abs=1e-6
            )
