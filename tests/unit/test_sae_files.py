"""load_sae / save_sae against files written here by hand, field by field as each format's own
code writes them (SAELens ``save_model``, Llama Scope's lm_saes, Gemma Scope's params.npz), and
encode() against a hand computation in that format's own convention. No network."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from llmasos_widgets.features import SAEConfig, SparseAutoencoder, check_sae_for, load_sae, save_sae

D_IN, D_SAE = 6, 10


def _random_sae(activation: str = "topk", seed: int = 0, **config) -> SparseAutoencoder:
    torch.manual_seed(seed)
    if activation == "topk":
        config.setdefault("k", 3)
    sae = SparseAutoencoder(
        SAEConfig(
            d_in=D_IN,
            d_sae=D_SAE,
            site=config.pop("site", 2),
            activation=activation,
            model_name="tiny-llama",
            **config,
        )
    )
    with torch.no_grad():
        for tensor in (sae.W_enc, sae.W_dec, sae.b_enc, sae.b_dec):
            tensor.copy_(torch.randn_like(tensor))
        sae.threshold.copy_(torch.rand(D_SAE) if activation == "jumprelu" else 0)
    return sae


def _x(seed: int = 1) -> torch.Tensor:
    return torch.randn(5, D_IN, generator=torch.Generator().manual_seed(seed))


def _weights(sae: SparseAutoencoder) -> dict[str, torch.Tensor]:
    return {n: getattr(sae, n) for n in ("W_enc", "W_dec", "b_enc", "b_dec", "threshold")}


# ------------------------------------------------------------------------- SAELens, ours


@pytest.mark.parametrize("activation", ["relu", "topk", "jumprelu"])
def test_save_then_load_is_bitwise_the_same_sae(tmp_path, activation):
    sae = _random_sae(activation, input_scale=1.0, metadata={"dataset": "synthetic"})
    save_sae(sae, tmp_path / "sae")
    loaded = load_sae(tmp_path / "sae")
    for name, tensor in _weights(sae).items():
        assert torch.equal(getattr(loaded, name), tensor), name
    assert loaded.config.activation == activation and loaded.config.k == sae.config.k
    assert loaded.site == 2 and loaded.config.model_name == "tiny-llama"
    assert loaded.config.metadata["dataset"] == "synthetic"
    assert torch.equal(loaded.encode(_x()), sae.encode(_x()))


def test_saved_files_are_what_saelens_load_from_disk_reads(tmp_path):
    """The fields SAELens 6's SAEConfig.from_dict / handle_config_defaulting look at, and the
    state dict its strict load_state_dict expects per architecture."""
    save_sae(_random_sae("topk", site=3), tmp_path / "topk")
    cfg = json.loads((tmp_path / "topk" / "cfg.json").read_text())
    assert cfg["architecture"] == "topk" and cfg["k"] == 3
    assert (cfg["d_in"], cfg["d_sae"], cfg["dtype"], cfg["device"]) == (
        D_IN,
        D_SAE,
        "float32",
        "cpu",
    )
    assert cfg["apply_b_dec_to_input"] is True and cfg["normalize_activations"] == "none"
    assert cfg["reshape_activations"] == "none" and cfg["rescale_acts_by_decoder_norm"] is False
    meta = cfg["metadata"]
    assert meta["hook_name"] == "blocks.2.hook_resid_post"  # site 3 = after L2
    assert meta["sae_lens_version"] >= "6" and meta["llmasos_site"] == 3
    assert meta["model_name"] == "tiny-llama"
    assert set(load_file(tmp_path / "topk" / "sae_weights.safetensors")) == {
        "W_enc",
        "W_dec",
        "b_enc",
        "b_dec",
    }
    save_sae(_random_sae("jumprelu", site=0), tmp_path / "jump")
    cfg = json.loads((tmp_path / "jump" / "cfg.json").read_text())
    assert cfg["architecture"] == "jumprelu"
    assert cfg["metadata"]["hook_name"] == "blocks.0.hook_resid_pre"  # emb
    assert "threshold" in load_file(tmp_path / "jump" / "sae_weights.safetensors")


def test_an_input_scale_round_trips_exactly_or_folds_into_the_weights(tmp_path):
    sae = _random_sae("relu", input_scale=0.37)
    save_sae(sae, tmp_path / "checkpoint")
    cfg = json.loads((tmp_path / "checkpoint" / "cfg.json").read_text())
    assert cfg["normalize_activations"] == "expected_average_only_in"
    scaler = json.loads((tmp_path / "checkpoint" / "activation_scaler.json").read_text())
    assert scaler == {"scaling_factor": 0.37}  # SAELens's own checkpoint layout
    loaded = load_sae(tmp_path / "checkpoint")
    assert loaded.config.input_scale == 0.37
    assert all(torch.equal(getattr(loaded, n), t) for n, t in _weights(sae).items())

    save_sae(sae, tmp_path / "checkpoint", fold_input_scale=True)  # over the same directory
    assert not (tmp_path / "checkpoint" / "activation_scaler.json").exists()
    folded = load_sae(tmp_path / "checkpoint")
    assert folded.config.input_scale == 1.0
    torch.testing.assert_close(folded.encode(_x()), sae.encode(_x()))
    torch.testing.assert_close(folded(_x()), sae(_x()))


def test_a_failed_save_leaves_the_earlier_files_whole(tmp_path, monkeypatch):
    import llmasos_widgets.features._sae_saelens as saelens

    first = _random_sae("relu", seed=1)
    save_sae(first, tmp_path / "sae")

    def broken(tensors, path):
        Path(path).write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr("safetensors.torch.save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        save_sae(_random_sae("relu", seed=2), tmp_path / "sae")
    assert sorted(p.name for p in (tmp_path / "sae").iterdir()) == [
        "cfg.json",
        saelens.WEIGHTS_FILE,
    ]
    assert torch.equal(load_sae(tmp_path / "sae").W_enc, first.W_enc)
    with pytest.raises(OSError, match="disk full"):  # a new directory: none at all
        save_sae(_random_sae("relu", seed=2), tmp_path / "new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sae"]


def test_saving_over_a_file_is_refused(tmp_path):
    (tmp_path / "sae").write_text("keep")
    with pytest.raises(ValueError, match="is a file; save_sae writes a directory"):
        save_sae(_random_sae("relu"), tmp_path / "sae")
    assert (tmp_path / "sae").read_text() == "keep"


def test_unserialisable_metadata_is_refused_before_writing(tmp_path):
    with pytest.raises(ValueError, match="JSON-serialisable"):
        save_sae(_random_sae("relu", metadata={"when": object()}), tmp_path / "sae")
    assert not (tmp_path / "sae").exists()


# --------------------------------------------------------------- SAELens, other writers


def _saelens_dir(path: Path, cfg: dict, tensors: dict[str, torch.Tensor]) -> Path:
    path.mkdir(parents=True)
    (path / "cfg.json").write_text(json.dumps(cfg))
    save_file({k: v.contiguous() for k, v in tensors.items()}, path / "sae_weights.safetensors")
    return path


def _tensors(*, threshold: bool = False, seed: int = 3) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    tensors = {
        "W_enc": torch.randn(D_IN, D_SAE, generator=g),
        "W_dec": torch.randn(D_SAE, D_IN, generator=g),
        "b_enc": torch.randn(D_SAE, generator=g),
        "b_dec": torch.randn(D_IN, generator=g),
    }
    if threshold:
        tensors["threshold"] = torch.rand(D_SAE, generator=g)
    return tensors


def test_pre_6_saelens_topk_cfg_reads_k_from_activation_fn_kwargs(tmp_path):
    cfg = {  # as SAELens 5 wrote it: flat, hook_point, activation_fn_str
        "d_in": D_IN,
        "d_sae": D_SAE,
        "dtype": "float32",
        "device": "cpu",
        "model_name": "gpt2-small",
        "hook_point": "blocks.4.hook_resid_pre",
        "hook_point_head_index": None,
        "activation_fn_str": "topk",
        "activation_fn_kwargs": {"k": 4},
        "apply_b_dec_to_input": True,
        "normalize_activations": False,
        "finetuning_scaling_factor": False,
        "sae_lens_training_version": "3.13.0",
    }
    tensors = _tensors()
    sae = load_sae(_saelens_dir(tmp_path / "old", cfg, tensors))
    assert (sae.config.activation, sae.config.k, sae.site) == ("topk", 4, 4)
    assert all(torch.equal(getattr(sae, n), t) for n, t in tensors.items())
    x = _x()
    pre = (x - tensors["b_dec"]) @ tensors["W_enc"] + tensors["b_enc"]  # SAELens's process_sae_in
    values, idx = pre.topk(4, dim=-1)
    expected = torch.zeros_like(pre).scatter(-1, idx, values.relu())
    torch.testing.assert_close(sae.encode(x), expected)


def test_saelens_6_jumprelu_encodes_as_saelens(tmp_path):
    cfg = {
        "architecture": "jumprelu",
        "d_in": D_IN,
        "d_sae": D_SAE,
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": False,
        "normalize_activations": "none",
        "reshape_activations": "none",
        "metadata": {
            "sae_lens_version": "6.5.1",
            "model_name": "gemma-2-2b",
            "hook_name": "blocks.12.hook_resid_post",
            "hook_head_index": None,
        },
    }
    tensors = _tensors(threshold=True)
    tensors["threshold"][:3] = -5.0  # below 0, SAELens's relu decides
    sae = load_sae(_saelens_dir(tmp_path / "new", cfg, tensors))
    assert sae.site == 13 and sae.config.hook_name == "blocks.12.hook_resid_post"
    x = _x()
    pre = x @ tensors["W_enc"] + tensors["b_enc"]
    expected = pre.relu() * (pre > tensors["threshold"])  # JumpReLUSAE.encode
    torch.testing.assert_close(sae.encode(x), expected)


def test_saelens_scaling_factor_and_decoder_norm_rescaling_are_folded(tmp_path):
    tensors = _tensors()
    cfg = {
        "architecture": "topk",
        "k": 3,
        "rescale_acts_by_decoder_norm": True,
        "d_in": D_IN,
        "d_sae": D_SAE,
        "dtype": "float32",
        "apply_b_dec_to_input": True,
        "normalize_activations": "none",
        "metadata": {"sae_lens_version": "6.20.0", "hook_name": "blocks.0.hook_resid_post"},
    }
    sae = load_sae(_saelens_dir(tmp_path / "rescaled", cfg, tensors))
    x = _x()
    norms = tensors["W_dec"].norm(dim=-1)
    pre = ((x - tensors["b_dec"]) @ tensors["W_enc"] + tensors["b_enc"]) * norms
    values, idx = pre.topk(3, dim=-1)
    acts = torch.zeros_like(pre).scatter(-1, idx, values.relu())  # TopKSAE.encode
    torch.testing.assert_close(sae.encode(x), acts)
    recon = (acts / norms) @ tensors["W_dec"] + tensors["b_dec"]  # TopKSAE.decode
    torch.testing.assert_close(sae.decode(sae.encode(x)), recon)
    torch.testing.assert_close(sae.W_dec.norm(dim=-1), torch.ones(D_SAE))


def test_expected_average_normalisation_without_its_factor_asks_for_it(tmp_path):
    cfg = {
        "d_in": D_IN,
        "d_sae": D_SAE,
        "dtype": "float32",
        "normalize_activations": True,
        "hook_point": "blocks.1.hook_resid_pre",
    }
    path = _saelens_dir(tmp_path / "norm", cfg, _tensors())
    with pytest.raises(ValueError, match="pass input_scale="):
        load_sae(path)
    assert load_sae(path, input_scale=2.5).config.input_scale == 2.5


# ------------------------------------------------------------------------ Llama Scope


def _llama_scope_dir(path: Path, hyper: dict, *, seed: int = 5) -> tuple[Path, dict]:
    g = torch.Generator().manual_seed(seed)
    weights = {  # nn.Linear layout, as lm_saes saves its SparseAutoEncoder
        "encoder.weight": torch.randn(D_SAE, D_IN, generator=g),
        "encoder.bias": torch.randn(D_SAE, generator=g) * 0.1,
        "decoder.weight": torch.randn(D_IN, D_SAE, generator=g),
        "decoder.bias": torch.randn(D_IN, generator=g),
    }
    (path / "checkpoints").mkdir(parents=True)
    (path / "hyperparams.json").write_text(json.dumps(hyper))
    save_file(weights, path / "checkpoints" / "final.safetensors")
    return path, weights


def _llama_hyper(**overrides) -> dict:
    hyper = {  # the keys of a Llama Scope release's hyperparams.json
        "d_model": D_IN,
        "expansion_factor": 2,
        "d_sae": D_SAE,
        "hook_point_in": "blocks.3.hook_resid_post",
        "hook_point_out": "blocks.3.hook_resid_post",
        "use_decoder_bias": True,
        "apply_decoder_bias_to_pre_encoder": False,
        "norm_activation": "dataset-wise",
        "dataset_average_activation_norm": {"in": 4.2, "out": 4.2},
        "sparsity_include_decoder_norm": True,
        "act_fn": "jumprelu",
        "jump_relu_threshold": 0.05,
        "top_k": 3,
    }
    return {**hyper, **overrides}


def _lm_saes(weights: dict, hyper: dict, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(feature acts, reconstruction) as lm_saes computes them after from_config: the
    dataset-wise standardisation, then unit decoder norms, then its activation."""
    w = {k: v.double() for k, v in weights.items()}
    s_in = math.sqrt(D_IN) / hyper["dataset_average_activation_norm"]["in"]
    s_out = math.sqrt(D_IN) / hyper["dataset_average_activation_norm"]["out"]
    w["encoder.bias"] = w["encoder.bias"] / s_in
    w["decoder.bias"] = w["decoder.bias"] / s_out
    w["decoder.weight"] = w["decoder.weight"] * s_in / s_out
    norm = w["decoder.weight"].norm(dim=0)
    w["decoder.weight"] = w["decoder.weight"] / norm
    w["encoder.weight"] = w["encoder.weight"] * norm[:, None]
    w["encoder.bias"] = w["encoder.bias"] * norm
    hidden = x.double() @ w["encoder.weight"].T + w["encoder.bias"]
    if hyper["act_fn"] == "jumprelu":
        acts = hidden.where(hidden > hyper["jump_relu_threshold"], 0)
    else:
        relu = hidden.clamp(min=0)
        top = relu.topk(hyper["top_k"], dim=-1)
        acts = torch.zeros_like(relu).scatter(-1, top.indices, relu.gather(-1, top.indices))
    return acts, acts @ w["decoder.weight"].T + w["decoder.bias"]


