"""Transcoder files: the formats circuit-tracer reads, in and out.

As read by circuit-tracer (``circuit_tracer/transcoder/single_layer_transcoder.py`` and
``utils/hf_utils.py``, decoderesearch/circuit-tracer at 4bb8c0e):

* ``"circuit-tracer"``, a *transcoder set*: ``config.yaml`` (``model_kind: transcoder_set``,
  ``feature_input_hook``, ``feature_output_hook``, optional ``activation``/``k``, optional
  ``transcoders:`` list of per-layer files, ``hf://`` URIs or paths, layer ``i`` at index
  ``i``) beside ``layer_{i}.safetensors``. Each file holds ``W_enc`` ``[d_tc, d_in]`` and
  ``W_dec`` ``[d_tc, d_out]`` (circuit-tracer encodes with ``F.linear(x, W_enc, b_enc)``),
  ``b_enc``, ``b_dec``, optionally ``W_skip`` ``[d_out, d_in]`` (``x @ W_skip.T``: skip
  transcoders), ``activation_function.threshold`` (JumpReLU) and ``k`` (TopK). Without a
  threshold the activation is the config's ``activation`` (``relu`` default, or ``topk``).
* ``"gemma-scope"``: Gemma Scope's transcoder ``params.npz``: ``W_enc`` ``[d_in, d_tc]``,
  ``W_dec`` ``[d_tc, d_out]``, ``b_enc``, ``b_dec``, ``threshold`` (JumpReLU), read at
  ``ln2.hook_normalized`` (the MLP input).
* ``"gemma-scope-2"``: a Gemma Scope 2 safetensors file: ``w_enc`` ``[d_in, d_tc]``,
  ``w_dec`` ``[d_tc, d_out]``, ``b_enc``, ``b_dec``, ``threshold`` and optionally
  ``affine_skip_connection`` ``[d_in, d_out]``.

Cross-layer transcoders (``model_kind: cross_layer_transcoder``; ``W_enc_{i}.safetensors``
with ``W_enc_{i}``/``b_enc_{i}``/``b_dec_{i}``/``threshold_{i}`` and ``W_dec_{i}.safetensors``
whose features write to every later layer) are refused with an error that says so: one
:class:`Transcoder` per layer cannot hold them.

:func:`save_transcoder` writes the transcoder-set layout without ``k`` in the weights
(circuit-tracer's ``load_transcoder`` loads its state dict strictly and would refuse it);
``activation``/``k`` go in ``config.yaml``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from llmasos_widgets.features._sae_files import _dtype, _looks_like_path
from llmasos_widgets.features._sae_hub import (
    download_sae,
    hub_errors,
    hub_fetcher,
    split_hub_id,
)
from llmasos_widgets.features._transcoder import Transcoder
from llmasos_widgets.models import hub_offline

TRANSCODER_FORMATS = ("circuit-tracer", "gemma-scope", "gemma-scope-2")
_CONFIG = "config.yaml"
_HUB_FILES: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "circuit-tracer": (_CONFIG, (), ()),
    "gemma-scope": ("params.npz", (), ()),
}
_WRITTEN_INPUT_HOOK = {"mlp_in": "ln2.hook_normalized", "resid_mid": "hook_resid_mid"}


def _layer_file(layer: int) -> str:
    return f"layer_{layer}.safetensors"


def save_transcoder(
    transcoders: Transcoder | Sequence[Transcoder],
    directory: str | os.PathLike[str],
    *,
    model_name: str | None = None,
) -> Path:
    """Write one transcoder or a set (at most one per layer) to ``directory`` as
    circuit-tracer's transcoder set: ``config.yaml`` + ``layer_{i}.safetensors`` each.

    circuit-tracer loads a set whose layers are ``0..n-1`` (its ``TranscoderSet`` needs every
    layer); :func:`load_transcoder` and :func:`load_transcoders` read any subset. Files are
    written to a temporary directory and moved in, so a failed save leaves nothing
    half-written. Returns the directory.
    """
    import yaml
    from safetensors.torch import save_file

    chosen = [transcoders] if isinstance(transcoders, Transcoder) else list(transcoders)
    if not chosen or not all(isinstance(t, Transcoder) for t in chosen):
        raise TypeError("save_transcoder saves a Transcoder or a non-empty list of them")
    layers = [t.layer for t in chosen]
    if len(set(layers)) != len(layers):
        raise ValueError(f"two transcoders for one layer (layers {layers}); pass one per layer")
    kinds = {(t.config.activation, t.config.k, t.config.input_site) for t in chosen}
    if len(kinds) != 1:
        raise ValueError(
            "a transcoder set has one activation, k and input site (config.yaml), got "
            f"{sorted(kinds, key=str)}; save them to separate directories"
        )
    ((activation, k, input_site),) = kinds
    target = Path(directory).expanduser()
    if target.exists() and not target.is_dir():
        raise ValueError(f"{str(target)!r} is a file; save_transcoder writes a directory")
    name = model_name if model_name is not None else chosen[0].config.model_name
    config: dict[str, Any] = {
        "model_kind": "transcoder_set",
        "model_name": name,
        "feature_input_hook": _WRITTEN_INPUT_HOOK[input_site],
        "feature_output_hook": "hook_mlp_out",
        "activation": "relu" if activation == "jumprelu" else activation,  # thresholds say it
        "llmasos": {"layers": {t.layer: _json_safe(t.config.metadata) for t in chosen}},
    }
    if activation == "topk":
        config["k"] = k
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        for transcoder in sorted(chosen, key=lambda t: t.layer):
            save_file(_circuit_tracer_weights(transcoder), staging / _layer_file(transcoder.layer))
        (staging / _CONFIG).write_text(yaml.safe_dump(config, sort_keys=False))
        target.mkdir(exist_ok=True)
        for old in target.glob("layer_*.safetensors"):
            old.unlink()  # a set saved here before may have had other layers
        for path in staging.iterdir():
            os.replace(path, target / path.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _json_safe(metadata: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metadata.items() if _is_plain(v)}


def _is_plain(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _circuit_tracer_weights(transcoder: Transcoder) -> dict[str, torch.Tensor]:
    weights = {
        "W_enc": transcoder.W_enc.detach().T,
        "W_dec": transcoder.W_dec.detach(),
        "b_enc": transcoder.b_enc.detach(),
        "b_dec": transcoder.b_dec.detach(),
    }
    if transcoder.config.activation == "jumprelu":
        weights["activation_function.threshold"] = transcoder.threshold.detach()
    if transcoder.W_skip is not None:
        weights["W_skip"] = transcoder.W_skip.detach().T
    return {name: t.to("cpu").contiguous() for name, t in weights.items()}


def load_transcoder(
    path_or_hub_id: str | os.PathLike[str],
    *,
    layer: int | None = None,
    format: str | None = None,
    subfolder: str | None = None,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool | None = None,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype | None = None,
) -> Transcoder:
    """Load one transcoder.

    ``path_or_hub_id`` is a file (``layer_3.safetensors``, ``params.npz``, a Gemma Scope 2
    ``.safetensors``), a directory holding a circuit-tracer transcoder set (``config.yaml``;
    ``layer=`` picks the layer when it holds several) or ``params.npz``, or a hub id
    ``"owner/repo[/folder]"`` (``subfolder=`` joined after it) downloaded into the Hugging
    Face cache unless ``HF_HUB_OFFLINE=1`` or ``local_files_only=True``. ``layer`` is needed
    when the files do not say (a lone ``params.npz`` outside a ``layer_{i}/`` folder, a Gemma
    Scope 2 file). ``format``: one of :data:`TRANSCODER_FORMATS` (default: detected).
    ``dtype`` defaults to the file's.
    """
    loaded = _load(path_or_hub_id, layer, format, subfolder, revision, cache_dir,
                   local_files_only, device, dtype, single=True)  # fmt: skip
    return loaded[0]


def load_transcoders(
    path_or_hub_id: str | os.PathLike[str],
    *,
    layers: Sequence[int] | None = None,
    subfolder: str | None = None,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool | None = None,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype | None = None,
) -> list[Transcoder]:
    """Load a circuit-tracer transcoder set (local directory or hub id, as for
    :func:`load_transcoder`): every layer it has (or those in ``layers``), sorted by layer,
    so for a complete set ``transcoders[i]`` replaces layer ``i``'s MLP. On the hub without
    a ``transcoders:`` list, layer files ``layer_0``, ``layer_1``, ... are fetched up to the
    first one missing (offline: the first one not in the cache)."""
    wanted = None if layers is None else sorted({int(layer) for layer in layers})
    loaded = _load(path_or_hub_id, None, "circuit-tracer", subfolder, revision, cache_dir,
                   local_files_only, device, dtype, single=False, layers=wanted)  # fmt: skip
    return loaded


def _load(
    path_or_hub_id: str | os.PathLike[str],
    layer: int | None,
    format: str | None,
    subfolder: str | None,
    revision: str | None,
    cache_dir: Any,
    local_files_only: bool | None,
    device: str | torch.device,
    dtype: str | torch.dtype | None,
    *,
    single: bool,
    layers: list[int] | None = None,
) -> list[Transcoder]:
    if format is not None and format not in TRANSCODER_FORMATS:
        raise ValueError(
            f"unknown transcoder format {format!r}; formats are {', '.join(TRANSCODER_FORMATS)}"
        )
    if layer is not None and (isinstance(layer, bool) or not isinstance(layer, int) or layer < 0):
        raise ValueError(f"layer must be a decoder layer index >= 0, got {layer!r}")
    torch_dtype = _dtype(dtype)
    name = os.fspath(path_or_hub_id)
    local = Path(name).expanduser()
    if subfolder and local.is_dir():
        local = local / subfolder
    if local.exists():
        offline = hub_offline() or bool(local_files_only)
        fetch_uri = _uri_fetcher(cache_dir, offline)
        source = _Source(local if local.is_dir() else local.parent, name, None, fetch_uri)
        file = None if local.is_dir() else local
    elif _looks_like_path(name) or name.endswith((".yaml", ".npz")):
        raise ValueError(f"{name!r} does not exist (expected transcoder files or a directory)")
    else:
        repo_id, folder = split_hub_id(name, subfolder)
        source = _hub_source(repo_id, folder, format, revision, cache_dir, local_files_only)
        file = None
    found = _read_all(source, file, layer, format, single, layers)
    for transcoder in found:
        transcoder.config.metadata["source"] = source.name
    return [t.to(device=device, dtype=torch_dtype or t.W_dec.dtype) for t in found]


def _uri_fetcher(cache_dir: Any, offline: bool) -> Callable[[str], Path]:
    """Downloads the ``hf://`` files a config's ``transcoders:`` list names."""

    def fetch_uri(uri: str) -> Path:
        repo_id, file, revision = _parse_hf_uri(uri)
        fetch = hub_fetcher(repo_id, "", revision=revision, cache_dir=cache_dir, offline=offline)
        with hub_errors(repo_id, "", revision, offline):
            return fetch(file)

    return fetch_uri


