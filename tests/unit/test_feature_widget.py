"""FeatureWidget's traits from a hand-built record (no model): each token's top latents as
binary payloads, the card of a selected latent, the layer a selection sets, bad input."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from llmasos_widgets.features import FeatureActivations, FeatureExamples
from llmasos_widgets.features._activations import LatentCodes, LogitEffects
from llmasos_widgets.widgets import AttentionWidget, FeatureWidget, link_selection

TOKENS = ("<bos>", "a", "<b>x</b>", "c")


def record(site: int = 2) -> FeatureActivations:
    # token 0: none; 1: latent 3 (2.0), latent 1 (0.5); 2: latent 1 (1.5); 3: latent 3 (1.0)
    return FeatureActivations(
        name="res2",
        site=site,
        d_sae=6,
        codes=LatentCodes(
            n_tokens=4,
            arrays={
                "indptr": np.array([0, 0, 2, 3, 4]),
                "latents": np.array([3, 1, 1, 3]),
                "values": np.array([2.0, 0.5, 1.5, 1.0], np.float32),
                "error_norm": np.array([0.1, 0.2, 0.3, 0.4], np.float32),
                "effect_latents": np.array([1, 3]),
            },
        ),
        effects=LogitEffects(
            arrays={
                "promoted_ids": np.array([[4, 5], [6, 7]]),
                "promoted_logits": np.array([[2.0, 1.0], [3.0, 2.5]], np.float32),
                "suppressed_ids": np.array([[8, 9], [10, 11]]),
                "suppressed_logits": np.array([[-2.0, -1.0], [-3.0, -2.5]], np.float32),
            },
            strings={4: "up", 5: "<i>", 6: "u3", 7: "v3", 8: "down", 9: "d", 10: "d3", 11: "e3"},
        ),
    )


def explanation(site: int = 2) -> SimpleNamespace:
    features = (record(site),)
    return SimpleNamespace(
        tokens=TOKENS,
        n_tokens=len(TOKENS),
        n_layers=3,
        n_heads=2,
        token_style=None,
        messages=(),
        generation=None,
        features=features,
        feature=lambda name=None: features[0],
    )


def decode(payload: dict) -> np.ndarray:
    return np.frombuffer(payload["view"], dtype="<f4").reshape(payload["shape"])


def test_each_tokens_top_latents_travel_as_binary_payloads() -> None:
    widget = FeatureWidget(explanation(), top_n=3)
    latents, values = decode(widget.top_latents), decode(widget.top_values)
    assert latents.tolist() == [[-1, -1, -1], [3, 1, -1], [1, -1, -1], [3, -1, -1]]
    np.testing.assert_array_equal(values[1], [2.0, 0.5, 0.0])
    assert (widget.sae_name, widget.site, widget.site_name, widget.d_sae) == (
        "res2",
        2,
        "after L1",
        6,
    )
    assert widget.tokens == list(TOKENS)  # raw strings; the browser sets them as text
    assert widget.card == {} and decode(widget.latent_activations).shape == (0,)


def test_selecting_a_latent_fills_its_card_and_selects_the_sites_layer() -> None:
    widget = FeatureWidget(explanation())
    widget.select_latent(3)
    assert widget.selected_layer == 1  # after L1 is decoder layer 1's output
    np.testing.assert_array_equal(decode(widget.latent_activations), [0, 2.0, 0, 1.0])
    card = widget.card
    assert card["latent"] == 3 and card["max"] == 2.0
    assert card["promoted"] == [["u3", 3.0], ["v3", 2.5]]
    assert card["suppressed"] == [["d3", -3.0], ["e3", -2.5]]
    assert sum(card["histogram"]["counts"]) == 2 and card["examples"] == []
    widget.selected_latent = 0  # never active here: no effects stored, an empty histogram
    assert widget.card["promoted"] == [] and sum(widget.card["histogram"]["counts"]) == 0
    widget.selected_latent = -1
    assert widget.card == {}
    with pytest.raises(Exception, match="selected_latent=6 is out of range"):
        widget.selected_latent = 6


def test_the_emb_site_selects_no_layer() -> None:
    widget = FeatureWidget(explanation(site=0))
    widget.select_latent(1)
    assert widget.selected_layer == -1


def test_examples_fill_the_card_with_contexts_and_the_corpus_histogram() -> None:
    sae = SimpleNamespace(d_sae=6, site=2, config=SimpleNamespace(hook_name="res2"))
    examples = FeatureExamples.empty(sae, k=2, window=1, model_name="m")
    codes = torch.zeros(1, 4, 6)
    codes[0, 2, 3] = 5.0
    ids = torch.tensor([[0, 1, 2, 3]])
    examples.add_batch(codes, ids, torch.ones_like(ids), offset=0)
    examples.meta["token_strings"] = {"1": "a", "2": "<b>x</b>", "3": "c"}
    widget = FeatureWidget(explanation(), examples=examples)
    widget.selected_latent = 3
    (shown,) = widget.card["examples"]
    assert shown["tokens"] == ["a", "<b>x</b>", "c"] and shown["center"] == 1
    assert shown["values"] == [0.0, 5.0, 0.0] and shown["activation"] == 5.0
    assert widget.card["density"] == pytest.approx(1 / 4)
    assert sum(widget.card["histogram"]["counts"]) == 1
    wrong = FeatureExamples.empty(
        SimpleNamespace(d_sae=7, site=2, config=sae.config), k=1, window=1, model_name="m"
    )
    with pytest.raises(ValueError, match="7 latents"):
        FeatureWidget(explanation(), examples=wrong)


def test_an_explanation_without_features_or_extra_arguments_is_refused() -> None:
    bare = explanation()
    bare.features = ()
    with pytest.raises(ValueError, match="saes=\\[sae\\]"):
        FeatureWidget(bare)
    with pytest.raises(TypeError, match="Explanation alone"):
        FeatureWidget(explanation(), "text")
    with pytest.raises(TypeError, match="text and saes are required"):
        FeatureWidget(object(), "text")


def test_a_closed_widget_drops_what_it_showed() -> None:
    widget = FeatureWidget(explanation())
    widget.close()
    assert widget.result is None and widget.features is None


def test_tokens_and_layer_link_with_an_attention_widget() -> None:
    from tests.unit.test_attention_widget import FakeExplanation

    attention = AttentionWidget(FakeExplanation(n_heads=2, tokens=list(TOKENS)))
    features = FeatureWidget(explanation())
    link_selection(attention, features)
    attention.selected_tokens = [2]
    assert features.selected_tokens == [2]
    features.select_latent(3)
    assert attention.selected_layer == 1