@pytest.mark.parametrize(
    "hyper",
    [
        pytest.param(_llama_hyper(), id="jumprelu"),
        pytest.param(_llama_hyper(act_fn="topk", jump_relu_threshold=0.0), id="topk"),
        pytest.param(
            _llama_hyper(dataset_average_activation_norm={"in": 4.2, "out": 3.1}),
            id="in-out-norms-differ",
        ),
    ],
)
def test_llama_scope_matches_lm_saes_in_saelens_units(tmp_path, hyper):
    path, weights = _llama_scope_dir(tmp_path / "L3R", hyper)
    sae = load_sae(path)
    assert sae.site == 4 and sae.config.hook_name == "blocks.3.hook_resid_post"  # L3R
    same = load_sae(path / "checkpoints" / "final.safetensors")  # the weights file named
    assert torch.equal(same.W_enc, sae.W_enc)
    assert torch.equal(load_sae(tmp_path, subfolder="L3R").W_dec, sae.W_dec)
    s_in = math.sqrt(D_IN) / 4.2
    assert sae.config.input_scale == pytest.approx(s_in)
    x = _x() * 3
    acts, recon = _lm_saes(weights, hyper, x)
    assert acts.count_nonzero() > 0 and (acts == 0).any()
    # SAELens's units: each activation is that of the normalised input (lm_saes's * s_in)
    torch.testing.assert_close(sae.encode(x).double(), acts * s_in, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(sae(x).double(), recon, rtol=1e-5, atol=1e-5)
    expected_kind = "topk" if hyper["act_fn"] == "topk" else "jumprelu"
    assert sae.config.activation == expected_kind


def test_llama_scope_without_folding_keeps_the_file_weights(tmp_path):
    hyper = _llama_hyper(sparsity_include_decoder_norm=False, norm_activation="inference")
    path, weights = _llama_scope_dir(tmp_path / "L0R", hyper)
    sae = load_sae(path)
    assert torch.equal(sae.W_enc, weights["encoder.weight"].T)
    assert torch.equal(sae.W_dec, weights["decoder.weight"].T)
    assert torch.equal(sae.b_enc, weights["encoder.bias"])
    assert torch.equal(sae.b_dec, weights["decoder.bias"])
    assert torch.equal(sae.threshold, torch.full((D_SAE,), 0.05))


def test_a_minimal_llama_scope_file_reads_as_saelens_reads_it(tmp_path):
    """Keys omitted, as in SAELens's own Llama Scope test: the dataset-wise normalisation
    from the given norm, JumpReLU from the threshold, no b_dec on the input. With unit decoder
    columns (the release's) the result is SAELens's llama_scope loader after its
    fold_activation_norm_scaling_factor(norm_scaling_factor)."""
    hyper = {
        "d_model": D_IN,
        "d_sae": D_SAE,
        "hook_point_in": "blocks.1.hook_resid_pre",
        "jump_relu_threshold": 0.02,
        "dataset_average_activation_norm": {"in": 50.0},
    }
    path, weights = _llama_scope_dir(tmp_path / "L0R", hyper)
    unit = weights["decoder.weight"] / weights["decoder.weight"].norm(dim=0)
    save_file({**weights, "decoder.weight": unit}, path / "checkpoints" / "final.safetensors")
    sae = load_sae(path)
    assert sae.site == 1 and not sae.config.apply_b_dec_to_input
    s = math.sqrt(D_IN) / 50.0  # SAELens's norm_scaling_factor
    w_enc, w_dec = weights["encoder.weight"].T * s, unit.T / s  # folded as SAELens folds
    b_enc, b_dec = weights["encoder.bias"], weights["decoder.bias"] / s
    x = _x() * 40
    pre = x @ w_enc + b_enc
    acts = pre.relu() * (pre > 0.02 * s)  # JumpReLUSAE.encode, threshold scaled by s
    assert acts.count_nonzero() > 0 and (acts == 0).any()
    torch.testing.assert_close(sae.encode(x), acts, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(sae(x), acts @ w_dec + b_dec, rtol=1e-5, atol=1e-4)


def test_llama_scope_folder_names_give_the_site_when_hyperparams_do_not(tmp_path):
    hyper = {k: v for k, v in _llama_hyper().items() if not k.startswith("hook_point")}
    path, _ = _llama_scope_dir(tmp_path / "Llama3_1-8B-Base-L15R-8x", hyper)
    sae = load_sae(path)
    assert sae.site == 16 and sae.config.hook_name == "blocks.15.hook_resid_post"
    mlp, _ = _llama_scope_dir(tmp_path / "Llama3_1-8B-Base-L15M-8x", hyper)
    with pytest.raises(ValueError, match="L15M SAE .*not a residual site"):
        load_sae(mlp)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"hook_point_in": "blocks.3.hook_mlp_out", "hook_point_out": "blocks.3.hook_mlp_out"},
            "not a residual-stream site",
        ),
        ({"hook_point_out": "blocks.3.hook_mlp_out"}, "transcoder"),
        ({"norm_activation": "token-wise"}, "each token"),
    ],
)
def test_llama_scope_sites_and_normalisations_we_cannot_show_are_refused(
    tmp_path, overrides, message
):
    path, _ = _llama_scope_dir(tmp_path / "L3M", _llama_hyper(**overrides))
    with pytest.raises(ValueError, match=message):
        load_sae(path)


