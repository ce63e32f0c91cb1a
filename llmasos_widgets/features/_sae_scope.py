"""Llama Scope and Gemma Scope files, read as their own code reads them.

**Llama Scope** (OpenMOSS ``lm_saes``, the release's ``hyperparams.json`` +
``checkpoints/final.safetensors``): ``encoder``/``decoder`` are ``nn.Linear`` weights
(``encoder.weight`` ``[d_sae, d_model]``, ``decoder.weight`` ``[d_model, d_sae]``). lm_saes's
``from_config`` turns a ``dataset-wise`` checkpoint into its inference form: with
``s_in = sqrt(d_model) / dataset_average_activation_norm["in"]`` (``s_out`` likewise), the
encoder bias is divided by ``s_in``, the decoder bias by ``s_out``, the decoder weight
multiplied by ``s_in / s_out``; with ``sparsity_include_decoder_norm`` the decoder columns are
then made unit-norm and the norms moved into the encoder; a ``topk`` SAE with a positive
``jump_relu_threshold`` becomes a JumpReLU, whose scalar threshold compares with the
pre-activations of *raw* inputs. We keep SAELens's units instead (its Llama Scope loader
folds ``s_in`` so that activations are those of normalised inputs, as Neuronpedia shows them):
``input_scale = s_in`` and the threshold ``s_in * jump_relu_threshold``. The reconstruction is
lm_saes's; each activation is lm_saes's times ``s_in``.

**Gemma Scope** (``params.npz``: ``W_enc``, ``W_dec``, ``b_enc``, ``b_dec``, ``threshold``):
JumpReLU on ``x @ W_enc + b_enc`` (no ``b_dec`` subtracted, no normalisation). The site is in
the folder name (``layer_12/width_16k/average_l0_82`` = after L12) or ``site=``; embedding
SAEs are rescaled by ``sqrt(d_in)`` as SAELens's loader does.
"""

from __future__ import annotations

import math
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from llmasos_widgets.features._sae import SAEConfig, SparseAutoencoder
from llmasos_widgets.features._sae_saelens import build, read_json, read_safetensors
from llmasos_widgets.features._sae_sites import resolve_site, site_for_hook

LLAMA_SCOPE_WEIGHTS = "checkpoints/final.safetensors"
# lm_saes's SAEConfig defaults (the release's version) for keys a hyperparams.json omits
_LM_SAES_DEFAULTS: dict[str, Any] = {
    "act_fn": "relu",
    "jump_relu_threshold": 0.0,
    "use_decoder_bias": True,
    "norm_activation": "token-wise",
    "sparsity_include_decoder_norm": True,
    "use_glu_encoder": False,
    "top_k": 50,
}


def _hyperparams(directory: Path, where: str) -> dict[str, Any]:
    """hyperparams.json with lm_saes's defaults, except where SAELens's Llama Scope loader
    (which reads these releases without lm_saes) fixes a value for files that omit it: the
    dataset-wise normalisation when its norms are given, JumpReLU when a threshold is, and no
    decoder bias subtracted from the input."""
    given = read_json(directory / "hyperparams.json", where)
    hyper = {**_LM_SAES_DEFAULTS, "apply_decoder_bias_to_pre_encoder": False, **given}
    if "norm_activation" not in given and "dataset_average_activation_norm" in given:
        hyper["norm_activation"] = "dataset-wise"
    if "act_fn" not in given and "jump_relu_threshold" in given:
        hyper["act_fn"] = "jumprelu"
    return hyper


