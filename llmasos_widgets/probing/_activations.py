"""``activations``: residual-stream activations of many texts, batched on the model's device."""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from llmasos_widgets._hooks import borrowed_hooks
from llmasos_widgets.probing._store import (
    Activations,
    finish_directory,
    open_shard,
    prepare_directory,
)
from llmasos_widgets.tracing import anatomy, eval_mode, site_label

Positions = int | Sequence[int] | Literal["last", "all"]
Layers = int | Sequence[int] | Literal["all"]
Reads = Literal["residual", "mlp"]
READS = ("residual", "mlp")


_TOKENIZE_CHUNK = 4096


class _StopForward(Exception):
    """Raised by the hook of the deepest requested layer: later layers would be wasted work."""


@dataclass(frozen=True)
class RowPlan:
    """Which token of which text each output row holds, with the texts tokenized once."""

    token_ids: list[list[int]]
    """Token ids of each *distinct* text (duplicates are run through the model once)."""
    row_text: np.ndarray
    """int64 [row]: index into ``token_ids``."""
    row_position: np.ndarray
    """int64 [row]: token position (non-negative) within that text."""
    text_index: np.ndarray
    """int64 [row]: index into the caller's ``texts``."""

    def row_token_ids(self) -> np.ndarray:
        return np.array(
            [self.token_ids[t][p] for t, p in zip(self.row_text, self.row_position, strict=True)],
            dtype=np.int64,
        )


def resolve_layers(layers: Layers, n_layers: int, read: Reads = "residual") -> list[int]:
    """Sorted distinct residual sites in ``0..n_layers`` (0 = ``emb``, i = ``after L{i-1}``),
    or with ``read="mlp"`` decoder layers ``0..n_layers-1``."""
    if read not in READS:
        raise ValueError(f"read must be one of {READS}, got {read!r}")
    if isinstance(layers, str):
        if layers != "all":
            raise ValueError(f"layers must be 'all', an int or a list of ints, got {layers!r}")
        return list(range(n_layers + (read == "residual")))
    requested = [layers] if isinstance(layers, (int, np.integer)) else list(layers)
    if not requested:
        raise ValueError("layers is empty; pass 'all' or at least one layer index")
    for layer in requested:
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)):
            raise TypeError(f"layer indices must be ints, got {layer!r}")
        if read == "mlp" and not 0 <= layer < n_layers:
            raise ValueError(
                f"unknown layer {layer}: this model's MLPs are in decoder layers 0 to "
                f"{n_layers - 1}"
            )
        if not 0 <= layer <= n_layers:
            raise ValueError(
                f"unknown layer {layer}: this model has residual sites 0 (emb) to "
                f"{n_layers} ({site_label(n_layers)}, the output of the last decoder layer)"
            )
    return sorted({int(layer) for layer in requested})


def check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings; wrap a single text as [text]")
    texts = list(texts)
    if not texts:
        raise ValueError("texts is empty; pass at least one text")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] is {type(text).__name__}, expected str")
    return texts


def tokenize(model: Any, texts: list[str]) -> list[list[int]]:
    """Token ids of each text, exactly as ``model.encode(text)`` gives them, with its checks.

    One tokenizer call per chunk of texts instead of ``encode`` per text: on short texts the
    per-call overhead was a third of the whole collection time.
    """
    for text in texts:
        if not text.strip():
            raise ValueError(f"text {text!r} is empty; pass at least one word per text")
    token_ids: list[list[int]] = []
    for start in range(0, len(texts), _TOKENIZE_CHUNK):
        token_ids.extend(model.tokenizer(texts[start : start + _TOKENIZE_CHUNK])["input_ids"])
    limit = getattr(model, "max_length", None)
    for text, ids in zip(texts, token_ids, strict=True):
        if limit is not None and len(ids) > limit:
            raise ValueError(
                f"text {text[:40]!r}... is {len(ids)} tokens long but the model takes at most "
                f"{limit}; shorten it"
            )
    return token_ids


