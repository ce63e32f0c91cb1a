"""Where collected activations live: in memory, or streamed to disk as memory-mapped ``.npy``.

On-disk layout of ``activations(..., out=directory)``::

    directory/
      activations.json       format tag, layers, hidden size, rows, shard list (written last)
      index.npz              text_index, positions, token_ids: int64 [row]
      shard-00000/layer-003.npy   float32 [row, hidden] for the shard's rows, one file per layer

The local path writes one shard; the distributed path writes one shard per chunk of texts.
``activations.json`` is written only after every shard is complete, so a directory whose
collection was interrupted is reported as incomplete instead of read as zeros.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

FORMAT = "llmasos-activations"
VERSION = 1
META_NAME = "activations.json"
INDEX_NAME = "index.npz"


def shard_dir_name(shard: int) -> str:
    return f"shard-{shard:05d}"


def layer_file_name(layer: int) -> str:
    return f"layer-{layer:03d}.npy"


class Activations:
    """Residual-stream activations of texts: one float32 matrix ``[row, hidden]`` per layer.

    Layer ``0`` is the embedding output (the input of decoder layer 0) and layer ``i`` the
    output of decoder layer ``i`` (before the final norm), as in ``trace(...).residual``.
    Row ``r`` is token ``positions[r]`` of text ``text_index[r]``; ``token_ids[r]`` is the token
    there. ``acts[layer]`` reads lazily when the activations were streamed to disk.
    """

    def __init__(
        self,
        *,
        layers: Sequence[int],
        hidden_size: int,
        text_index: np.ndarray,
        positions: np.ndarray,
        token_ids: np.ndarray,
        arrays: dict[int, np.ndarray] | None = None,
        path: Path | None = None,
        shard_rows: Sequence[int] = (),
    ) -> None:
        if (arrays is None) == (path is None):
            raise ValueError("Activations needs exactly one of arrays= (in memory) or path=")
        n_rows = len(text_index)
        if len(positions) != n_rows or len(token_ids) != n_rows:
            raise ValueError("text_index, positions and token_ids must have one entry per row")
        # residual sites (0 = emb, i = after L{i-1}; tracing/_anatomy.py), named layers of old
        self.layers: tuple[int, ...] = tuple(int(layer) for layer in layers)
        self.hidden_size = int(hidden_size)
        self.text_index = np.asarray(text_index, dtype=np.int64)
        self.positions = np.asarray(positions, dtype=np.int64)
        self.token_ids = np.asarray(token_ids, dtype=np.int64)
        self.path = path
        self._arrays = arrays
        self._shard_rows = tuple(int(r) for r in shard_rows)
        if arrays is not None:
            for layer in self.layers:
                if arrays[layer].shape != (n_rows, self.hidden_size):
                    raise ValueError(
                        f"layer {layer} has shape {arrays[layer].shape}, "
                        f"expected {(n_rows, self.hidden_size)}"
                    )
        elif sum(self._shard_rows) != n_rows:
            raise ValueError(f"shards hold {sum(self._shard_rows)} rows, index has {n_rows}")

    def __len__(self) -> int:
        return len(self.text_index)

    def __getitem__(self, layer: int) -> np.ndarray:
        """float32 ``[row, hidden]`` of ``layer``: memory-mapped (read-only) when on disk.

        A store written in several shards (the distributed path) is concatenated into memory
        here; use :meth:`iter_shards` to stream it instead.
        """
        self._check_layer(layer)
        if self._arrays is not None:
            return self._arrays[layer]
        shards = list(self.iter_shards(layer))
        return shards[0] if len(shards) == 1 else np.concatenate(shards, axis=0)

    def iter_shards(self, layer: int) -> Iterator[np.ndarray]:
        """The rows of ``layer`` shard by shard (memory-mapped), in row order."""
        self._check_layer(layer)
        if self._arrays is not None:
            yield self._arrays[layer]
            return
        directory = Path(str(self.path))  # set whenever _arrays is None (constructor)
        for shard, rows in enumerate(self._shard_rows):
            file = directory / shard_dir_name(shard) / layer_file_name(layer)
            array = np.load(file, mmap_mode="r")
            if array.shape != (rows, self.hidden_size) or array.dtype != np.float32:
                raise ValueError(
                    f"{file} holds {array.dtype} {array.shape}, expected float32 "
                    f"{(rows, self.hidden_size)}; the directory is damaged, collect it again"
                )
            yield array

    def _check_layer(self, layer: int) -> None:
        if layer not in self.layers:
            raise KeyError(
                f"layer {layer} was not collected; collected layers: {list(self.layers)}. "
                "Pass layers=[...] including it to activations()"
            )

    def __repr__(self) -> str:
        where = f"on disk at {str(self.path)!r}" if self.path is not None else "in memory"
        return (
            f"Activations(rows={len(self)}, layers={list(self.layers)}, "
            f"hidden={self.hidden_size}, {where})"
        )

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Activations:
        """Reopen activations streamed to ``path`` by ``activations(..., out=path)``."""
        directory = Path(path)
        meta_file = directory / META_NAME
        if not meta_file.is_file():
            raise FileNotFoundError(
                f"{directory} has no {META_NAME}: it is not an activations directory, or its "
                "collection did not finish; run activations(..., out=path) again"
            )
        try:
            meta = json.loads(meta_file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"{meta_file} is not valid JSON: {error}") from error
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ValueError(f"{meta_file} is not a {FORMAT} file")
        if meta.get("version") != VERSION:
            raise ValueError(
                f"{meta_file} has format version {meta.get('version')}, this package reads "
                f"{VERSION}; collect the activations again with this version"
            )
        with np.load(directory / INDEX_NAME) as index:
            text_index, positions, token_ids = (
                index["text_index"],
                index["positions"],
                index["token_ids"],
            )
        return cls(
            layers=meta["layers"],
            hidden_size=meta["hidden_size"],
            text_index=text_index,
            positions=positions,
            token_ids=token_ids,
            path=directory,
            shard_rows=meta["shard_rows"],
        )


def prepare_directory(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` for a new collection; refuse to mix with an existing one."""
    directory = Path(path)
    if directory.exists() and any(directory.iterdir()):
        raise FileExistsError(
            f"{directory} is not empty; pass a new directory to out= (activations are never "
            "written over existing files)"
        )
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def open_shard(
    directory: Path, shard: int, layers: Sequence[int], rows: int, hidden_size: int
) -> dict[int, np.ndarray]:
    """Writable memory maps ``[rows, hidden]`` float32 for each layer of one shard."""
    shard_dir = directory / shard_dir_name(shard)
    shard_dir.mkdir(parents=True, exist_ok=False)
    return {
        layer: np.lib.format.open_memmap(
            shard_dir / layer_file_name(layer),
            mode="w+",
            dtype=np.float32,
            shape=(rows, hidden_size),
        )
        for layer in layers
    }


def finish_directory(
    directory: Path,
    *,
    layers: Sequence[int],
    hidden_size: int,
    text_index: np.ndarray,
    positions: np.ndarray,
    token_ids: np.ndarray,
    shard_rows: Sequence[int],
) -> Activations:
    """Write the index and, last, the metadata that marks the directory complete."""
    np.savez(
        directory / INDEX_NAME,
        text_index=np.asarray(text_index, dtype=np.int64),
        positions=np.asarray(positions, dtype=np.int64),
        token_ids=np.asarray(token_ids, dtype=np.int64),
    )
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "layers": [int(layer) for layer in layers],
        "hidden_size": int(hidden_size),
        "rows": len(text_index),
        "shard_rows": [int(r) for r in shard_rows],
    }
    (directory / META_NAME).write_text(json.dumps(meta, indent=1))
    return Activations.open(directory)