class _Absent(Exception):
    """A hub file that is not there (offline: not in the cache)."""


class _Source:
    """Where the files are: a local directory and, for a hub id, how to fetch more of it."""

    def __init__(
        self,
        directory: Path,
        name: str,
        fetch: Callable[[str], Path] | None = None,
        fetch_uri: Callable[[str], Path] | None = None,
    ) -> None:
        self.directory, self.name = directory, name
        self.fetch, self.fetch_uri = fetch, fetch_uri

    def file(self, relative: str) -> Path | None:
        """``relative`` under the directory (fetched from the hub first), or None if absent
        (offline: if not in the cache)."""
        path = self.directory / relative
        if path.is_file() or self.fetch is None:
            return path if path.is_file() else None
        try:
            return self.fetch(relative)
        except _Absent:
            return None

    def resolve(self, entry: str) -> Path:
        """A ``transcoders:`` entry: an ``hf://`` URI (downloaded), or a path (relative ones
        from the config's directory)."""
        if entry.startswith("hf://"):
            if self.fetch_uri is None:
                raise ValueError(f"{entry!r}: no hub access was set up for {self.name!r}")
            return self.fetch_uri(entry)
        path = Path(entry).expanduser()
        path = path if path.is_absolute() else self.directory / path
        if not path.is_file():
            raise ValueError(f"transcoder {self.name!r} lists {entry!r}, which does not exist")
        return path

    def all_layer_files(self) -> dict[int, Path]:
        """Every ``layer_{i}.safetensors``: listed locally, fetched in order on the hub up to
        the first one missing."""
        if self.fetch is None:
            found = {}
            for path in self.directory.glob("layer_*.safetensors"):
                number = path.stem.removeprefix("layer_")
                if number.isdigit():
                    found[int(number)] = path
            return found
        paths: dict[int, Path] = {}
        while (fetched := self.file(f"layer_{len(paths)}.safetensors")) is not None:
            paths[len(paths)] = fetched
        return paths