def plan_rows(model: Any, texts: Sequence[str], positions: Positions) -> RowPlan:
    """Tokenize each distinct text once and resolve ``positions`` to one row per token read.

    ``positions``: ``"last"`` (last token), ``"all"`` (every token), an int for every text, or
    one int per text. Negative ints count from the end (``-1`` = last token).
    """
    texts = check_texts(texts)
    distinct: dict[str, int] = {}
    text_to_distinct = np.empty(len(texts), dtype=np.int64)
    for i, text in enumerate(texts):
        text_to_distinct[i] = distinct.setdefault(text, len(distinct))
    token_ids = tokenize(model, list(distinct))
    lengths = [len(token_ids[t]) for t in text_to_distinct]

    if isinstance(positions, str):
        if positions not in ("last", "all"):
            raise ValueError(
                f"positions must be 'last', 'all', an int or one int per text, got {positions!r}"
            )
        if positions == "last":
            per_text = [[n - 1] for n in lengths]
        else:
            per_text = [list(range(n)) for n in lengths]
    else:
        if isinstance(positions, (int, np.integer)):
            requested = [int(positions)] * len(texts)
        else:
            requested = list(positions)
            if len(requested) != len(texts):
                raise ValueError(
                    f"positions has {len(requested)} entries but there are {len(texts)} texts; "
                    "pass one position per text, a single int, 'last' or 'all'"
                )
        per_text = []
        for i, (position, n) in enumerate(zip(requested, lengths, strict=True)):
            if isinstance(position, bool) or not isinstance(position, (int, np.integer)):
                raise TypeError(f"positions[{i}] is {position!r}; positions must be ints")
            resolved = position + n if position < 0 else position
            if not 0 <= resolved < n:
                raise ValueError(
                    f"position {position} is outside text {i} ({texts[i]!r}), which has {n} "
                    f"tokens (valid: 0..{n - 1} or -{n}..-1); token positions count the "
                    "tokens the tokenizer adds, such as <bos> at 0"
                )
            per_text.append([int(resolved)])

    counts = [len(p) for p in per_text]
    text_index = np.repeat(np.arange(len(texts), dtype=np.int64), counts)
    return RowPlan(
        token_ids=token_ids,
        row_text=text_to_distinct[text_index],
        row_position=np.fromiter((p for ps in per_text for p in ps), dtype=np.int64),
        text_index=text_index,
    )


def _batches(plan: RowPlan, batch_size: int) -> list[np.ndarray]:
    """Distinct texts grouped longest first, so each batch pads to similar lengths."""
    order = sorted(range(len(plan.token_ids)), key=lambda t: -len(plan.token_ids[t]))
    return [np.array(order[i : i + batch_size]) for i in range(0, len(order), batch_size)]


def _pad(
    token_ids: list[list[int]], pad_id: int, side: str, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, np.ndarray]:
    """input_ids, attention_mask, position_ids ``[batch, token]`` and each text's column offset."""
    width = max(len(ids) for ids in token_ids)
    input_ids = np.full((len(token_ids), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(token_ids), width), dtype=np.int64)
    offsets = np.zeros(len(token_ids), dtype=np.int64)
    for b, ids in enumerate(token_ids):
        start = width - len(ids) if side == "left" else 0
        offsets[b] = start
        input_ids[b, start : start + len(ids)] = ids
        mask[b, start : start + len(ids)] = 1
    # Positions count real tokens only, so a left-padded text gets the same RoPE angles
    # as the same text alone (the model's default arange would shift them by the padding).
    position_ids = np.maximum(mask.cumsum(axis=1) - 1, 0)
    return (
        torch.from_numpy(input_ids).to(device),
        torch.from_numpy(mask).to(device),
        torch.from_numpy(position_ids).to(device),
        offsets,
    )


def run_plan(
    model: Any,
    plan: RowPlan,
    layers: list[int],
    destination: dict[int, np.ndarray],
    *,
    batch_size: int,
    padding_side: str,
    progress: bool,
    read: Reads = "residual",
) -> None:
    """Forward the planned texts in batches and write each requested row into ``destination``
    (``read="mlp"``: each layer's MLP input and output side by side, ``[row, 2 * hidden]``)."""
    from tqdm.auto import tqdm

    hf_model = model.hf_model
    parts = anatomy(hf_model)
    pad_id = getattr(model.tokenizer, "pad_token_id", None)
    pad_id = 0 if pad_id is None else int(pad_id)
    device = model.device
    deepest = max(layers)

    rows_of_text: list[list[int]] = [[] for _ in plan.token_ids]
    for row, t in enumerate(plan.row_text):
        rows_of_text[int(t)].append(row)

    # Per batch: the (batch, column) pairs to read and the rows they fill.
    current: dict[str, Any] = {}

    def store(layer: int, *hidden: torch.Tensor) -> None:
        # .to() is a no-op on one device; with device_map layers live on several devices
        device = hidden[0].device
        where = current["batch_idx"].to(device), current["column_idx"].to(device)
        picked = torch.cat([h[where] for h in hidden], dim=-1)
        destination[layer][current["rows"]] = picked.to("cpu", torch.float32).numpy()
        if layer == deepest:
            raise _StopForward

    bar = tqdm(total=len(plan.token_ids), unit="text", desc="activations", disable=not progress)
    # eval mode: dropout would make activations random
    with eval_mode(hf_model), borrowed_hooks() as hooks, torch.inference_mode():
        for layer in layers:
            if read == "mlp":
                parts.read_mlp_pair(hooks, layer, functools.partial(store, layer))
            else:
                parts.read_site(hooks, layer, functools.partial(store, layer))
        try:
            for batch in _batches(plan, batch_size):
                input_ids, mask, position_ids, offsets = _pad(
                    [plan.token_ids[t] for t in batch], pad_id, padding_side, device
                )
                batch_idx, column_idx, rows = [], [], []
                for b, t in enumerate(batch):
                    for row in rows_of_text[t]:
                        batch_idx.append(b)
                        column_idx.append(int(offsets[b] + plan.row_position[row]))
                        rows.append(row)
                current["batch_idx"] = torch.tensor(batch_idx, device=device)
                current["column_idx"] = torch.tensor(column_idx, device=device)
                current["rows"] = np.array(rows, dtype=np.int64)
                with contextlib.suppress(_StopForward):
                    parts.base(
                        input_ids=input_ids,
                        attention_mask=mask,
                        position_ids=position_ids,
                        use_cache=False,
                    )
                bar.update(len(batch))
        finally:
            bar.close()


