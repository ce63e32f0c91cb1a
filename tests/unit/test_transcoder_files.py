"""load_transcoder / save_transcoder against files written here as circuit-tracer, Gemma Scope and
Gemma Scope 2 lay them out (decoderesearch/circuit-tracer@4bb8c0e,
circuit_tracer/transcoder/single_layer_transcoder.py), each checked on one input whose output
was worked out by hand. No network.

The hand case (every format encodes the same transcoder): x = [2, 3];
encoder rows (per latent) [1, 0], [0, 1], [1, 1] and b_enc = [0, -0.5, -6] give pre-activations
[2, 2.5, -1]; decoder rows [1, 0], [0, 2], [5, 5] and b_dec = [0.5, -0.5]; the skip maps x to
[x_1, 0] = [3, 0].
* ReLU: f = [2, 2.5, 0] -> [2, 5] + b_dec = [2.5, 4.5]; with the skip [5.5, 4.5].
* JumpReLU, thresholds [1, 3, 0]: f = [2, 0, 0] -> [2.5, -0.5] (with the skip [5.5, -0.5]).
* TopK, k = 1: f = [0, 2.5, 0] -> [0.5, 4.5].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from llmasos_widgets.features import (
    Transcoder,
    TranscoderConfig,
    load_transcoder,
    load_transcoders,
    save_transcoder,
)

X = torch.tensor([[2.0, 3.0]])
ENC = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # [d_tc, d_in]: one row per latent
B_ENC = torch.tensor([0.0, -0.5, -6.0])
DEC = torch.tensor([[1.0, 0.0], [0.0, 2.0], [5.0, 5.0]])  # [d_tc, d_out]
B_DEC = torch.tensor([0.5, -0.5])
SKIP_OUT_IN = torch.tensor([[0.0, 1.0], [0.0, 0.0]])  # circuit-tracer's [d_out, d_in]
THRESHOLD = torch.tensor([1.0, 3.0, 0.0])


def _layer_file(path: Path, **extra: torch.Tensor) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"W_enc": ENC, "W_dec": DEC, "b_enc": B_ENC, "b_dec": B_DEC, **extra}, path)
    return path


def _config(directory: Path, **fields) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    config = {
        "model_kind": "transcoder_set",
        "model_name": "hand-made",
        "feature_input_hook": "ln2.hook_normalized",
        "feature_output_hook": "hook_mlp_out",
        **fields,
    }
    (directory / "config.yaml").write_text(yaml.safe_dump(config))


def _out(transcoder: Transcoder) -> list[float]:
    with torch.no_grad():
        return transcoder(X)[0].tolist()


# ------------------------------------------------------------------ circuit-tracer sets


def test_a_skip_transcoder_set_reading_resid_mid(tmp_path):
    _config(tmp_path, feature_input_hook="hook_resid_mid", activation="relu")
    _layer_file(tmp_path / "layer_0.safetensors", W_skip=SKIP_OUT_IN)
    transcoder = load_transcoder(tmp_path)
    assert _out(transcoder) == [5.5, 4.5]
    c = transcoder.config
    assert (c.layer, c.activation, c.skip_connection, c.input_site) == (
        0,
        "relu",
        True,
        "resid_mid",
    )
    assert c.model_name == "hand-made" and c.metadata["source"] == str(tmp_path)


def test_thresholds_in_the_file_make_it_jumprelu(tmp_path):
    _config(tmp_path)
    _layer_file(tmp_path / "layer_0.safetensors", **{"activation_function.threshold": THRESHOLD})
    transcoder = load_transcoder(tmp_path / "layer_0.safetensors")
    assert transcoder.config.activation == "jumprelu" and _out(transcoder) == [2.5, -0.5]


def test_topk_from_the_config_or_from_a_k_in_the_file(tmp_path):
    _config(tmp_path / "a", activation="topk", k=1)
    _layer_file(tmp_path / "a" / "layer_0.safetensors")
    _config(tmp_path / "b")
    _layer_file(tmp_path / "b" / "layer_0.safetensors", k=torch.tensor(1))  # to_safetensors'
    for directory in ("a", "b"):
        transcoder = load_transcoder(tmp_path / directory)
        assert (transcoder.config.activation, transcoder.config.k) == ("topk", 1)
        assert _out(transcoder) == [0.5, 4.5]


def test_a_set_loads_every_layer_or_the_one_asked_for(tmp_path):
    _config(tmp_path)
    for layer in (0, 1, 2):
        _layer_file(tmp_path / f"layer_{layer}.safetensors")
    every = load_transcoders(tmp_path)
    assert [t.layer for t in every] == [0, 1, 2]
    assert [t.layer for t in load_transcoders(tmp_path, layers=[2, 0])] == [0, 2]
    assert load_transcoder(tmp_path, layer=1).layer == 1
    with pytest.raises(ValueError, match=r"layers \[0, 1, 2\]: pass layer="):
        load_transcoder(tmp_path)
    with pytest.raises(ValueError, match=r"no transcoder for layer\(s\) \[5\]"):
        load_transcoder(tmp_path, layer=5)


def test_a_transcoders_list_may_point_at_gemma_scope_npz_files(tmp_path):
    """circuit-tracer's Gemma configs list per-layer params.npz files (layer i at index i)."""
    _gemma_scope_npz(tmp_path / "files" / "layer_5" / "params.npz")
    _layer_file(tmp_path / "files" / "first.safetensors")
    npz = str(tmp_path / "files" / "layer_5" / "params.npz")
    _config(tmp_path / "set", transcoders=["../files/first.safetensors", npz])
    first, second = load_transcoders(tmp_path / "set")
    assert (first.layer, second.layer) == (0, 1)  # the list's order, not the folder name
    assert _out(first) == [2.5, 4.5] and _out(second) == [2.5, -0.5]


