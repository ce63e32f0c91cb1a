"""Full fine-tuning of a small model on a list of documents: seeded, deterministic, on a copy.

Enough to teach the bundled ``tiny-llama`` a changed rule of its language in seconds on a
CPU (``notebooks/tutorial_finetune_compare.ipynb``); not a training framework. The user's
model is never touched: the weights are deep-copied and the copy is returned.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from llmasos_widgets.models import ExplainableModel

PERIOD = "."


def trained_from(document: str) -> int:
    """Tokens at the start of a document (``<bos>`` included) whose prediction is not trained.

    As in ``scripts/train_tiny_llama.py``: a copy sequence (no ``.``) is random in its first
    half, so only its repeat is trained; sentences are trained on every token.
    """
    if document.rstrip().endswith(PERIOD):
        return 0
    return 1 + len(document.split()) // 2


def fine_tune(
    model: ExplainableModel,
    documents: Sequence[str],
    *,
    steps: int,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    seed: int = 0,
    name: str | None = None,
) -> ExplainableModel:
    """A fine-tuned copy of ``model``: ``steps`` AdamW steps of ``batch_size`` documents.

    Documents are drawn with a generator seeded by ``seed`` (with replacement), each followed
    by the tokenizer's end-of-sequence token and right-padded; the loss skips padding and the
    random first half of copy sequences (:func:`trained_from`). Same arguments, same torch
    thread count -> same weights.
    """
    from llmasos_widgets.models import ExplainableModel

    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got {steps} and {batch_size}")
    if not documents:
        raise ValueError("documents is empty; pass the sentences to fine-tune on")
    tokenizer = model.tokenizer
    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
    if pad is None:
        raise ValueError("the tokenizer has no pad token; set tokenizer.pad_token first")
    encoded = [
        [*ids, *([eos] if eos is not None else [])]
        for ids in tokenizer(list(documents))["input_ids"]
    ]
    skipped = [trained_from(doc) for doc in documents]
    tuned = copy.deepcopy(model.hf_model)
    device = model.device
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(
        tuned.parameters(), lr=learning_rate, betas=(0.9, 0.98), weight_decay=0.01
    )
    tuned.train()
    for _ in range(steps):
        rows = rng.integers(len(encoded), size=batch_size)
        width = max(len(encoded[r]) for r in rows)
        ids = torch.full((batch_size, width), pad, dtype=torch.long)
        labels = torch.full((batch_size, width), -100, dtype=torch.long)
        mask = torch.zeros((batch_size, width), dtype=torch.long)
        for i, r in enumerate(rows):
            seq = torch.tensor(encoded[r])
            ids[i, : len(seq)] = seq
            mask[i, : len(seq)] = 1
            labels[i, skipped[r] : len(seq)] = seq[skipped[r] :]
        loss = tuned(
            input_ids=ids.to(device), attention_mask=mask.to(device), labels=labels.to(device)
        ).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(tuned.parameters(), 1.0)
        optimizer.step()
    tuned.eval()
    return ExplainableModel(
        tuned,
        tokenizer,
        name=name or f"{model.name} (fine-tuned)",
        copy_tokens=model.copy_tokens,
    )
