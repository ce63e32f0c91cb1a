"""Reading each transcoder file format into a :class:`Transcoder` (layouts: ``_transcoder_files``).

Every reader checks names and shapes before building anything and raises ``ValueError``
naming the file and what is wrong, so a damaged or foreign file never loads half-way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from llmasos_widgets.features._transcoder import Transcoder, TranscoderConfig

# circuit-tracer's hook names -> what our transcoders read (TransformerLens names)
INPUT_HOOKS = {
    "ln2.hook_normalized": "mlp_in",
    "mlp.hook_in": "mlp_in",
    "hook_resid_mid": "resid_mid",
}
OUTPUT_HOOKS = ("hook_mlp_out", "mlp.hook_out")
_LAYER_IN_PATH = re.compile(r"layer_(\d+)")
_CIRCUIT_TRACER_KEYS = {"W_enc", "W_dec", "b_enc", "b_dec"}
_CIRCUIT_TRACER_OPTIONAL = {"W_skip", "activation_function.threshold", "k"}
_GEMMA_SCOPE_KEYS = {"W_enc", "W_dec", "b_enc", "b_dec", "threshold"}
_GEMMA_SCOPE_2_KEYS = {"w_enc", "w_dec", "b_enc", "b_dec", "threshold"}


@dataclass(frozen=True)
class SetConfig:
    """What a transcoder set's ``config.yaml`` says (and the defaults for a lone file)."""

    input_site: str = "mlp_in"
    activation: str | None = None
    k: int | None = None
    model_name: str = ""
    transcoders: tuple[str, ...] | None = None
    """Per-layer files (layer ``i`` at index ``i``): ``hf://`` URIs or paths."""
    metadata: dict[int, dict[str, Any]] = field(default_factory=dict)


def default_config() -> SetConfig:
    return SetConfig()


def refuse_cross_layer(where: str) -> None:
    raise ValueError(
        f"{where} is a cross-layer transcoder (CLT): its features write to every later "
        "layer, which a per-layer Transcoder cannot hold; only per-layer transcoders "
        "(circuit-tracer's transcoder_set) are supported"
    )


def read_config(path: Path, where: str) -> SetConfig:
    import yaml

    try:
        raw = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ValueError(f"{where}: {path.name} is not readable YAML ({error})") from error
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: {path.name} must be a mapping, got {type(raw).__name__}")
    kind = raw.get("model_kind", "transcoder_set")
    if kind == "cross_layer_transcoder":
        refuse_cross_layer(where)
    if kind != "transcoder_set":
        raise ValueError(f"{where}: unknown model_kind {kind!r} (expected transcoder_set)")
    input_hook = raw.get("feature_input_hook", "ln2.hook_normalized")
    if input_hook not in INPUT_HOOKS:
        raise ValueError(
            f"{where} reads {input_hook!r}; supported feature_input_hook values: "
            f"{', '.join(INPUT_HOOKS)}"
        )
    output_hook = raw.get("feature_output_hook", "hook_mlp_out")
    if output_hook not in OUTPUT_HOOKS:
        raise ValueError(
            f"{where} writes {output_hook!r}; a transcoder here replaces an MLP "
            f"(feature_output_hook one of {', '.join(OUTPUT_HOOKS)})"
        )
    activation = raw.get("activation")
    if activation not in (None, "relu", "topk", "jumprelu", "jump_relu"):
        raise ValueError(f"{where}: unknown activation {activation!r} in {path.name}")
    k = raw.get("k")
    if activation == "topk" and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise ValueError(f"{where}: activation topk needs an int k >= 1 in {path.name}, got {k!r}")
    listed = raw.get("transcoders")
    if listed is not None and (
        not isinstance(listed, list) or not all(isinstance(p, str) for p in listed)
    ):
        raise ValueError(f"{where}: transcoders in {path.name} must be a list of file paths")
    ours = raw.get("llmasos") or {}
    layers_meta = ours.get("layers", {}) if isinstance(ours, dict) else {}
    return SetConfig(
        input_site=INPUT_HOOKS[input_hook],
        activation=activation,
        k=k if activation == "topk" else None,
        model_name=str(raw.get("model_name") or ""),
        transcoders=None if listed is None else tuple(listed),
        metadata={int(n): dict(m) for n, m in layers_meta.items() if isinstance(m, dict)},
    )