def _hub_source(
    repo_id: str,
    folder: str,
    format: str | None,
    revision: str | None,
    cache_dir: Any,
    local_files_only: bool | None,
) -> _Source:
    formats = [f for f in _HUB_FILES if format in (None, f)]
    if not formats:
        raise ValueError(f"hub ids hold {' or '.join(_HUB_FILES)} transcoders, not {format!r}")
    directory, _ = download_sae(
        repo_id, folder, formats=formats, revision=revision, cache_dir=cache_dir,
        local_files_only=local_files_only, files=_HUB_FILES, what="transcoder",
    )  # fmt: skip
    offline = hub_offline() or bool(local_files_only)

    fetch_file = hub_fetcher(
        repo_id, folder, revision=revision, cache_dir=cache_dir, offline=offline
    )

    def fetch(filename: str) -> Path:
        from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

        with hub_errors(repo_id, folder, revision, offline):
            try:
                return fetch_file(filename)
            except EntryNotFoundError as error:
                # online, a LocalEntryNotFoundError means the hub could not be reached
                if offline or not isinstance(error, LocalEntryNotFoundError):
                    raise _Absent(filename) from error
                raise

    name = f"{repo_id}/{folder}" if folder else repo_id
    return _Source(directory, name, fetch, _uri_fetcher(cache_dir, offline))


