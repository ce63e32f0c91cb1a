"""explain(saes=...): the sparse record equals the SAE on the captured site, saves, loads and
shows in the report (escaped)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llmasos_widgets.explanation import Explanation, explain
from llmasos_widgets.features import SAEConfig, SparseAutoencoder

TEXT = "w1 w2 w3 w4 w5 w6 w1 w2 w3 w4"


def random_sae(site: int, *, d_in: int = 32, d_sae: int = 128, k: int | None = 8, seed: int = 0):
    torch.manual_seed(seed)
    activation = "topk" if k else "relu"
    sae = SparseAutoencoder(
        SAEConfig(d_in=d_in, d_sae=d_sae, site=site, activation=activation, k=k)
    )
    with torch.no_grad():
        sae.b_enc.normal_(0, 0.1)
    return sae


def hidden_states(model, ids: np.ndarray) -> tuple[torch.Tensor, ...]:
    with torch.no_grad():
        out = model.hf_model(torch.from_numpy(ids)[None], output_hidden_states=True)
    # transformers applies the final norm to its last hidden state; our last site is before it
    return out.hidden_states


@pytest.mark.parametrize(("site", "k"), [(0, 8), (1, None)])
def test_sparse_record_equals_encode_of_the_site(tiny_random, site, k):
    sae = random_sae(site, k=k)
    explanation = explain(tiny_random, TEXT, saliency=False, saes=[sae], progress=False)
    record = explanation.feature()
    hidden = hidden_states(tiny_random, explanation.token_ids)[site][0]
    codes = sae.encode(hidden).detach()
    np.testing.assert_allclose(record.dense(), codes.numpy(), rtol=1e-5, atol=1e-6)
    error = (hidden - sae(hidden)).norm(dim=-1).detach().numpy()
    np.testing.assert_allclose(record.error_norm, error, rtol=1e-5, atol=1e-6)
    for position in range(record.n_tokens):  # each token's latents: largest first
        _, values = record.token(position)
        assert (np.diff(values) <= 0).all()
    assert record.site == site and record.d_sae == 128
    np.testing.assert_array_equal(record.effect_latents, np.unique(record.latents))


def test_logit_effects_are_the_head_on_the_direction(tiny_random):
    from llmasos_widgets.explanation import final_logits

    sae = random_sae(2)
    record = explain(tiny_random, TEXT, saliency=False, saes=[sae], progress=False).feature()
    latent = int(record.effect_latents[0])
    logits = final_logits(tiny_random.hf_model, sae.direction(latent)[None])[0].detach()
    order = torch.argsort(logits, descending=True)
    assert record.promoted_ids[0].tolist() == order[:10].tolist()
    assert record.suppressed_ids[0].tolist() == order.flip(0)[:10].tolist()
    effects = record.logit_effects(latent)
    assert effects["promoted"][0][1] == pytest.approx(float(logits.max()), rel=1e-5)
    assert effects["promoted"][0][0] == tiny_random.tokens(order[:1])[0]


def test_no_saes_records_nothing_and_the_logits_are_unchanged(tiny_random):
    plain = explain(tiny_random, TEXT, saliency=False, progress=False)
    with_sae = explain(tiny_random, TEXT, saliency=False, saes=[random_sae(1)], progress=False)
    assert plain.features == ()
    np.testing.assert_array_equal(plain.top_probs, with_sae.top_probs)
    from llmasos_widgets._hooks import count_hooks

    assert count_hooks(tiny_random.hf_model) == 0


def test_wrong_width_or_site_is_a_clear_error(tiny_random):
    with pytest.raises(ValueError, match="d_in"):
        explain(tiny_random, TEXT, saliency=False, saes=[random_sae(1, d_in=16)])
    with pytest.raises(ValueError, match="site 7"):
        explain(tiny_random, TEXT, saliency=False, saes=[random_sae(7)])
    from llmasos_widgets._hooks import count_hooks

    assert count_hooks(tiny_random.hf_model) == 0


def test_names_are_unique_and_a_mapping_names_them(tiny_random):
    saes = [random_sae(1), random_sae(1, seed=1)]
    explanation = explain(tiny_random, TEXT, saliency=False, saes=saes, progress=False)
    assert [r.name for r in explanation.features] == ["sae@after L0", "sae@after L0#2"]
    named = explain(tiny_random, TEXT, saliency=False, saes={"mine": saes[0]}, progress=False)
    assert named.feature("mine").name == "mine"
    with pytest.raises(ValueError, match="recorded: 'mine'"):
        named.feature("other")


def test_features_save_and_load(tiny_random, tmp_path):
    explanation = explain(
        tiny_random, TEXT, saliency=False, saes=[random_sae(0), random_sae(2)], progress=False
    )
    loaded = Explanation.load(explanation.save(tmp_path / "run.llmx"))
    assert len(loaded.features) == 2
    for saved, back in zip(explanation.features, loaded.features, strict=True):
        for name, array in saved.to_arrays().items():
            np.testing.assert_array_equal(getattr(back, name), array)
            assert getattr(back, name).dtype == array.dtype
        assert back.to_json() == saved.to_json()


def test_a_file_without_features_loads_with_none(tiny_random, tmp_path):
    path = explain(tiny_random, TEXT, saliency=False, progress=False).save(tmp_path / "a.llmx")
    assert Explanation.load(path).features == ()


def test_report_shows_top_latents_escaped(tiny_random, tmp_path):
    sae = random_sae(1)
    explanation = explain(tiny_random, TEXT, saliency=False, saes={"<b>sae</b>": sae})
    page = explanation.to_html(tmp_path / "r.html").read_text()
    assert "Features: &lt;b&gt;sae&lt;/b&gt;" in page and "<b>sae</b>" not in page
    latent, _ = explanation.feature().top(3, 1)[0]
    assert f"data-latent='{latent}'" in page


def test_the_error_norm_is_exact_when_more_latents_fire_than_are_kept():
    from llmasos_widgets.features._capture import encode_rows

    sae = random_sae(1, k=None)  # ReLU: about half of the 128 latents fire
    hidden = torch.randn(1, 5, 32)
    arrays = encode_rows(sae, hidden[0], max_latents=4)
    indptr, latents, error = arrays["indptr"], arrays["latents"], arrays["error_norm"]
    assert (np.diff(indptr) <= 4).all()
    want = (hidden[0] - sae(hidden[0])).norm(dim=-1).detach().numpy()
    np.testing.assert_allclose(error, want, rtol=1e-5)
    np.testing.assert_array_equal(latents[:4], sae.encode(hidden[0, 0]).topk(4).indices.numpy())


def test_logit_effects_are_read_on_first_use_and_refused_after_the_sae_changed(tiny_random):
    sae = random_sae(1)
    explanation = explain(tiny_random, TEXT, saliency=False, saes=[sae], progress=False)
    record = explanation.feature()
    assert record.effects.pending  # explain did not read them
    latent = int(record.effect_latents[0])  # encodes the latents, not the effects
    assert not record.codes.pending and record.effects.pending
    with torch.no_grad():
        sae.W_dec.mul_(2)  # trained in place after explain
    with pytest.raises(RuntimeError, match="explain the text again"):
        record.logit_effects(latent)


def test_a_feature_widget_from_a_model_and_text(tiny_random):
    from llmasos_widgets import FeatureWidget

    sae = random_sae(1)
    widget = FeatureWidget(tiny_random, TEXT, saes=[sae])
    record = widget.features
    latent, value = record.top(2, 1)[0]
    widget.select_latent(latent)
    assert widget.card["max"] >= value and widget.selected_layer == 0
    assert widget.card["promoted"][0][0] == record.logit_effects(latent)["promoted"][0][0]
    assert "saes=['sae@after L0']" in repr(widget.result)
    widget.close()


def test_a_topk_sae_with_more_latents_than_are_kept_reconstructs_from_all_of_them():
    from llmasos_widgets.features._capture import encode_rows

    sae = random_sae(1, k=16)
    hidden = torch.randn(1, 5, 32)
    arrays = encode_rows(sae, hidden[0], max_latents=4)
    want = (hidden[0] - sae(hidden[0])).norm(dim=-1).detach().numpy()
    np.testing.assert_allclose(arrays["error_norm"], want, rtol=1e-5)
    assert (np.diff(arrays["indptr"]) <= 4).all()
