"""SAELens's on-disk format: ``cfg.json`` + ``sae_weights.safetensors`` (+ the optional
``activation_scaler.json`` of its training checkpoints).

Written as SAELens 6 writes it (``SAE.save_model``: ``SAEConfig.to_dict()`` with
``architecture`` and a ``metadata`` object), so ``sae_lens.SAE.load_from_disk`` reads ours.
Read: that format and the pre-6 one (flat ``hook_point``/``hook_name``,
``activation_fn_str``/``activation_fn_kwargs``, boolean ``normalize_activations``, an
optional ``scaling_factor`` tensor), as SAELens's ``handle_pre_6_0_config`` reads it.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from llmasos_widgets.features._sae import SAEConfig, SparseAutoencoder
from llmasos_widgets.features._sae_sites import hook_for_site, resolve_site, site_for_hook

CFG_FILE = "cfg.json"
WEIGHTS_FILE = "sae_weights.safetensors"
SCALER_FILE = "activation_scaler.json"
# SAELens 6 reads a config without metadata.sae_lens_version as pre-6 and rebuilds it from
# flat keys (losing ours): this is the format version we write, not a package version.
FORMAT_VERSION = "6.0.0"
SITE_KEY = "llmasos_site"

_ARCHITECTURES = {"relu": "standard", "topk": "topk", "jumprelu": "jumprelu"}
_DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


# ---------------------------------------------------------------------------------- writing


def save_saelens(sae: SparseAutoencoder, directory: Path, *, fold_input_scale: bool) -> Path:
    """Write ``sae`` into ``directory`` (created; existing files of these names replaced).

    The files are written into a temporary directory first: a new ``directory`` is that one
    renamed (one atomic step); into an existing one each file is moved with ``os.replace``.
    Either way a failure leaves no partial file behind."""
    config = sae.config
    scale = config.input_scale
    fold = fold_input_scale and scale != 1.0
    texts = {CFG_FILE: json.dumps(_cfg_dict(sae, folded=fold), indent=2)}
    if scale != 1.0 and not fold:  # SAELens's own checkpoints keep the factor here
        texts[SCALER_FILE] = json.dumps({"scaling_factor": scale})
    tensors = _tensors_to_write(sae, fold=fold)
    fresh = not directory.exists()
    directory.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=directory.parent if fresh else directory, prefix=".saving-"))
    try:
        from safetensors.torch import save_file

        save_file(tensors, str(stage / WEIGHTS_FILE))
        for name, text in texts.items():
            (stage / name).write_text(text, encoding="utf-8")
        if fresh:
            os.replace(stage, directory)
        else:
            for name in [WEIGHTS_FILE, *texts]:
                os.replace(stage / name, directory / name)
            if SCALER_FILE not in texts:  # a stale factor from an earlier save would rescale
                (directory / SCALER_FILE).unlink(missing_ok=True)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return directory


def _tensors_to_write(sae: SparseAutoencoder, *, fold: bool) -> dict[str, torch.Tensor]:
    names = ["W_enc", "W_dec", "b_enc", "b_dec"]
    if sae.config.activation == "jumprelu":  # SAELens's other SAEs have no threshold
        names.append("threshold")
    tensors = {n: getattr(sae, n).detach().cpu().contiguous().clone() for n in names}
    if fold:  # as SAELens's fold_activation_norm_scaling_factor (b_enc, threshold unchanged)
        scale = sae.config.input_scale
        tensors["W_enc"] = tensors["W_enc"] * scale
        tensors["W_dec"] = tensors["W_dec"] / scale
        tensors["b_dec"] = tensors["b_dec"] / scale
    return tensors


def _cfg_dict(sae: SparseAutoencoder, *, folded: bool) -> dict[str, Any]:
    config = sae.config
    metadata: dict[str, Any] = dict(config.metadata)
    metadata.update(
        {
            "sae_lens_version": FORMAT_VERSION,
            "sae_lens_training_version": None,
            "model_name": config.model_name,
            "hook_name": hook_for_site(config.site),
            "hook_head_index": None,
            SITE_KEY: config.site,
        }
    )
    cfg: dict[str, Any] = {
        "architecture": _ARCHITECTURES[config.activation],
        "d_in": config.d_in,
        "d_sae": config.d_sae,
        "dtype": str(sae.W_enc.dtype).removeprefix("torch."),
        "device": "cpu",
        "apply_b_dec_to_input": config.apply_b_dec_to_input,
        "normalize_activations": (
            "none" if folded or config.input_scale == 1.0 else "expected_average_only_in"
        ),
        "reshape_activations": "none",
        "metadata": metadata,
    }
    if config.activation == "topk":
        cfg.update(k=config.k, rescale_acts_by_decoder_norm=False)
    try:
        json.dumps(cfg)
    except TypeError as error:
        raise ValueError(
            f"the SAE's metadata must be JSON-serialisable to be saved: {error}"
        ) from error
    return cfg


# ---------------------------------------------------------------------------------- reading


def read_saelens(
    directory: Path,
    *,
    site: int | None,
    input_scale: float | None,
    dtype: torch.dtype | None,
    where: str,
) -> SparseAutoencoder:
    """The SAE in ``directory`` (``cfg.json`` + ``sae_weights.safetensors``)."""
    cfg = read_json(directory / CFG_FILE, where)
    raw = cfg.get("metadata")
    meta: dict[str, Any] = raw if isinstance(raw, dict) else {}
    version = str(meta.get("sae_lens_version") or cfg.get("sae_lens_version") or "")
    major = re.match(r"\d+", version)
    # SAELens 6 nests model and hook names under "metadata"; earlier versions keep them flat
    modern = bool(meta) and major is not None and int(major.group()) >= 6
    flat = cfg if not modern else {**meta, **cfg}
    activation, k = _activation(flat, modern=modern, where=where)
    hook = flat.get("hook_name") or flat.get("hook_point") or ""
    if flat.get("hook_head_index", flat.get("hook_point_head_index")) is not None:
        raise ValueError(f"{where} reads one attention head of {hook!r}, not a residual site")
    found = site_for_hook(hook, where=where) if hook else None
    own = flat.get(SITE_KEY)
    if isinstance(own, int):  # ours: the site as saved, not re-derived from the name
        found = own
    chosen = resolve_site(found, site, hook=hook, where=where)
    tensors = read_safetensors(directory / WEIGHTS_FILE, where)
    scaling = tensors.pop("scaling_factor", None)
    scale = _input_scale(flat, directory, input_scale, where)
    d_in, d_sae = _sizes(cfg, tensors, where)
    config = SAEConfig(
        d_in=d_in,
        d_sae=d_sae,
        site=chosen,
        activation=activation,
        k=k,
        apply_b_dec_to_input=bool(flat.get("apply_b_dec_to_input", True)),
        input_scale=scale,
        model_name=str(flat.get("model_name") or ""),
        hook_name=hook,
        metadata={key: v for key, v in meta.items() if key not in ("model_name", "hook_name")},
    )
    file_dtype = _DTYPES.get(str(cfg.get("dtype", "float32")).removeprefix("torch."))
    sae = build(config, tensors, dtype=dtype or file_dtype or tensors["W_enc"].dtype, where=where)
    if activation == "jumprelu":
        # SAELens's JumpReLU is relu(pre) * (pre > threshold): below 0 a threshold acts as 0
        with torch.no_grad():
            sae.threshold.clamp_(min=0)
    if scaling is not None and not torch.all(scaling == 1):
        _fold_finetuning_scale(sae, scaling, where)
    if flat.get("rescale_acts_by_decoder_norm"):
        fold_decoder_norms(sae)
    return sae


def _activation(flat: dict[str, Any], *, modern: bool, where: str) -> tuple[str, int | None]:
    architecture = str(flat.get("architecture") or "standard")
    function = str(flat.get("activation_fn") or flat.get("activation_fn_str") or "relu")
    kwargs = flat.get("activation_fn_kwargs") or {}
    if architecture == "standard" and (modern or function == "relu"):
        return "relu", None  # SAELens 6's StandardSAE is a ReLU whatever else the cfg says
    if architecture == "standard" and function == "topk":
        architecture = "topk"  # SAELens 5 wrote TopK SAEs as standard + activation_fn topk
    if architecture == "topk":
        k = flat.get("k", kwargs.get("k") if isinstance(kwargs, dict) else None)
        if not isinstance(k, int):
            raise ValueError(f"{where} is a TopK SAE without an integer k")
        return "topk", k
    if architecture == "jumprelu":
        return "jumprelu", None
    raise ValueError(
        f"{where} is a SAELens {architecture!r} SAE (activation {function!r}); readable "
        "architectures are standard (ReLU), topk and jumprelu"
    )


def _input_scale(flat: dict[str, Any], directory: Path, given: float | None, where: str) -> float:
    """SAELens's ``normalize_activations`` as our constant ``input_scale``."""
    mode = flat.get("normalize_activations")
    if mode is True:  # SAELens < 6 wrote a boolean
        mode = "expected_average_only_in"
    if mode in (None, False, "none"):
        return 1.0 if given is None else given
    if mode != "expected_average_only_in":
        raise ValueError(
            f"{where} normalises every token ({mode!r}); only a constant input scale "
            "(normalize_activations 'none' or 'expected_average_only_in') can be read"
        )
    if given is not None:
        return given
    scaler = directory / SCALER_FILE
    if scaler.is_file():
        factor = read_json(scaler, where).get("scaling_factor")
        if isinstance(factor, (int, float)) and math.isfinite(factor) and factor > 0:
            return float(factor)
    raise ValueError(
        f"{where} scales its inputs by a dataset-wide factor (normalize_activations "
        f"'expected_average_only_in') that is not in the files ({SCALER_FILE}); pass "
        "input_scale= (SAELens's norm_scaling_factor for this SAE)"
    )


