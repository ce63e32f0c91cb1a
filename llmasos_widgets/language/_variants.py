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

from llmasos_widgets.language._agreement import (
    NUMBERS,
    AgreementExample,
    _finish,
    _prompt,
    _random_number,
)
from llmasos_widgets.language._splits import check_split, split_of

_MAX_TRIES_PER_EXAMPLE = 100


def nearest_noun_sentence(rng: np.random.Generator, *, split: str = "train") -> list[str]:
    """One complete sentence, 0-2 attractor phrases, whose verb agrees with the nearest noun."""
    check_split(split)
    while True:
        n_attractors = int(rng.choice(3, p=[0.2, 0.6, 0.2]))
        subject_number = _random_number(rng)
        attractors = [_random_number(rng) for _ in range(n_attractors)]
        prompt, _, _ = _prompt(rng, subject_number, attractors)
        if split_of(prompt) == split:
            nearest = attractors[-1] if attractors else subject_number
            return _finish(rng, prompt, nearest)[2]


def nearest_noun_examples(n: int, *, seed: int, split: str = "test") -> list[AgreementExample]:
    """``n`` distinct one-attractor prompts whose ``correct_verb`` agrees with the attractor.

    Conditions cycle like :func:`~llmasos_widgets.language.agreement_examples`: for ``n``
    divisible by 4 subject and attractor numbers are balanced and independent, so in half of
    the examples the new rule and the old one ask for different verbs. ``number`` stays the
    subject's number; ``correct_verb``/``wrong_verb`` follow ``attractor_number``.
    """
    check_split(split)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng(seed)
    examples: list[AgreementExample] = []
    seen: set[str] = set()
    for _ in range(_MAX_TRIES_PER_EXAMPLE * n):
        if len(examples) == n:
            break
        condition = len(examples) % 4
        subject_number, attractor_number = NUMBERS[condition % 2], NUMBERS[condition // 2]
        words, subject_index, (attractor_index,) = _prompt(rng, subject_number, [attractor_number])
        correct, wrong, sentence = _finish(rng, words, attractor_number)
        text = " ".join(words)
        if text in seen or split_of(words) != split:
            continue
        seen.add(text)
        examples.append(
            AgreementExample(
                text=text,
                words=words,
                subject_index=subject_index,
                attractor_index=attractor_index,
                verb_index=len(words),
                number=subject_number,
                correct_verb=correct,
                wrong_verb=wrong,
                attractor_number=attractor_number,
                sentence=" ".join(sentence),
            )
        )
    if len(examples) < n:
        raise ValueError(f"could not draw {n} distinct prompts; ask for fewer")
    return examples


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
