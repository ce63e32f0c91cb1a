"""FeatureWidget linked to an AttentionWidget in a real JupyterLab + Chromium: a token clicked
in the attention view lists that token's latents in the feature view (those the kernel's
record holds); clicking a latent selects it and the SAE's layer everywhere and the card shows
its activation on every token. The SAE's hostile name shows as text."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser._jupyter import (
    ATTENTION_MODEL,
    ATTENTION_TEXT,
    UI_STEP_S,
    JupyterServer,
    KernelClient,
    open_notebook_and_run_all,
    wait_for_widget,
    write_notebook,
)

pytestmark = pytest.mark.browser

STEP_MS = UI_STEP_S * 1000
HOSTILE = "<img src=x onerror=\"document.body.dataset.pwned='1'\">"

CELL = f"""\
import torch
from llmasos_widgets import AttentionWidget, FeatureWidget, link_selection, load_model
from llmasos_widgets.features import SAEConfig, SparseAutoencoder

model = load_model({ATTENTION_MODEL!r}, device="cpu")
hidden = model.config.hidden_size
torch.manual_seed(0)
sae = SparseAutoencoder(SAEConfig(d_in=hidden, d_sae=16 * hidden, site=2, k=8))
explanation = model.explain({ATTENTION_TEXT!r}, saliency=False, saes={{{HOSTILE!r}: sae}})
record = explanation.feature()
features = FeatureWidget(explanation)
attention = AttentionWidget(explanation)
selection = link_selection(attention, features)
display(attention, features)
"""


def test_a_token_selected_in_attention_lists_its_latents_and_a_latent_click_shows_its_card(
    jupyter_server: JupyterServer, page: Any
) -> None:
    from playwright.sync_api import expect

    name = "features_linked.ipynb"
    write_notebook(jupyter_server.root_dir, name, [CELL])
    kernel_id = open_notebook_and_run_all(page, jupyter_server, f"/lab/tree/{name}")
    view = wait_for_widget(page, jupyter_server, "feature-widget")
    attention_view = wait_for_widget(page, jupyter_server, "attention-widget")
    kernel = KernelClient.connect(jupyter_server, kernel_id)
    try:
        expect(view.get_by_test_id("sae-caption")).to_contain_text(HOSTILE, timeout=STEP_MS)
        expect(view.locator("img")).to_have_count(0)
        expect(view.get_by_test_id("feature-card")).to_be_hidden()

        # 1. a token clicked in the attention view: the feature view lists its latents
        token = 6
        attention_view.get_by_test_id("token-strip").get_by_test_id(f"token-{token}").click()
        kernel.wait_for(
            "features.selected_tokens",
            lambda v: v == [token],
            what="the feature widget's token after a click in the attention view",
        )
        listed = view.get_by_test_id("token-latents")
        expect(listed).to_have_attribute("data-token", str(token), timeout=STEP_MS)
        top = kernel.evaluate(f"[latent for latent, _ in record.top({token}, 10)]")
        assert top, "a TopK SAE has active latents on every token"
        buttons = listed.locator("button")
        expect(buttons).to_have_count(len(top), timeout=STEP_MS)
        ids = [b.get_attribute("data-testid") for b in buttons.all()]
        assert ids == [f"latent-{latent}" for latent in top]

        # 2. a latent clicked: selected in the kernel, the SAE's layer (site 2 = after L1)
        # selected in the attention widget too, and the card shows its activations
        latent = top[0]
        listed.get_by_test_id(f"latent-{latent}").click()
        kernel.wait_for(
            "[features.selected_latent, attention.selected_layer, features.card.get('latent')]",
            lambda v: v == [latent, 1, latent],
            what="selected latent, linked layer and card after clicking a latent",
        )
        card = view.get_by_test_id("feature-card")
        expect(card).to_have_attribute("data-latent", str(latent), timeout=STEP_MS)
        expect(card).to_be_visible()
        values = kernel.evaluate(f"[float(v) for v in record.activations({latent})]")
        strip = view.get_by_test_id("token-strip")
        for i, value in enumerate(values):
            shown = strip.get_by_test_id(f"token-{i}")
            expect(shown).not_to_have_attribute("data-activation", "", timeout=STEP_MS)
            assert float(shown.get_attribute("data-activation")) == pytest.approx(
                value, rel=1e-2, abs=1e-6
            )
        assert values[token] > 0
        promoted = kernel.evaluate(f"len(record.logit_effects({latent})['promoted'])")
        expect(card.get_by_test_id("promoted").locator("span")).to_have_count(promoted)
        expect(card.get_by_test_id("histogram").locator("rect")).not_to_have_count(0)
        assert page.evaluate("document.body.dataset.pwned") is None
    finally:
        kernel.close()