def _parse_hf_uri(uri: str) -> tuple[str, str, str | None]:
    """``hf://owner/repo/path/file?revision=r`` -> (``owner/repo``, ``path/file``, ``r``), as
    circuit-tracer's ``parse_hf_uri``."""
    from urllib.parse import parse_qs, urlparse

    parsed = urlparse(uri)
    repo, _, file = parsed.path.lstrip("/").partition("/")
    if not parsed.netloc or not repo or not file:
        raise ValueError(f"{uri!r} is not an hf://owner/repo/file URI")
    revision = parse_qs(parsed.query).get("revision", [None])[0] or None
    return f"{parsed.netloc}/{repo}", file, revision


def _read_all(
    source: _Source,
    file: Path | None,
    layer: int | None,
    format: str | None,
    single: bool,
    layers: list[int] | None,
) -> list[Transcoder]:
    from llmasos_widgets.features import _transcoder_formats as formats

    where = f"transcoder {source.name!r}"
    directory = source.directory
    if file is not None and file.name != _CONFIG:
        kind = format or formats.detect_file(file, where)
        if kind == "circuit-tracer" and (directory / _CONFIG).is_file():
            config = formats.read_config(directory / _CONFIG, where)
            number = formats.layer_of(file, layer, where)
            return [formats.read_layer_file(file, number, config, where)]
        return [formats.read_single(file, kind, layer, formats.default_config(), where)]
    if (directory / "W_enc_0.safetensors").is_file():
        formats.refuse_cross_layer(where)
    config_path = source.file(_CONFIG) if file is None else file
    if config_path is None:
        npz = source.file("params.npz")
        if npz is not None and format in (None, "gemma-scope"):
            return [formats.read_single(npz, "gemma-scope", layer, formats.default_config(), where)]
        raise ValueError(
            f"{where} holds no transcoder files we read: expected {_CONFIG} + "
            "layer_{i}.safetensors (circuit-tracer), or params.npz (Gemma Scope)"
        )
    config = formats.read_config(config_path, where)
    wanted = [layer] if layer is not None else layers
    paths = formats.layer_paths(config, source, wanted, where)
    if single and len(paths) > 1:
        raise ValueError(
            f"{where} holds transcoders for layers {sorted(paths)}: pass layer= to pick one, "
            "or use load_transcoders for all of them"
        )
    return [formats.read_layer_file(paths[n], n, config, where) for n in sorted(paths)]