# ------------------------------------------------------------------ Gemma Scope (1 and 2)


def _gemma_scope_npz(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, W_enc=ENC.T.numpy(), W_dec=DEC.numpy(), b_enc=B_ENC.numpy(),
             b_dec=B_DEC.numpy(), threshold=THRESHOLD.numpy())  # fmt: skip
    return path


def test_gemma_scope_params_npz_takes_its_layer_from_the_folder(tmp_path):
    path = _gemma_scope_npz(tmp_path / "layer_7" / "width_16k" / "average_l0_76" / "params.npz")
    transcoder = load_transcoder(path.parent)
    assert transcoder.layer == 7 and transcoder.config.activation == "jumprelu"
    assert transcoder.config.input_site == "mlp_in" and _out(transcoder) == [2.5, -0.5]
    lone = _gemma_scope_npz(tmp_path / "elsewhere" / "params.npz")
    with pytest.raises(ValueError, match="pass layer="):
        load_transcoder(lone)
    assert load_transcoder(lone, layer=3).layer == 3


def test_gemma_scope_2_safetensors_with_an_affine_skip(tmp_path):
    path = tmp_path / "gs2.safetensors"
    save_file({"w_enc": ENC.T.contiguous(), "w_dec": DEC, "b_enc": B_ENC, "b_dec": B_DEC,
               "threshold": THRESHOLD, "affine_skip_connection": SKIP_OUT_IN.T.contiguous()},
              path)  # fmt: skip
    transcoder = load_transcoder(path, layer=4)
    assert transcoder.layer == 4 and transcoder.config.skip_connection
    assert _out(transcoder) == [5.5, -0.5]


# ------------------------------------------------------------------ ours, for circuit-tracer


def _random(activation: str, skip: bool, layer: int = 0, seed: int = 0) -> Transcoder:
    torch.manual_seed(seed)
    transcoder = Transcoder(TranscoderConfig(
        d_in=4, d_transcoder=6, d_out=4, layer=layer, activation=activation,
        k=2 if activation == "topk" else None, skip_connection=skip, metadata={"seed": seed},
    ))  # fmt: skip
    with torch.no_grad():
        for tensor in transcoder.parameters():
            tensor.copy_(torch.randn_like(tensor))
        transcoder.threshold.copy_(torch.rand(6) if activation == "jumprelu" else 0)
    return transcoder.eval()


@pytest.mark.parametrize(
    ("activation", "skip"), [("relu", True), ("topk", False), ("jumprelu", True)]
)
def test_save_then_load_is_bitwise_the_same(tmp_path, activation, skip):
    transcoder = _random(activation, skip, layer=2)
    save_transcoder(transcoder, tmp_path / "set")
    loaded = load_transcoder(tmp_path / "set")
    for name, tensor in transcoder.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    assert loaded.config.activation == activation and loaded.config.k == transcoder.config.k
    assert loaded.layer == 2 and loaded.config.metadata["seed"] == 0


