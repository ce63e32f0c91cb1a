"""The training corpus of the bundled model: agreement sentences mixed with copy sequences."""

from __future__ import annotations

import numpy as np

from llmasos_widgets.language._agreement import agreement_sentence
from llmasos_widgets.language._copying import random_sequence


def training_corpus(
    n_sentences: int,
    *,
    seed: int,
    copy_fraction: float = 0.5,
    min_copy_length: int = 5,
    max_copy_length: int = 20,
) -> list[str]:
    """``n_sentences`` documents of the ``"train"`` split, words joined by single spaces.

    Each document is either one agreement sentence (0-2 attractor phrases, ending in ``.``)
    or, with probability ``copy_fraction``, a random sequence of ``min_copy_length`` to
    ``max_copy_length`` words repeated twice. No ``<bos>``/``<eos>``: the tokenizer adds those.
    """
    if n_sentences < 0:
        raise ValueError(f"n_sentences must be >= 0, got {n_sentences}")
    if not 0.0 <= copy_fraction <= 1.0:
        raise ValueError(f"copy_fraction must be in [0, 1], got {copy_fraction}")
    if min_copy_length > max_copy_length:
        raise ValueError(
            f"min_copy_length ({min_copy_length}) must be <= max_copy_length ({max_copy_length})"
        )
    rng = np.random.default_rng(seed)
    documents = []
    for _ in range(n_sentences):
        if rng.random() < copy_fraction:
            length = int(rng.integers(min_copy_length, max_copy_length + 1))
            half = random_sequence(rng, length, split="train")
            documents.append(" ".join(half + half))
        else:
            documents.append(" ".join(agreement_sentence(rng, split="train")))
    return documents