def layer_from_path(path: Path) -> int | None:
    """The layer a path names (``.../layer_12/width_16k/...`` or ``layer_12.safetensors``)."""
    found = _LAYER_IN_PATH.findall(path.as_posix())
    return int(found[-1]) if found else None


def layer_of(path: Path, layer: int | None, where: str) -> int:
    found = layer_from_path(path)
    if layer is not None:
        return layer
    if found is None:
        raise ValueError(f"{where}: the files do not say which layer {path.name} is; pass layer=")
    return found


def detect_file(path: Path, where: str) -> str:
    """The format of one weights file, from its suffix and names."""
    if path.suffix == ".npz":
        return "gemma-scope"
    if path.suffix != ".safetensors":
        raise ValueError(
            f"{where}: {path.name} is not a transcoder file we read (.safetensors or .npz)"
        )
    names = set(_safetensors_names(path, where))
    if "W_enc_0" in names:
        refuse_cross_layer(where)
    if "w_enc" in names:
        return "gemma-scope-2"
    if "W_enc" in names:
        return "circuit-tracer"
    raise ValueError(
        f"{where}: {path.name} holds {sorted(names)[:6]}, not a transcoder's weights "
        "(W_enc/W_dec/b_enc/b_dec, or Gemma Scope 2's w_enc/w_dec)"
    )


