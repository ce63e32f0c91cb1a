"""Transcoders for every layer of the bundled model, trained the same way by every test that
needs them (splice known answers, attribution graphs, the tutorial): figures in docs/graphs.md.

Deterministic given the seed; one thread (the model and transcoders are tiny: two threads only
spin against each other, see ``one_thread`` in tests/_sae_known.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from llmasos_widgets.language import copy_examples, training_corpus
from tests._sae_known import one_thread

N_TEXTS, CORPUS_SEED = 4000, 5  # documents of the model's own training distribution
TRAIN: dict[str, Any] = dict(width=256, k=16, batch_size=128, epochs=1, lr=4e-3, seed=0)
N_COPY, COPY_LENGTH, COPY_SEED = 200, 10, 31  # held-out ("test" split) copy sequences


def corpus() -> list[str]:
    return training_corpus(N_TEXTS, seed=CORPUS_SEED)


def train_bundled_transcoders(model: Any) -> tuple[list[Any], list[Any]]:
    """``(transcoders, reports)``: one TopK transcoder per layer of ``model`` (the bundled
    tiny-llama), ``transcoders[i]`` replacing layer ``i``'s MLP."""
    from llmasos_widgets.features import train_transcoders

    with one_thread():
        return train_transcoders(model, corpus(), **TRAIN)


def copy_texts() -> list[str]:
    return [e.text for e in copy_examples(N_COPY, length=COPY_LENGTH, seed=COPY_SEED)]


def copying_accuracy(model: Any) -> float:
    """Top-1 accuracy on the repeat of held-out copy sequences (``CopyingAccuracy``: the
    repeat's first token excluded)."""
    from llmasos_widgets.interventions import CopyingAccuracy

    ids = torch.cat([model.encode(text) for text in copy_texts()])  # all the same length
    with torch.no_grad():
        logits = model.hf_model(input_ids=ids, use_cache=False).logits
    return float(CopyingAccuracy().correct(ids, logits).float().mean())


def agreement_accuracy(model: Any) -> float:
    """Share of held-out agreement prompts whose correct verb outscores the wrong one."""
    from tests._sae_known import held_out_prompts, verb_preference

    return float(np.mean(verb_preference(model, held_out_prompts()) > 0))