# ------------------------------------------------------------------------ Gemma Scope


def _gemma_scope_dir(path: Path, seed: int = 7) -> tuple[Path, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    params = {
        "W_enc": rng.standard_normal((D_IN, D_SAE)).astype(np.float32),
        "W_dec": rng.standard_normal((D_SAE, D_IN)).astype(np.float32),
        "b_enc": rng.standard_normal(D_SAE).astype(np.float32),
        "b_dec": rng.standard_normal(D_IN).astype(np.float32),
        "threshold": rng.random(D_SAE).astype(np.float32),
    }
    path.mkdir(parents=True)
    np.savez(path / "params.npz", **params)
    return path, params


def test_gemma_scope_jumprelu_and_its_site_from_the_folder(tmp_path):
    path, params = _gemma_scope_dir(tmp_path / "layer_12" / "width_16k" / "average_l0_82")
    sae = load_sae(path / "params.npz")
    assert sae.site == 13 and sae.config.activation == "jumprelu"  # after L12
    assert not sae.config.apply_b_dec_to_input
    for name, array in params.items():
        assert torch.equal(getattr(sae, name), torch.from_numpy(array)), name
    x = _x().numpy()
    pre = x @ params["W_enc"] + params["b_enc"]  # Gemma Scope: no b_dec subtracted
    expected = pre * (pre > params["threshold"])
    np.testing.assert_allclose(
        sae.encode(torch.from_numpy(x)).detach().numpy(), expected, rtol=1e-6, atol=1e-6
    )
    recon = expected @ params["W_dec"] + params["b_dec"]
    np.testing.assert_allclose(
        sae(torch.from_numpy(x)).detach().numpy(), recon, rtol=1e-5, atol=1e-5
    )


def test_gemma_scope_embedding_saes_read_emb_rescaled_as_saelens_does(tmp_path):
    path, params = _gemma_scope_dir(tmp_path / "gemma-scope-2b-pt-res" / "embedding" / "w_4k")
    sae = load_sae(path)
    assert sae.site == 0 and sae.config.hook_name == "hook_embed"
    torch.testing.assert_close(sae.W_enc, torch.from_numpy(params["W_enc"]) / math.sqrt(D_IN))
    torch.testing.assert_close(sae.W_dec, torch.from_numpy(params["W_dec"]) * math.sqrt(D_IN))


def test_gemma_scope_site_from_the_caller_and_conflicts(tmp_path):
    path, _ = _gemma_scope_dir(tmp_path / "my_embedding_layer_9s")  # no Gemma Scope folder
    with pytest.raises(ValueError, match="pass site="):
        load_sae(path)
    assert load_sae(path, site=5).site == 5
    named, _ = _gemma_scope_dir(tmp_path / "layer_3")
    with pytest.raises(ValueError, match="site 4 .after L3.*site=2"):
        load_sae(named, site=2)
    mlp, _ = _gemma_scope_dir(tmp_path / "gemma-scope-2b-pt-mlp" / "layer_3")
    with pytest.raises(ValueError, match="MLP or attention"):
        load_sae(mlp)


# ------------------------------------------------------------------ errors and checks


def test_unknown_and_corrupt_files_say_what_was_expected(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"'.*empty' holds no SAE files.*cfg\.json"):
        load_sae(tmp_path / "empty")
    with pytest.raises(ValueError, match="does not exist"):
        load_sae(tmp_path / "missing")
    sae_dir = save_sae(_random_sae("relu"), tmp_path / "sae")
    with pytest.raises(ValueError, match="not in gemma-scope format: it has no params.npz"):
        load_sae(sae_dir, format="gemma-scope")
    with pytest.raises(ValueError, match="unknown SAE format"):
        load_sae(sae_dir, format="sparsify")
    (sae_dir / "sae_weights.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match="sae_weights.safetensors is not a readable"):
        load_sae(sae_dir)
    (sae_dir / "cfg.json").write_text("{")
    with pytest.raises(ValueError, match="cfg.json is not readable JSON"):
        load_sae(sae_dir)
    gemma, _ = _gemma_scope_dir(tmp_path / "layer_1")
    (gemma / "params.npz").write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(ValueError, match="params.npz is not a readable"):
        load_sae(gemma)


@pytest.mark.parametrize(
    "hook",
    [
        "blocks.2.hook_mlp_out",
        "blocks.2.attn.hook_z",
        "blocks.2.hook_resid_mid",
        "blocks.2.hook_attn_out",
    ],
)
def test_non_residual_hooks_are_refused_naming_the_sites_we_read(tmp_path, hook):
    cfg = {
        "architecture": "standard",
        "d_in": D_IN,
        "d_sae": D_SAE,
        "dtype": "float32",
        "metadata": {"sae_lens_version": "6.0.0", "hook_name": hook},
    }
    path = _saelens_dir(tmp_path / "sae", cfg, _tensors())
    with pytest.raises(ValueError, match=r"not a residual-stream site.*hook_resid_post \(site"):
        load_sae(path)


def test_shapes_that_disagree_with_the_cfg_are_refused(tmp_path):
    cfg = {
        "architecture": "standard",
        "d_in": D_IN + 1,
        "d_sae": D_SAE,
        "dtype": "float32",
        "metadata": {"sae_lens_version": "6.0.0", "hook_name": "blocks.0.hook_resid_pre"},
    }
    with pytest.raises(ValueError, match="d_in=7.*W_enc is \\[6, 10\\]"):
        load_sae(_saelens_dir(tmp_path / "sae", cfg, _tensors()))


def test_dtype_and_device_options(tmp_path):
    save_sae(_random_sae("relu"), tmp_path / "sae")
    sae = load_sae(tmp_path / "sae", dtype="bfloat16", device="cpu")
    assert sae.W_enc.dtype == torch.bfloat16
    save_sae(sae, tmp_path / "bf16")
    assert json.loads((tmp_path / "bf16" / "cfg.json").read_text())["dtype"] == "bfloat16"
    assert load_sae(tmp_path / "bf16").W_dec.dtype == torch.bfloat16


class _Config:
    hidden_size, num_hidden_layers = D_IN, 2


class _Model:
    name, config = "toy", _Config()


def test_check_sae_for_names_both_sizes():
    check_sae_for(_Model(), _random_sae("relu", site=2))
    with pytest.raises(ValueError, match="d_in=6 but toy's residual stream has hidden_size=8"):
        model = _Model()
        model.config = type("C", (), {"hidden_size": 8, "num_hidden_layers": 2})()
        check_sae_for(model, _random_sae("relu"))
    with pytest.raises(ValueError, match=r"site 3 \(after L2\) but toy has 2 layers"):
        check_sae_for(_Model(), _random_sae("relu", site=3))