def test_saved_files_compute_what_circuit_tracer_computes_from_them(tmp_path):
    """The arithmetic of circuit-tracer's SingleLayerTranscoder on our files, written out:
    encode = F.linear(x, W_enc, b_enc), then its activation, decode = acts @ W_dec + b_dec +
    x @ W_skip.T; thresholds as activation_function.threshold; no other names (its
    load_state_dict is strict)."""
    transcoders = [_random("jumprelu", True, layer=n, seed=n) for n in (0, 1)]
    save_transcoder(transcoders, tmp_path, model_name="tiny-llama")
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert config["model_kind"] == "transcoder_set" and config["model_name"] == "tiny-llama"
    assert config["feature_input_hook"] == "ln2.hook_normalized"
    assert config["feature_output_hook"] == "hook_mlp_out" and "transcoders" not in config
    x = torch.randn(3, 4)
    for transcoder in transcoders:
        weights = load_file(tmp_path / f"layer_{transcoder.layer}.safetensors")
        assert set(weights) == {"W_enc", "W_dec", "b_enc", "b_dec", "W_skip",
                                "activation_function.threshold"}  # fmt: skip
        pre = torch.nn.functional.linear(x, weights["W_enc"], weights["b_enc"])
        acts = pre * (pre > weights["activation_function.threshold"])
        theirs = acts @ weights["W_dec"] + weights["b_dec"] + x @ weights["W_skip"].T
        with torch.no_grad():
            torch.testing.assert_close(transcoder(x), theirs)


def test_a_topk_set_says_its_k_in_the_config_not_the_weights(tmp_path):
    save_transcoder(_random("topk", False), tmp_path)
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert (config["activation"], config["k"]) == ("topk", 2)
    assert "k" not in load_file(tmp_path / "layer_0.safetensors")


def test_saving_again_replaces_the_set(tmp_path):
    save_transcoder([_random("relu", False, layer=n) for n in (0, 1, 2)], tmp_path)
    save_transcoder(_random("relu", False, layer=1), tmp_path)
    assert [t.layer for t in load_transcoders(tmp_path)] == [1]


def test_save_refuses_mixed_or_duplicate_sets(tmp_path):
    with pytest.raises(ValueError, match="one activation, k and input site"):
        save_transcoder([_random("relu", False), _random("topk", False, layer=1)], tmp_path)
    with pytest.raises(ValueError, match="two transcoders for one layer"):
        save_transcoder([_random("relu", False), _random("relu", False)], tmp_path)
    with pytest.raises(TypeError, match="saves a Transcoder"):
        save_transcoder([], tmp_path)


# ------------------------------------------------------------------ damaged and foreign files


def test_damaged_and_foreign_files_say_what_is_wrong(tmp_path):
    _config(tmp_path / "damaged")
    (tmp_path / "damaged" / "layer_0.safetensors").write_bytes(b"\x00not safetensors")
    with pytest.raises(ValueError, match="damaged or not safetensors"):
        load_transcoder(tmp_path / "damaged")
    _config(tmp_path / "foreign")
    _layer_file(tmp_path / "foreign" / "layer_0.safetensors", extra=torch.zeros(2))
    with pytest.raises(ValueError, match="names we do not read: extra"):
        load_transcoder(tmp_path / "foreign")
    _config(tmp_path / "shape")
    save_file({"W_enc": ENC, "W_dec": DEC.T.contiguous(), "b_enc": B_ENC, "b_dec": B_DEC},
              tmp_path / "shape" / "layer_0.safetensors")  # fmt: skip
    with pytest.raises(ValueError, match=r"W_dec has shape \(2, 3\), expected \(3, 2\)"):
        load_transcoder(tmp_path / "shape")
    (tmp_path / "bad.npz").write_bytes(b"PK not a zip")
    with pytest.raises(ValueError, match="damaged or not a .npz"):
        load_transcoder(tmp_path / "bad.npz", layer=0)
    save_file({"encoder.weight": ENC}, tmp_path / "sae.safetensors")
    with pytest.raises(ValueError, match="not a transcoder's weights"):
        load_transcoder(tmp_path / "sae.safetensors", layer=0)


def test_configs_we_cannot_honour_are_refused(tmp_path):
    _config(tmp_path / "clt", model_kind="cross_layer_transcoder")
    with pytest.raises(ValueError, match="cross-layer transcoder"):
        load_transcoder(tmp_path / "clt")
    (tmp_path / "clt_files").mkdir()
    save_file({"W_enc_0": ENC, "b_enc_0": B_ENC, "b_dec_0": B_DEC},
              tmp_path / "clt_files" / "W_enc_0.safetensors")  # fmt: skip
    with pytest.raises(ValueError, match="cross-layer transcoder"):
        load_transcoder(tmp_path / "clt_files")
    _config(tmp_path / "attn", feature_input_hook="attn.hook_z")
    with pytest.raises(ValueError, match="reads 'attn.hook_z'; supported"):
        load_transcoder(tmp_path / "attn")
    _config(tmp_path / "nok", activation="topk")
    with pytest.raises(ValueError, match="topk needs an int k"):
        load_transcoder(tmp_path / "nok")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no transcoder files"):
        load_transcoder(tmp_path / "empty")
    with pytest.raises(ValueError, match="does not exist"):
        load_transcoder(tmp_path / "missing")
    with pytest.raises(ValueError, match="unknown transcoder format"):
        load_transcoder(tmp_path, format="saelens")
