"""The target's value on many prompts, batched: the per-fill numbers of
:func:`~llmasos_widgets.interventions.counterfactuals`, locally or on Dask workers.

Prompts of a batch are left-padded with an attention mask and position ids that count real
tokens only (as probing's batches do), so each prompt gets the RoPE angles and attention it
gets alone; the values equal one-prompt-at-a-time forwards to float rounding. Prompts are
sorted by length first so a batch pads little.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from llmasos_widgets.targets import ResolvedTarget
from llmasos_widgets.tracing import eval_mode


def _left_pad(
    rows: Sequence[Sequence[int]], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """input_ids, attention_mask and position_ids ``[batch, token]``, real tokens at the end."""
    width = max(len(ids) for ids in rows)
    input_ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for b, ids in enumerate(rows):
        input_ids[b, width - len(ids) :] = ids
        mask[b, width - len(ids) :] = 1
    positions = np.maximum(mask.cumsum(axis=1) - 1, 0)  # RoPE counts real tokens only
    return torch.from_numpy(input_ids), torch.from_numpy(mask), torch.from_numpy(positions)


def fill_values(
    model: Any,
    token_ids: Sequence[Sequence[int]],
    positions: Sequence[int],
    target: ResolvedTarget,
    *,
    batch_size: int,
    bar: Any = None,
) -> np.ndarray:
    """float32 ``[prompt]``: ``target`` read after token ``positions[i]`` (non-negative) of
    prompt ``i``. ``bar`` (a tqdm bar, optional) advances by each batch's prompts."""
    hf_model = model.hf_model
    pad_id = getattr(model.tokenizer, "pad_token_id", None)
    pad_id = 0 if pad_id is None else int(pad_id)
    order = sorted(range(len(token_ids)), key=lambda i: -len(token_ids[i]))
    out = np.empty(len(token_ids), np.float32)
    with torch.inference_mode(), eval_mode(hf_model):
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            rows = [token_ids[i] for i in batch]
            input_ids, mask, position_ids = (t.to(model.device) for t in _left_pad(rows, pad_id))
            # columns from the end: the last token is 1, so keep covers the farthest one
            back = [len(ids) - positions[i] for ids, i in zip(rows, batch, strict=True)]
            keep = max(back)
            logits = hf_model(
                input_ids=input_ids, attention_mask=mask, position_ids=position_ids,
                use_cache=False, logits_to_keep=keep,
            ).logits[:, -keep:]  # fmt: skip
            rows_index = torch.arange(len(batch), device=logits.device)
            columns = torch.tensor([keep - b for b in back], device=logits.device)
            picked = logits[rows_index, columns]
            out[batch] = target(picked).cpu().numpy()
            if bar is not None:
                bar.update(len(batch))
    return out


def chunk_values(
    model_reference: Any,
    token_ids: Sequence[Sequence[int]],
    positions: Sequence[int],
    target: ResolvedTarget,
    batch_size: int,
) -> np.ndarray:
    """Runs on a Dask worker: :func:`fill_values` of one chunk on the worker's model replica."""
    from llmasos_widgets._distributed import worker_model

    model = worker_model(model_reference)
    return fill_values(model, token_ids, positions, target, batch_size=batch_size)