def activations(
    model: Any,
    texts: Sequence[str],
    *,
    layers: Layers = "all",
    positions: Positions = "last",
    batch_size: int = 32,
    out: str | os.PathLike[str] | None = None,
    padding_side: str | None = None,
    progress: bool = True,
    client: Any = None,
    read: Reads = "residual",
) -> Activations:
    """Residual-stream activations of ``texts`` at the given token positions.

    Args:
        model: an :class:`~llmasos_widgets.models.ExplainableModel`.
        texts: the texts; a text that occurs several times is run through the model once.
        layers: ``"all"``, one residual site or a list of them: site ``0`` (``emb``) is the
            embedding output (what decoder layer ``L0`` receives), site ``i`` (``after
            L{i-1}``) the output of decoder layer ``L{i-1}``, before the final norm. The
            forward stops after the deepest requested site.
        positions: token positions to read (tokens include any ``<bos>`` the tokenizer adds):
            ``"last"``, ``"all"``, one int for every text, or one int per text; negative ints
            count from the end.
        batch_size: texts per forward pass. Results do not depend on it.
        out: ``None`` keeps the activations in memory; a directory streams them to
            memory-mapped ``.npy`` files there (reopen with ``Activations.open(out)``).
        padding_side: ``"left"`` or ``"right"``; defaults to the tokenizer's. Results do not
            depend on it: positions follow the padding and RoPE positions skip it.
        progress: show a tqdm progress bar.
        read: ``"residual"`` (default) reads the residual sites above; ``"mlp"`` reads
            decoder layers' MLPs instead (``layers`` are then decoder layers ``0..n-1``):
            ``acts[layer]`` is ``[row, 2 * hidden]``, the MLP's input (the pre-MLP norm's
            output) in the first ``hidden`` columns and its output in the rest: the pairs a
            transcoder learns from.
        client: a Dask ``distributed.Client``: spread the texts over its workers, one model
            replica each (``pip install 'llmasos-widgets[dask]'``); same result as locally.
            ``model`` may then also be a name/path each worker loads itself. See
            :func:`~llmasos_widgets.probing._distributed.distributed_activations`.

    Returns:
        :class:`Activations`: ``acts[layer]`` is float32 ``[row, hidden]`` (cast from the
        model's dtype); ``acts.text_index``, ``acts.positions`` and ``acts.token_ids`` say
        which token each row holds.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if client is not None:
        from llmasos_widgets.probing._distributed import distributed_activations

        return distributed_activations(
            model, texts, client=client, layers=layers, positions=positions,
            batch_size=batch_size, out=out, padding_side=padding_side, read=read,
        )  # fmt: skip
    if not hasattr(model, "hf_model"):
        raise TypeError(
            f"model must be an ExplainableModel, got {type(model).__name__}; use "
            "load_model(...) or as_explainable(hf_model, tokenizer) (a name or path is "
            "accepted only with client=, where each worker loads it)"
        )
    side = padding_side or getattr(model.tokenizer, "padding_side", "right") or "right"
    if side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {side!r}")
    layer_list = resolve_layers(layers, anatomy(model.hf_model).n_layers, read)
    plan = plan_rows(model, texts, positions)
    hidden_size = int(model.hf_model.config.hidden_size) * (2 if read == "mlp" else 1)
    n_rows = len(plan.row_text)

    if out is None:
        arrays = {layer: np.empty((n_rows, hidden_size), dtype=np.float32) for layer in layer_list}
        run_plan(
            model, plan, layer_list, arrays,
            batch_size=batch_size, padding_side=side, progress=progress, read=read,
        )  # fmt: skip
        return Activations(
            layers=layer_list,
            hidden_size=hidden_size,
            text_index=plan.text_index,
            positions=plan.row_position,
            token_ids=plan.row_token_ids(),
            arrays=arrays,
        )

    directory = prepare_directory(out)
    maps = open_shard(directory, 0, layer_list, n_rows, hidden_size)
    run_plan(
        model, plan, layer_list, maps,
        batch_size=batch_size, padding_side=side, progress=progress,
    )  # fmt: skip
    for array in maps.values():
        if isinstance(array, np.memmap):
            array.flush()
    del maps
    return finish_directory(
        directory,
        layers=layer_list,
        hidden_size=hidden_size,
        text_index=plan.text_index,
        positions=plan.row_position,
        token_ids=plan.row_token_ids(),
        shard_rows=[n_rows],
    )