def read_llama_scope(
    directory: Path, *, site: int | None, dtype: torch.dtype | None, where: str, source: str
) -> SparseAutoencoder:
    hyper = _hyperparams(directory, where)
    hook = str(hyper.get("hook_point_in") or "") or _llama_scope_hook(
        f"{source}/{directory}", where
    )
    if str(hyper.get("hook_point_out") or hook) != hook:
        raise ValueError(
            f"{where} is a transcoder ({hook!r} -> {hyper['hook_point_out']!r}); only SAEs "
            "that reconstruct the site they read are loaded"
        )
    chosen = resolve_site(
        site_for_hook(hook, where=where) if hook else None, site, hook=hook, where=where
    )
    if hyper["use_glu_encoder"]:
        raise ValueError(f"{where} has a gated (GLU) encoder, which is not supported")
    weights = read_safetensors(directory / LLAMA_SCOPE_WEIGHTS, where)
    for key in ("encoder.weight", "encoder.bias", "decoder.weight"):
        if key not in weights:
            raise ValueError(f"{where}: {LLAMA_SCOPE_WEIGHTS} has no {key!r}")
    file_dtype = weights["encoder.weight"].dtype
    compute = torch.float64  # the rescaling in double, then one rounding to the file's dtype
    encoder = weights["encoder.weight"].to(compute)  # [d_sae, d_in]
    decoder = weights["decoder.weight"].to(compute)  # [d_in, d_sae]
    d_sae, d_in = encoder.shape
    if hyper.get("d_model", d_in) != d_in or tuple(decoder.shape) != (d_in, d_sae):
        raise ValueError(
            f"{where}: hyperparams.json says d_model={hyper.get('d_model')}, but encoder.weight "
            f"is {list(encoder.shape)} and decoder.weight {list(decoder.shape)}"
        )
    b_enc = weights["encoder.bias"].to(compute)
    b_dec = weights.get("decoder.bias", torch.zeros(d_in, dtype=file_dtype)).to(compute)
    if not hyper["use_decoder_bias"]:
        b_dec = torch.zeros(d_in, dtype=compute)
    s_in, s_out = _scales(hyper, d_in, where)
    ratio = s_in / s_out
    decoder = decoder * ratio if ratio != 1.0 else decoder
    b_dec = b_dec * ratio if ratio != 1.0 else b_dec
    if hyper["apply_decoder_bias_to_pre_encoder"] and ratio != 1.0:
        raise ValueError(f"{where} subtracts an output-scaled decoder bias from its input")
    folded = []
    if hyper["sparsity_include_decoder_norm"]:  # lm_saes's transform_to_unit_decoder_norm
        norms = decoder.norm(dim=0)
        norms = norms.where(norms > 0, 1.0)  # a dead latent's zero column stays zero, not NaN
        decoder, encoder, b_enc = decoder / norms, encoder * norms[:, None], b_enc * norms
        folded.append("decoder_norms")
    activation, k, threshold = _llama_scope_activation(hyper, s_in, where)
    config = SAEConfig(
        d_in=d_in,
        d_sae=d_sae,
        site=chosen,
        activation=activation,
        k=k,
        apply_b_dec_to_input=bool(hyper["apply_decoder_bias_to_pre_encoder"]),
        input_scale=s_in,
        model_name=str(hyper.get("model_name") or ""),
        hook_name=hook,
        metadata={"format": "llama-scope", "folded": folded, "lm_saes_act_fn": hyper["act_fn"]},
    )
    tensors = {
        "W_enc": encoder.T,
        "W_dec": decoder.T,
        "b_enc": b_enc,
        "b_dec": b_dec,
        "threshold": torch.full((d_sae,), threshold, dtype=compute),
    }
    return build(config, tensors, dtype=dtype or file_dtype, where=where)


def _llama_scope_hook(named: str, where: str) -> str:
    """The hook of a Llama Scope folder named like ``Llama3_1-8B-Base-L15R-8x``: ``L{i}R`` is
    the residual stream after layer ``i``; ``A`` (attention), ``M`` (MLP) and ``TC``
    (transcoder) are not residual sites."""
    found = re.findall(r"(?:^|[-_/])L(\d+)(R|A|M|TC)(?=[-_/]|$)", named.replace("\\", "/"))
    if not found:
        return ""
    layer, kind = found[-1]
    if kind != "R":
        raise ValueError(
            f"{where} is Llama Scope's L{layer}{kind} SAE (attention output, MLP output or "
            "transcoder), not a residual site; load an L{i}R SAE (residual after layer i)"
        )
    return f"blocks.{layer}.hook_resid_post"


