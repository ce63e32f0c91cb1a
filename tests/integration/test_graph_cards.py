"""A feature node's card on the bundled model: its activation on every token is the transcoder
reading that token's MLP input, and its logit effects rank the token its decoder writes.

Known answers by construction: latent 2 of a hand-set layer-1 transcoder reads one hidden
dimension (``W_enc[:, 2] = e_j``, ReLU), so its activation on token ``p`` is
``relu(post_attention_layernorm(x)[p, j])``, read here by a hook on the norm (not the MLP hook
the card uses); its decoder row is the unembedding row of one token, which the head ranks
first."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from llmasos_widgets.features import Transcoder, TranscoderConfig
from llmasos_widgets.widgets import GraphWidget
from tests._hand_graph import hand_graph

DIMENSION, LATENT, LAYER = 4, 2, 1  # dimension 4 of L1's MLP input: + - + on "<bos> the cat"


@pytest.fixture(scope="module")
def setup(bundled: Any) -> tuple[Any, Transcoder, Any]:
    ids = bundled.encode("the cat")[0].tolist()  # <bos> the cat
    graph = hand_graph(0.95, tokens=bundled.tokens(torch.tensor(ids)), token_ids=ids)
    hidden = bundled.config.hidden_size
    transcoder = Transcoder(
        TranscoderConfig(d_in=hidden, d_transcoder=8, d_out=hidden, layer=LAYER, activation="relu")
    )
    unembedding = bundled.hf_model.get_output_embeddings().weight.detach()
    with torch.no_grad():
        transcoder.W_enc.zero_()
        transcoder.W_enc[DIMENSION, LATENT] = 1.0
        transcoder.W_dec[LATENT] = unembedding[ids[2]] / unembedding[ids[2]].norm()
    return bundled, transcoder, graph


def test_a_feature_card_reads_the_transcoder_on_every_token(setup: Any) -> None:
    model, transcoder, graph = setup
    seen: list[torch.Tensor] = []
    norm = model.hf_model.model.layers[LAYER].post_attention_layernorm
    handle = norm.register_forward_hook(lambda _m, _a, out: seen.append(out[0].detach()))
    try:
        with torch.no_grad():
            model.hf_model(input_ids=torch.tensor([graph.token_ids]))
    finally:
        handle.remove()
    expected = torch.relu(seen[0][:, DIMENSION]).tolist()
    assert any(v > 0 for v in expected) and any(v == 0 for v in expected)  # a real test

    widget = GraphWidget(graph, model, [transcoder])
    widget.focused_node = 1  # L1 #2 @2
    card = widget.card
    assert card["activations"] == pytest.approx(expected, abs=1e-5)
    assert card["promoted"][0][0] == model.tokenizer.decode([graph.token_ids[2]])
    assert len(card["promoted"]) == len(card["suppressed"]) == 8
    assert card["promoted"][0][1] > card["promoted"][-1][1] > card["suppressed"][-1][1]
    widget.focused_node = 0  # L0: no transcoder given for it; the card says so
    assert widget.card["name"] == "L0 #5 @1" and "no transcoder for layer 0" in widget.card["note"]


def test_a_card_for_a_layer_without_a_transcoder_is_a_clear_error(setup: Any) -> None:
    model, transcoder, graph = setup
    from llmasos_widgets.graphs import FeatureCards

    cards = FeatureCards(model, [transcoder], graph)
    with pytest.raises(ValueError, match="no transcoder for layer 0"):
        cards.card(0)
    with pytest.raises(ValueError, match="token node"):
        cards.card(11)
    with pytest.raises(ValueError, match="two transcoders replace layer 1"):
        FeatureCards(model, [transcoder, transcoder], graph)