def _safetensors_names(path: Path, where: str) -> list[str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return list(f.keys())
    except Exception as error:  # safetensors raises its own error types for a bad header
        raise ValueError(f"{where}: {path.name} is damaged or not safetensors ({error})") from error


def _load_safetensors(path: Path, where: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as error:
        raise ValueError(f"{where}: {path.name} is damaged or not safetensors ({error})") from error


def _load_npz(path: Path, where: str) -> dict[str, torch.Tensor]:
    try:
        with np.load(path) as data:
            return {key: torch.from_numpy(np.array(data[key])) for key in data.files}
    except Exception as error:  # zipfile, pickle and format errors alike
        raise ValueError(f"{where}: {path.name} is damaged or not a .npz file ({error})") from error


def _check_names(weights: dict[str, Any], needed: set[str], optional: set[str], label: str) -> None:
    missing = sorted(needed - set(weights))
    if missing:
        raise ValueError(f"{label} lacks {', '.join(missing)}")
    foreign = sorted(set(weights) - needed - optional)
    if foreign:
        raise ValueError(f"{label} has names we do not read: {', '.join(foreign)}")


def _shape(tensor: torch.Tensor, expected: tuple[int, ...], name: str, label: str) -> None:
    if tuple(tensor.shape) != expected:
        raise ValueError(f"{label}: {name} has shape {tuple(tensor.shape)}, expected {expected}")


def _build(
    *,
    W_enc: torch.Tensor,  # [d_in, d_tc]
    W_dec: torch.Tensor,  # [d_tc, d_out]
    b_enc: torch.Tensor,
    b_dec: torch.Tensor,
    W_skip: torch.Tensor | None,  # [d_in, d_out]
    threshold: torch.Tensor | None,
    activation: str,
    k: int | None,
    layer: int,
    config: SetConfig,
    label: str,
    input_site: str | None = None,
) -> Transcoder:
    if W_enc.ndim != 2 or W_dec.ndim != 2 or b_dec.ndim != 1:
        raise ValueError(f"{label}: W_enc and W_dec must be matrices and b_dec a vector")
    d_in, d_tc = W_enc.shape
    d_out = b_dec.shape[0]
    _shape(W_dec, (d_tc, d_out), "W_dec", label)
    _shape(b_enc, (d_tc,), "b_enc", label)
    _shape(b_dec, (d_out,), "b_dec", label)
    if W_skip is not None:
        _shape(W_skip, (d_in, d_out), "W_skip (transposed to [in, out])", label)
    if threshold is not None:
        _shape(threshold.reshape(-1) if threshold.numel() == d_tc else threshold, (d_tc,),
               "threshold", label)  # fmt: skip
    try:
        tc_config = TranscoderConfig(
            d_in=int(d_in), d_transcoder=int(d_tc), d_out=int(d_out), layer=layer,
            activation=activation, k=k, skip_connection=W_skip is not None,
            model_name=config.model_name, metadata=dict(config.metadata.get(layer, {})),
            input_site=input_site or config.input_site,
        )  # fmt: skip
    except ValueError as error:
        raise ValueError(f"{label}: {error}") from error
    dtype = W_dec.dtype if W_dec.is_floating_point() else torch.float32
    with torch.device("meta"):
        transcoder = Transcoder(tc_config)
    state = {"W_enc": W_enc, "W_dec": W_dec, "b_enc": b_enc, "b_dec": b_dec}
    state["threshold"] = (
        torch.zeros(d_tc, dtype=dtype) if threshold is None else threshold.reshape(d_tc)
    )
    if W_skip is not None:
        state["W_skip"] = W_skip
    transcoder.load_state_dict(
        {name: t.to(dtype).contiguous() for name, t in state.items()}, assign=True
    )
    return transcoder.eval()


def read_layer_file(path: Path, layer: int, config: SetConfig, where: str) -> Transcoder:
    """One file of a transcoder set: circuit-tracer's layout, Gemma Scope's ``.npz`` or a
    Gemma Scope 2 file (``transcoders:`` lists may point at either)."""
    kind = detect_file(path, where)
    if kind != "circuit-tracer":
        return read_single(path, kind, layer, config, where)
    label = f"{where}: {path.name}"
    weights = _load_safetensors(path, where)
    _check_names(weights, _CIRCUIT_TRACER_KEYS, _CIRCUIT_TRACER_OPTIONAL, label)
    threshold = weights.get("activation_function.threshold")
    file_k = weights.get("k")
    k = config.k if config.k is not None else (None if file_k is None else int(file_k.item()))
    if threshold is not None:
        activation = "jumprelu"
    elif config.activation == "topk" or file_k is not None:
        activation = "topk"
    else:
        activation = "relu"
    skip = weights.get("W_skip")
    return _build(
        W_enc=weights["W_enc"].T, W_dec=weights["W_dec"], b_enc=weights["b_enc"],
        b_dec=weights["b_dec"], W_skip=None if skip is None else skip.T, threshold=threshold,
        activation=activation, k=k, layer=layer, config=config, label=label,
    )  # fmt: skip


def read_single(
    path: Path, kind: str, layer: int | None, config: SetConfig, where: str
) -> Transcoder:
    """A lone weights file of ``kind``; its layer is ``layer`` or the one its path names."""
    number = layer_of(path, layer, where)
    label = f"{where}: {path.name}"
    if kind == "circuit-tracer":
        return read_layer_file(path, number, config, where)
    if kind == "gemma-scope":
        weights = _load_npz(path, where)
        _check_names(weights, _GEMMA_SCOPE_KEYS, set(), label)
        return _build(
            W_enc=weights["W_enc"], W_dec=weights["W_dec"], b_enc=weights["b_enc"],
            b_dec=weights["b_dec"], W_skip=None, threshold=weights["threshold"],
            activation="jumprelu", k=None, layer=number, config=config, label=label,
            input_site="mlp_in",  # Gemma Scope transcoders read ln2.hook_normalized
        )  # fmt: skip
    weights = _load_safetensors(path, where)
    _check_names(weights, _GEMMA_SCOPE_2_KEYS, {"affine_skip_connection"}, label)
    return _build(
        W_enc=weights["w_enc"], W_dec=weights["w_dec"], b_enc=weights["b_enc"],
        b_dec=weights["b_dec"], W_skip=weights.get("affine_skip_connection"),
        threshold=weights["threshold"], activation="jumprelu", k=None, layer=number,
        config=config, label=label,
    )  # fmt: skip


def layer_paths(
    config: SetConfig, source: Any, wanted: list[int] | None, where: str
) -> dict[int, Path]:
    """Local paths of the set's layer files (fetched from the hub where needed): the
    config's ``transcoders:`` list, else ``layer_{i}.safetensors`` beside it."""
    paths: dict[int, Path] = {}
    if config.transcoders is not None:
        for number, entry in enumerate(config.transcoders):
            if wanted is None or number in wanted:
                paths[number] = source.resolve(entry)
    elif wanted is not None:
        for number in wanted:
            found = source.file(f"layer_{number}.safetensors")
            if found is not None:
                paths[number] = found
    else:
        paths = source.all_layer_files()
    missing = sorted(set(wanted or ()) - set(paths))
    if missing:
        have = (
            sorted(source.all_layer_files())
            if config.transcoders is None
            else list(range(len(config.transcoders)))
        )
        raise ValueError(f"{where} has no transcoder for layer(s) {missing}; it has {have}")
    if not paths:
        raise ValueError(f"{where} lists no layer files (layer_{{i}}.safetensors)")
    return paths