def _scales(hyper: dict[str, Any], d_in: int, where: str) -> tuple[float, float]:
    mode = hyper["norm_activation"]
    if mode in ("inference", "none"):
        return 1.0, 1.0
    if mode != "dataset-wise":
        raise ValueError(
            f"{where} normalises each token or batch ({mode!r}); only a dataset-wise "
            "(constant) normalisation can be read"
        )
    norms = hyper.get("dataset_average_activation_norm")
    if isinstance(norms, dict) and "out" not in norms:
        norms = {**norms, "out": norms.get("in")}  # an SAE reconstructs what it reads
    if not isinstance(norms, dict) or not all(
        isinstance(norms.get(k), (int, float)) and norms[k] > 0 for k in ("in", "out")
    ):
        raise ValueError(f"{where}: dataset_average_activation_norm needs a positive 'in'")
    return math.sqrt(d_in) / norms["in"], math.sqrt(d_in) / norms["out"]


def _llama_scope_activation(
    hyper: dict[str, Any], s_in: float, where: str
) -> tuple[str, int | None, float]:
    act_fn = str(hyper["act_fn"]).lower()
    threshold = float(hyper["jump_relu_threshold"])
    if act_fn == "jumprelu" or (act_fn == "topk" and threshold > 0):
        # lm_saes compares raw-input pre-activations with it; ours are s_in times larger
        return "jumprelu", None, threshold * s_in
    if act_fn == "topk":
        return "topk", int(hyper["top_k"]), 0.0
    if act_fn == "relu":
        return "relu", None, 0.0
    raise ValueError(f"{where} has activation {act_fn!r}; readable: relu, topk, jumprelu")


def read_gemma_scope(
    directory: Path, *, site: int | None, dtype: torch.dtype | None, where: str, source: str
) -> SparseAutoencoder:
    path = directory / "params.npz"
    try:
        with np.load(path) as data:
            arrays = {_gemma_key(key): np.asarray(data[key]) for key in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise ValueError(f"{where}: params.npz is not a readable .npz file ({error})") from error
    missing = {"W_enc", "W_dec", "b_enc", "b_dec", "threshold"} - set(arrays)
    if missing:
        raise ValueError(f"{where}: params.npz has no {', '.join(sorted(missing))}")
    named = f"{source}/{directory}".replace("\\", "/")
    if re.search(r"gemma-scope[^/]*-(mlp|att|transcoder)", named):
        raise ValueError(
            f"{where} reads MLP or attention outputs (its repository says so), not a "
            "residual site; load a '-res' Gemma Scope SAE"
        )
    # Gemma Scope's folders: layer_{i}/width_.../average_l0_... and embedding/width_.../...
    embedding = re.search(r"(?:^|/)embedding(?:/|$)", named) is not None
    layers = re.findall(r"(?:^|/)layer_(\d+)(?=/|$)", named)
    found, hook = (0, "hook_embed") if embedding else (None, "")
    if layers and not embedding:
        found, hook = int(layers[-1]) + 1, f"blocks.{layers[-1]}.hook_resid_post"
    chosen = resolve_site(found, site, hook=hook, where=where)
    tensors = {name: torch.from_numpy(array.copy()) for name, array in arrays.items()}
    d_in, d_sae = tensors["W_enc"].shape
    if embedding:  # as SAELens's gemma_2 loader: trained on a differently scaled embedding
        tensors["W_enc"] = tensors["W_enc"] / math.sqrt(d_in)
        tensors["W_dec"] = tensors["W_dec"] * math.sqrt(d_in)
    config = SAEConfig(
        d_in=int(d_in),
        d_sae=int(d_sae),
        site=chosen,
        activation="jumprelu",
        apply_b_dec_to_input=False,
        hook_name=hook,
        metadata={"format": "gemma-scope"},
    )
    return build(config, tensors, dtype=dtype or tensors["W_enc"].dtype, where=where)


def _gemma_key(key: str) -> str:
    """SAELens's renaming: ``w_enc`` -> ``W_enc``."""
    return "W_" + key[2:] if key.startswith("w_") else key
