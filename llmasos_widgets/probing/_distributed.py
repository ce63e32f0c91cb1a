"""Activations of datasets too large for one machine, on a Dask cluster (optional extra).

``pip install llmasos-widgets[dask]``. Each worker holds one model replica; the texts are
split into chunks, each chunk runs the ordinary local :func:`activations` on a worker, and
the chunks come back in order. With ``out=`` every chunk is written by its worker straight
into ``out`` (which must be on storage all workers and the client share) as one shard, so
no activations travel through the client.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from llmasos_widgets._distributed import (
    import_distributed,
    model_reference,
    n_workers,
    worker_model,
)
from llmasos_widgets.probing._activations import Layers, Positions, Reads, check_texts
from llmasos_widgets.probing._store import (
    Activations,
    finish_directory,
    prepare_directory,
    shard_dir_name,
)


def _chunk_activations(
    model_or_plugin: Any,
    texts: list[str],
    positions: Positions,
    layers: Layers,
    batch_size: int,
    padding_side: str | None,
    chunk_dir: str | None,
    read: Reads = "residual",
) -> Activations:
    """Runs on a worker: the local code path on one chunk of texts."""
    from llmasos_widgets.probing._activations import activations

    model = worker_model(model_or_plugin)
    return activations(
        model, texts, layers=layers, positions=positions, batch_size=batch_size,
        out=chunk_dir, padding_side=padding_side, progress=False, read=read,
    )  # fmt: skip


def distributed_activations(
    model: Any,
    texts: Sequence[str],
    *,
    client: Any,
    layers: Layers = "all",
    positions: Positions = "last",
    batch_size: int = 32,
    chunk_size: int | None = None,
    out: str | os.PathLike[str] | None = None,
    padding_side: str | None = None,
    load_kwargs: dict[str, Any] | None = None,
    read: Reads = "residual",
) -> Activations:
    """:func:`activations` with the forward passes spread over a Dask ``client``'s workers.

    Args:
        model: an ``ExplainableModel`` (sent once to every worker: one replica each), or a
            name/path that each worker passes to ``load_model`` once (better for big models:
            nothing is pickled; ``load_kwargs`` go along, e.g. ``{"device": "cuda"}``).
        chunk_size: texts per task (a worker streams its chunk in ``batch_size`` batches);
            default: two tasks per worker, at most 4096 texts each.
        out: a directory on storage shared by the client and all workers; each chunk becomes
            one shard written there by its worker. ``None`` gathers everything in memory.
        Other arguments are as in :func:`activations`; the result equals the local one.
    """
    import_distributed("activations(..., client=...)")
    texts = check_texts(texts)
    if chunk_size is None:
        chunk_size = min(4096, -(-len(texts) // (2 * n_workers(client))))
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    per_text = not isinstance(positions, (str, int, np.integer))
    if per_text:
        positions = list(positions)  # type: ignore[arg-type]
        if len(positions) != len(texts):
            raise ValueError(
                f"positions has {len(positions)} entries but there are {len(texts)} texts; "
                "pass one position per text, a single int, 'last' or 'all'"
            )
    starts = list(range(0, len(texts), chunk_size))
    chunk_positions = [
        positions[s : s + chunk_size] if per_text else positions  # type: ignore[index]
        for s in starts
    ]

    model_ref = model_reference(client, model, load_kwargs)

    directory = prepare_directory(out) if out is not None else None
    parts_dir = directory / "chunks" if directory is not None else None
    futures = [
        client.submit(
            _chunk_activations,
            model_ref,
            texts[s : s + chunk_size],
            chunk_pos,
            layers,
            batch_size,
            padding_side,
            str(parts_dir / f"chunk-{k:05d}") if parts_dir is not None else None,
            read,
            pure=False,
        )
        for k, (s, chunk_pos) in enumerate(zip(starts, chunk_positions, strict=True))
    ]
    chunks: list[Activations] = client.gather(futures)

    offsets = np.repeat(np.array(starts, dtype=np.int64), [len(c) for c in chunks])
    text_index = np.concatenate([c.text_index for c in chunks]) + offsets
    positions_out = np.concatenate([c.positions for c in chunks])
    token_ids = np.concatenate([c.token_ids for c in chunks])
    first = chunks[0]
    if directory is None:
        return Activations(
            layers=first.layers,
            hidden_size=first.hidden_size,
            text_index=text_index,
            positions=positions_out,
            token_ids=token_ids,
            arrays={layer: np.concatenate([c[layer] for c in chunks]) for layer in first.layers},
        )
    for k, chunk in enumerate(chunks):
        Path(str(chunk.path), shard_dir_name(0)).rename(directory / shard_dir_name(k))
    shutil.rmtree(directory / "chunks")
    return finish_directory(
        directory,
        layers=first.layers,
        hidden_size=first.hidden_size,
        text_index=text_index,
        positions=positions_out,
        token_ids=token_ids,
        shard_rows=[len(c) for c in chunks],
    )