def _sizes(cfg: dict[str, Any], tensors: dict[str, torch.Tensor], where: str) -> tuple[int, int]:
    missing = {"W_enc", "W_dec", "b_enc", "b_dec"} - set(tensors)
    if missing:
        raise ValueError(f"{where} has no {', '.join(sorted(missing))} among its weights")
    d_in, d_sae = tensors["W_enc"].shape if tensors["W_enc"].ndim == 2 else (0, 0)
    if (cfg.get("d_in"), cfg.get("d_sae")) != (d_in, d_sae):
        raise ValueError(
            f"{where}: cfg.json says d_in={cfg.get('d_in')}, d_sae={cfg.get('d_sae')} but "
            f"W_enc is {list(tensors['W_enc'].shape)}"
        )
    return int(d_in), int(d_sae)


def _fold_finetuning_scale(sae: SparseAutoencoder, scaling: torch.Tensor, where: str) -> None:
    """Old SAELens files multiply each latent by ``scaling_factor`` before decoding: folded
    into the decoder rows, which is where it acts."""
    if scaling.shape != (sae.d_sae,):
        raise ValueError(f"{where}: scaling_factor must have shape [{sae.d_sae}]")
    with torch.no_grad():
        sae.W_dec.mul_(scaling.to(sae.W_dec.dtype)[:, None])
    sae.config.metadata["folded"] = [*sae.config.metadata.get("folded", []), "scaling_factor"]


