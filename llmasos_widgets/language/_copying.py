"""Induction / copying: a random word sequence followed by an exact repeat of itself.

Words are drawn without replacement within a sequence, so in the repeat every token has
exactly one earlier occurrence and the next word is determined by it: the second half is
predictable only by looking back at what followed that earlier occurrence (induction).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from llmasos_widgets.language._lexicon import COPY_WORDS
from llmasos_widgets.language._splits import check_split, split_of

MIN_LENGTH = 2
# Bounds the search for distinct sequences when few exist (short lengths).
MAX_TRIES_PER_EXAMPLE = 100


@dataclass(frozen=True)
class CopyExample:
    """``words == first_half + first_half``; ``period == len(first_half)``.

    With the bundled tokenizer the token at position ``i`` (``<bos>`` is 0) repeats the token
    at ``i - period``, so an induction head at ``i`` attends to ``i - period + 1``.
    """

    text: str
    words: list[str]
    period: int


def _check_length(length: int) -> int:
    if not MIN_LENGTH <= length <= len(COPY_WORDS):
        raise ValueError(
            f"length must be between {MIN_LENGTH} and {len(COPY_WORDS)} "
            f"(words are drawn without replacement), got {length}"
        )
    return length


def random_sequence(rng: np.random.Generator, length: int, *, split: str = "train") -> list[str]:
    """``length`` distinct random content words whose sequence belongs to ``split``."""
    check_split(split)
    _check_length(length)
    while True:
        picks = rng.choice(len(COPY_WORDS), size=length, replace=False)
        words = [COPY_WORDS[i] for i in picks]
        if split_of(words) == split:
            return words


def copy_examples(n: int, *, length: int, seed: int, split: str = "test") -> list[CopyExample]:
    """``n`` distinct random sequences of ``length`` words, each repeated twice."""
    check_split(split)
    _check_length(length)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng(seed)
    examples: list[CopyExample] = []
    seen: set[tuple[str, ...]] = set()
    for _ in range(MAX_TRIES_PER_EXAMPLE * n):
        if len(examples) == n:
            break
        half = random_sequence(rng, length, split=split)
        if tuple(half) in seen:
            continue
        seen.add(tuple(half))
        words = half + half
        examples.append(CopyExample(text=" ".join(words), words=words, period=length))
    if len(examples) < n:
        raise ValueError(f"could not draw {n} distinct sequences of length {length}; ask for fewer")
    return examples
