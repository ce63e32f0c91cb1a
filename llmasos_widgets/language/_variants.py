"""A changed rule of the language, for fine-tuning: the verb agrees with the *nearest* noun.

The bundled model learned that the verb's number follows the subject
(``the key near the cabinets is``). :func:`nearest_noun_sentence` writes the same sentences
with the verb agreeing with the last noun before it instead -- the last attractor, or the
subject when there is none (``the key near the cabinets are``). Prompts are drawn exactly as
in :mod:`llmasos_widgets.language._agreement` and split by the same hash rule, so a held-out
prompt of the ``"test"`` split was never trained on, under either rule.
"""

from __future__ import annotations

import numpy as np

from llmasos_widgets.language._agreement import AgreementExample, _examples, _sentence


def nearest_noun_sentence(rng: np.random.Generator, *, split: str = "train") -> list[str]:
    """One complete sentence, 0-2 attractor phrases, whose verb agrees with the nearest noun."""
    return _sentence(rng, split=split, verb_agrees_with="nearest")


def nearest_noun_examples(n: int, *, seed: int, split: str = "test") -> list[AgreementExample]:
    """``n`` distinct one-attractor prompts whose ``correct_verb`` agrees with the attractor.

    Conditions cycle like :func:`~llmasos_widgets.language.agreement_examples`: for ``n``
    divisible by 4 subject and attractor numbers are balanced and independent, so in half of
    the examples the new rule and the old one ask for different verbs. ``number`` stays the
    subject's number; ``correct_verb``/``wrong_verb`` follow ``attractor_number``.
    """
    return _examples(n, seed=seed, split=split, verb_agrees_with="nearest")


def nearest_noun_corpus(n_documents: int, *, seed: int, copy_fraction: float = 0.5) -> list[str]:
    """``n_documents`` training documents (``"train"`` split) under the changed rule: nearest-
    noun sentences mixed with copy sequences of 5-20 words (``copy_fraction`` of them) so that
    fine-tuning keeps induction, as :func:`~llmasos_widgets.language.training_corpus` does."""
    from llmasos_widgets.language._copying import random_sequence

    if n_documents < 0:
        raise ValueError(f"n_documents must be >= 0, got {n_documents}")
    if not 0.0 <= copy_fraction <= 1.0:
        raise ValueError(f"copy_fraction must be in [0, 1], got {copy_fraction}")
    rng = np.random.default_rng(seed)
    documents = []
    for _ in range(n_documents):
        if rng.random() < copy_fraction:
            half = random_sequence(rng, int(rng.integers(5, 21)), split="train")
            documents.append(" ".join(half + half))
        else:
            documents.append(" ".join(nearest_noun_sentence(rng, split="train")))
    return documents