def fold_decoder_norms(sae: SparseAutoencoder) -> None:
    """Unit decoder rows, the norms moved into the encoder: the same reconstruction, and the
    pre-activations a decoder-norm-rescaled TopK ranks (SAELens's ``_fold_norm_topk``)."""
    with torch.no_grad():
        norms = sae.W_dec.norm(dim=1)
        norms = norms.where(norms > 0, 1.0)  # a dead latent's zero row stays zero, not NaN
        sae.W_dec.div_(norms[:, None])
        sae.W_enc.mul_(norms[None, :])
        sae.b_enc.mul_(norms)
        sae.threshold.mul_(norms)
    sae.config.metadata["folded"] = [*sae.config.metadata.get("folded", []), "decoder_norms"]


# ---------------------------------------------------------------------------------- shared


def build(
    config: SAEConfig, tensors: dict[str, torch.Tensor], *, dtype: torch.dtype, where: str
) -> SparseAutoencoder:
    """An SAE of ``config`` holding ``tensors`` (W_enc, W_dec, b_enc, b_dec, [threshold]),
    each checked against its expected shape and copied exactly (then cast to ``dtype``)."""
    with torch.device("meta"):  # no random init of weights about to be overwritten
        sae = SparseAutoencoder(config).to(dtype)
    sae = sae.to_empty(device="cpu")
    expected = {
        "W_enc": (config.d_in, config.d_sae),
        "W_dec": (config.d_sae, config.d_in),
        "b_enc": (config.d_sae,),
        "b_dec": (config.d_in,),
        "threshold": (config.d_sae,),
    }
    required = ["W_enc", "W_dec", "b_enc", "b_dec"]
    if config.activation == "jumprelu":
        required.append("threshold")
    missing = [name for name in required if name not in tensors]
    if missing:
        raise ValueError(f"{where} has no {', '.join(missing)} among its weights")
    with torch.no_grad():
        for name, shape in expected.items():
            if name not in tensors:  # only the threshold may be absent: ReLU and TopK
                getattr(sae, name).zero_()
                continue
            tensor = tensors[name]
            if tuple(tensor.shape) != shape:
                raise ValueError(
                    f"{where}: {name} has shape {list(tensor.shape)}, expected {list(shape)} "
                    f"for d_in={config.d_in}, d_sae={config.d_sae}"
                )
            getattr(sae, name).copy_(tensor.to(dtype))
    return sae


def read_json(path: Path, where: str) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{where}: {path.name} is not readable JSON ({error})") from error
    if not isinstance(value, dict):
        raise ValueError(f"{where}: {path.name} must hold a JSON object")
    return value


def read_safetensors(path: Path, where: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as error:  # safetensors raises its own SafetensorError, OSError, ...
        raise ValueError(
            f"{where}: {path.name} is not a readable safetensors file ({error})"
        ) from error
