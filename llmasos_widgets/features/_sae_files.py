"""``load_sae`` / ``save_sae``: SAEs from the files people have, and ours in SAELens's format.

Formats, detected from the files (or named with ``format=``):

* ``"saelens"``: ``cfg.json`` + ``sae_weights.safetensors`` (``_sae_saelens.py``);
* ``"llama-scope"``: ``hyperparams.json`` + ``checkpoints/final.safetensors`` (``_sae_scope.py``);
* ``"gemma-scope"``: ``params.npz`` (``_sae_scope.py``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from llmasos_widgets.features._sae import SparseAutoencoder
from llmasos_widgets.features._sae_hub import HUB_FILES, download_sae, split_hub_id
from llmasos_widgets.features._sae_saelens import read_saelens, save_saelens
from llmasos_widgets.tracing import site_label

FORMATS = tuple(HUB_FILES)
_DTYPE_NAMES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


def save_sae(
    sae: SparseAutoencoder, directory: str | os.PathLike[str], *, fold_input_scale: bool = False
) -> Path:
    """Write ``sae`` to ``directory`` in SAELens's format (``cfg.json`` +
    ``sae_weights.safetensors``), which ``load_sae`` and ``sae_lens.SAE.load_from_disk`` read.

    The hook name is SAELens's (``after L{i}`` = ``blocks.{i}.hook_resid_post``, ``emb`` =
    ``blocks.0.hook_resid_pre``) and our site is kept in the metadata. An ``input_scale``
    other than 1 is written as SAELens's training checkpoints write it
    (``normalize_activations: "expected_average_only_in"`` and ``activation_scaler.json``),
    which ``load_sae`` reads back exactly; ``fold_input_scale=True`` folds it into the weights
    instead (``normalize_activations: "none"``), as SAELens does for a finished SAE, so tools
    that ignore the scaler compute the same thing. Files are written to a temporary directory
    and moved in, so a failed save leaves nothing half-written. Returns the directory.
    """
    if not isinstance(sae, SparseAutoencoder):
        raise TypeError(f"save_sae saves a SparseAutoencoder, got {type(sae).__name__}")
    target = Path(directory).expanduser()
    if target.exists() and not target.is_dir():
        raise ValueError(f"{str(target)!r} is a file; save_sae writes a directory of files")
    return save_saelens(sae, target, fold_input_scale=fold_input_scale)


def load_sae(
    path_or_hub_id: str | os.PathLike[str],
    *,
    format: str | None = None,
    site: int | None = None,
    subfolder: str | None = None,
    input_scale: float | None = None,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool | None = None,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype | None = None,
) -> SparseAutoencoder:
    """Load a sparse autoencoder over one residual site.

    ``path_or_hub_id`` is a local directory (``subfolder=`` joined to it; or one of its files,
    e.g. ``params.npz`` or ``checkpoints/final.safetensors``), or a hub id ``"owner/repo"`` with the SAE's folder as ``subfolder=``
    or appended (``"google/gemma-scope-2b-pt-res/layer_12/width_16k/average_l0_82"``),
    downloaded into the Hugging Face cache unless ``HF_HUB_OFFLINE=1`` or
    ``local_files_only=True``. ``format`` is ``"saelens"``, ``"llama-scope"`` or
    ``"gemma-scope"`` (default: detected from the files). ``site`` is the residual site read
    (0 = emb, i = after L{i-1}), needed only when the files do not say. ``input_scale`` is the
    dataset-wide normalisation factor of a SAELens SAE whose files lack it. ``dtype`` defaults
    to the file's.
    """
    if format is not None and format not in FORMATS:
        raise ValueError(f"unknown SAE format {format!r}; formats are {', '.join(FORMATS)}")
    if site is not None and (not isinstance(site, int) or site < 0):
        raise ValueError(f"site must be a residual site (0 = emb, i = after L{{i-1}}), got {site}")
    name = os.fspath(path_or_hub_id)
    local = Path(name).expanduser()
    if subfolder and local.is_dir():
        local = local / subfolder
    if local.exists():
        directory = local if local.is_dir() else local.parent
        if not local.is_dir() and directory.name == "checkpoints":  # Llama Scope's weights
            directory = directory.parent
        found = format or _detect(directory, name)
        source = name
    elif _looks_like_path(name):
        raise ValueError(f"{name!r} does not exist (expected a directory with SAE files)")
    else:
        repo_id, folder = split_hub_id(name, subfolder)
        directory, found = download_sae(
            repo_id,
            folder,
            formats=(format,) if format else FORMATS,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
        )
        source = f"{repo_id}/{folder}" if folder else repo_id
    sae = _read(
        directory, found, site=site, input_scale=input_scale, dtype=_dtype(dtype), source=source
    )
    sae.config.metadata["source"] = source  # where this copy came from, not an earlier one
    return sae.to(device)


def check_sae_for(model: Any, sae: SparseAutoencoder) -> None:
    """Raise ``ValueError`` unless ``sae`` reads a residual site ``model`` has, of its width.

    ``model`` is an ``ExplainableModel`` or a ``transformers`` model (anything with a
    ``config`` holding ``hidden_size`` and ``num_hidden_layers``)."""
    config = getattr(model, "config", None)
    hidden = getattr(config, "hidden_size", None)
    layers = getattr(config, "num_hidden_layers", None)
    if not isinstance(hidden, int) or not isinstance(layers, int):
        raise TypeError(f"expected a model with a config, got {type(model).__name__}")
    name = getattr(model, "name", None) or getattr(config, "_name_or_path", "") or "the model"
    if sae.config.d_in != hidden:
        raise ValueError(
            f"the SAE reads vectors of size d_in={sae.config.d_in} but {name}'s residual "
            f"stream has hidden_size={hidden}; was it trained on another model "
            f"({sae.config.model_name or 'not recorded'})?"
        )
    if sae.site > layers:
        raise ValueError(
            f"the SAE reads site {sae.site} ({site_label(sae.site)}) but {name} has "
            f"{layers} layers: sites 0 (emb) to {layers} ({site_label(layers)})"
        )


def _read(
    directory: Path,
    format: str,
    *,
    site: int | None,
    input_scale: float | None,
    dtype: torch.dtype | None,
    source: str,
) -> SparseAutoencoder:
    where = f"SAE {source!r}"
    marker, needed, _ = HUB_FILES[format]
    for filename in (marker, *needed):
        if not (directory / filename).is_file():
            raise ValueError(f"{where} is not in {format} format: it has no {filename}")
    if format == "saelens":
        return read_saelens(directory, site=site, input_scale=input_scale, dtype=dtype, where=where)
    from llmasos_widgets.features._sae_scope import read_gemma_scope, read_llama_scope

    if input_scale is not None:
        raise ValueError(f"input_scale= applies to SAELens files; {format} files hold theirs")
    reader = read_llama_scope if format == "llama-scope" else read_gemma_scope
    return reader(directory, site=site, dtype=dtype, where=where, source=source)


def _detect(directory: Path, name: str) -> str:
    for format, (marker, _, _) in HUB_FILES.items():
        if (directory / marker).is_file():
            return format
    expected = "; ".join(f"{n}: {' + '.join((m, *r))}" for n, (m, r, _) in HUB_FILES.items())
    raise ValueError(f"{name!r} holds no SAE files we read. Expected one of {expected}")


def _looks_like_path(name: str) -> bool:
    return (
        name.startswith((".", "/", "~"))
        or "\\" in name
        or "/" not in name
        or name.endswith((".json", ".npz", ".safetensors"))
    )


def _dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if dtype.removeprefix("torch.") not in _DTYPE_NAMES:
        raise ValueError(f"dtype must be one of {', '.join(_DTYPE_NAMES)}, got {dtype!r}")
    return _DTYPE_NAMES[dtype.removeprefix("torch.")]
