"""load_transcoder(s) with hub ids against the fake hub on localhost (tests/fake_hub.py): the
download path load_sae uses (cache, offline flag, error mapping), for circuit-tracer sets and
Gemma Scope files. No test can reach the internet."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

import llmasos_widgets as lw
from llmasos_widgets.features import Transcoder, TranscoderConfig
from llmasos_widgets.models import ModelNotFoundError
from tests.fake_hub import hub_for_tests


@pytest.fixture
def hub(monkeypatch, tmp_path):
    with hub_for_tests(monkeypatch, tmp_path) as fake:
        yield fake


def _transcoder(layer: int) -> Transcoder:
    torch.manual_seed(layer)
    return Transcoder(TranscoderConfig(d_in=8, d_transcoder=16, d_out=8, layer=layer, k=4))


@pytest.fixture
def repo(tmp_path):
    """``plt/``: a two-layer set as save_transcoder writes it; ``gemma/``: a config listing a
    Gemma Scope params.npz by hf:// URI in another repository (as circuit-tracer's do)."""
    root = tmp_path / "repo"
    transcoders = [_transcoder(0), _transcoder(1)]
    lw.save_transcoder(transcoders, root / "plt")
    (root / "gemma").mkdir()
    uri = "hf://google/gemma-scope-test-transcoders/layer_0/width_16k/average_l0_9/params.npz"
    config = {"model_kind": "transcoder_set", "feature_input_hook": "ln2.hook_normalized",
              "feature_output_hook": "hook_mlp_out", "transcoders": [uri]}  # fmt: skip
    (root / "gemma" / "config.yaml").write_text(yaml.safe_dump(config))
    scope = tmp_path / "scope" / "layer_0" / "width_16k" / "average_l0_9"
    scope.mkdir(parents=True)
    rng = np.random.default_rng(0)
    np.savez(scope / "params.npz", W_enc=rng.standard_normal((8, 16)).astype(np.float32),
             W_dec=rng.standard_normal((16, 8)).astype(np.float32),
             b_enc=np.zeros(16, np.float32), b_dec=np.zeros(8, np.float32),
             threshold=np.full(16, 0.1, np.float32))  # fmt: skip
    return root, tmp_path / "scope", transcoders


def test_a_hub_set_downloads_its_config_and_layer_files(hub, repo):
    root, _, transcoders = repo
    hub.add("org/transcoders", root)
    loaded = lw.load_transcoders("org/transcoders/plt")
    assert [t.layer for t in loaded] == [0, 1]
    for ours, theirs in zip(loaded, transcoders, strict=True):
        assert torch.equal(ours.W_enc, theirs.W_enc) and torch.equal(ours.W_dec, theirs.W_dec)
    assert sorted(hub.downloads("org/transcoders")) == [
        "plt/config.yaml",
        "plt/layer_0.safetensors",
        "plt/layer_1.safetensors",
    ]  # and layer_2 was asked for and found missing: the set ends there
    one = lw.load_transcoder("org/transcoders", subfolder="plt", layer=1)
    assert one.layer == 1 and one.config.metadata["source"] == "org/transcoders/plt"
    assert hub.downloads("org/transcoders").count("plt/layer_1.safetensors") == 1  # cached


def test_hf_uris_in_a_config_download_from_their_own_repository(hub, repo):
    root, scope, _ = repo
    hub.add("org/transcoders", root)
    hub.add("google/gemma-scope-test-transcoders", scope)
    (loaded,) = lw.load_transcoders("org/transcoders/gemma")
    assert loaded.layer == 0 and loaded.config.activation == "jumprelu"
    assert hub.downloads("google/gemma-scope-test-transcoders") == [
        "layer_0/width_16k/average_l0_9/params.npz"
    ]


def test_offline_uncached_cached_and_missing(hub, repo, monkeypatch):
    root, _, _ = repo
    hub.add("org/transcoders", root)
    with pytest.raises(ModelNotFoundError, match="offline"):
        lw.load_transcoders("org/transcoders/plt", local_files_only=True)
    assert hub.requests == []
    online = lw.load_transcoders("org/transcoders/plt")
    seen = len(hub.requests)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    offline = lw.load_transcoders("org/transcoders/plt")
    assert len(hub.requests) == seen and len(offline) == len(online) == 2
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with pytest.raises(ModelNotFoundError, match="'org/nothing'.*not found"):
        lw.load_transcoders("org/nothing")
    with pytest.raises(ValueError, match="holds no transcoder: expected one of config.yaml"):
        lw.load_transcoders("org/transcoders")
