"""load_sae with hub ids against the fake hub on localhost (tests/fake_hub.py): the real
huggingface_hub download code runs, the cache and the offline flag behave as for load_model, and
no test can reach the internet. Also check_sae_for against the bundled model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import llmasos_widgets as lw
from llmasos_widgets.features import SAEConfig, SparseAutoencoder, check_sae_for
from llmasos_widgets.models import ModelNotFoundError
from tests.fake_hub import hub_for_tests


@pytest.fixture
def hub(monkeypatch, tmp_path):
    with hub_for_tests(monkeypatch, tmp_path) as fake:
        yield fake


def _sae(site: int = 1, d_in: int = 8) -> SparseAutoencoder:
    torch.manual_seed(0)
    return SparseAutoencoder(SAEConfig(d_in=d_in, d_sae=16, site=site, activation="topk", k=4))


@pytest.fixture
def repo(tmp_path):
    """A repository with a SAELens SAE in ``saes/after-L0`` and a Gemma Scope one in
    ``layer_3/width_16k/average_l0_10``."""
    root = tmp_path / "repo"
    sae = _sae()
    lw.save_sae(sae, root / "saes" / "after-L0")
    gemma = root / "layer_3" / "width_16k" / "average_l0_10"
    gemma.mkdir(parents=True)
    rng = np.random.default_rng(0)
    np.savez(
        gemma / "params.npz",
        W_enc=rng.standard_normal((8, 16)).astype(np.float32),
        W_dec=rng.standard_normal((16, 8)).astype(np.float32),
        b_enc=np.zeros(16, np.float32),
        b_dec=np.zeros(8, np.float32),
        threshold=np.full(16, 0.1, np.float32),
    )
    scope = root / "Llama3_1-8B-Base-L0R-8x"
    (scope / "checkpoints").mkdir(parents=True)
    hyper = {
        "d_model": 8,
        "d_sae": 16,
        "hook_point_in": "blocks.0.hook_resid_post",
        "act_fn": "jumprelu",
        "jump_relu_threshold": 0.1,
        "dataset_average_activation_norm": {"in": 2.0, "out": 2.0},
    }
    (scope / "hyperparams.json").write_text(json.dumps(hyper))
    save_file(
        {
            "encoder.weight": torch.randn(16, 8),
            "encoder.bias": torch.zeros(16),
            "decoder.weight": torch.randn(8, 16),
            "decoder.bias": torch.zeros(8),
        },
        scope / "checkpoints" / "final.safetensors",
    )
    (root / "README.md").write_text("SAEs")
    return root, sae


def test_a_hub_sae_downloads_only_its_files_and_loads_exactly(hub, repo):
    root, sae = repo
    hub.add("org/saes", root)
    loaded = lw.load_sae("org/saes", subfolder="saes/after-L0")
    assert sorted(hub.downloads("org/saes")) == [
        "saes/after-L0/cfg.json",
        "saes/after-L0/sae_weights.safetensors",
    ]
    assert torch.equal(loaded.W_enc, sae.W_enc) and loaded.site == 1
    assert loaded.config.metadata["source"] == "org/saes/saes/after-L0"
    again = lw.load_sae("org/saes/saes/after-L0")  # the folder appended to the id: cached
    assert hub.downloads("org/saes").count("saes/after-L0/sae_weights.safetensors") == 1
    assert torch.equal(again.W_dec, sae.W_dec)


def test_gemma_scope_on_the_hub_takes_its_site_from_the_folder(hub, repo):
    hub.add("google/gemma-scope-test-res", repo[0])
    sae = lw.load_sae("google/gemma-scope-test-res/layer_3/width_16k/average_l0_10")
    assert sae.site == 4 and sae.config.activation == "jumprelu"
    assert "layer_3/width_16k/average_l0_10/params.npz" in hub.downloads(
        "google/gemma-scope-test-res"
    )


def test_llama_scope_on_the_hub_downloads_its_checkpoint_folder(hub, repo):
    hub.add("fnlp/Llama3_1-8B-Base-LXR-8x", repo[0])
    sae = lw.load_sae("fnlp/Llama3_1-8B-Base-LXR-8x", subfolder="Llama3_1-8B-Base-L0R-8x")
    assert sae.site == 1 and sae.config.activation == "jumprelu"
    assert sorted(hub.downloads("fnlp/Llama3_1-8B-Base-LXR-8x")) == [
        "Llama3_1-8B-Base-L0R-8x/checkpoints/final.safetensors",
        "Llama3_1-8B-Base-L0R-8x/hyperparams.json",
    ]


@pytest.mark.parametrize(
    ("variable", "options"),
    [("HF_HUB_OFFLINE", {}), (None, {"local_files_only": True})],
    ids=["HF_HUB_OFFLINE-set-after-import", "local_files_only"],
)
def test_offline_an_uncached_sae_says_hf_download_and_asks_nothing(
    hub, repo, monkeypatch, variable, options
):
    hub.add("org/saes", repo[0])
    if variable:
        monkeypatch.setenv(variable, "1")
    with pytest.raises(ModelNotFoundError, match=r"offline.*`hf download org/saes --include"):
        lw.load_sae("org/saes", subfolder="saes/after-L0", **options)
    assert hub.requests == []


def test_offline_a_cached_sae_loads_without_a_request(hub, repo, monkeypatch):
    hub.add("org/saes", repo[0])
    online = lw.load_sae("org/saes/saes/after-L0")
    seen = len(hub.requests)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    offline = lw.load_sae("org/saes/saes/after-L0")
    assert len(hub.requests) == seen
    assert torch.equal(offline.W_enc, online.W_enc)


def test_missing_repos_and_folders_without_an_sae_are_clear(hub, repo):
    hub.add("org/saes", repo[0])
    with pytest.raises(ModelNotFoundError, match="'org/nothing'.*not found"):
        lw.load_sae("org/nothing")
    with pytest.raises(ValueError, match=r"'org/saes' holds no SAE: expected one of cfg\.json"):
        lw.load_sae("org/saes")
    with pytest.raises(ValueError, match="holds no SAE: expected one of params.npz"):
        lw.load_sae("org/saes", subfolder="saes/after-L0", format="gemma-scope")


def test_check_sae_for_the_bundled_model(bundled):
    model = bundled
    hidden, layers = model.config.hidden_size, model.config.num_hidden_layers
    check_sae_for(model, _sae(site=layers, d_in=hidden))
    check_sae_for(model.hf_model, _sae(site=0, d_in=hidden))
    with pytest.raises(ValueError, match=f"d_in={hidden + 1} but tiny-llama.*{hidden}"):
        check_sae_for(model, _sae(d_in=hidden + 1))
    with pytest.raises(ValueError, match=f"site {layers + 1}.*{layers} layers"):
        check_sae_for(model, _sae(site=layers + 1, d_in=hidden))
