"""Subject-verb number agreement across a distracting prepositional phrase.

Grammar of an agreement sentence (``[x]`` optional, ``PP`` repeated 0-2 times in training)::

    S    -> NP_subj PP* VERB COMP .
    NP   -> DET [ADJ] NOUN
    PP   -> PREP NP_attr
    COMP -> ADJ | LOC_PREP NP            (after is/are, was/were)
    COMP -> NP                           (after has/have)

The subject's number and every attractor's number are drawn independently, so the only
word that predicts the verb's number is the subject noun.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from llmasos_widgets.language._lexicon import (
    ADJECTIVES,
    DETERMINERS,
    LOCATIVE_PREPOSITIONS,
    PERIOD,
    PLURAL_NOUNS,
    PREPOSITIONS,
    SINGULAR_NOUNS,
    VERB_PAIRS,
)
from llmasos_widgets.language._splits import check_split, split_of

NUMBERS: tuple[str, str] = ("singular", "plural")
ADJECTIVE_PROBABILITY = 0.3
# Bounds the rejection sampling of distinct prompts of one split.
MAX_TRIES_PER_EXAMPLE = 100
VerbRule = Literal["subject", "nearest"]
"""What the verb agrees with: the subject (the language) or the nearest noun before it
(the changed rule of :mod:`llmasos_widgets.language._variants`)."""


@dataclass(frozen=True)
class AgreementExample:
    """A prompt that stops right before the verb.

    Indices are word indices into ``words`` (the prompt words, without ``<bos>``); with the
    bundled tokenizer, token position = word index + 1 because ``<bos>`` comes first.
    """

    text: str
    """The prompt, words joined by single spaces, excluding the verb."""
    words: list[str]
    subject_index: int
    attractor_index: int
    verb_index: int
    """Position the verb would take: always ``len(words)``."""
    number: str
    """Number of the subject, ``"singular"`` or ``"plural"``."""
    correct_verb: str
    wrong_verb: str
    attractor_number: str
    """Number of the attractor noun; independent of ``number``."""
    sentence: str
    """The complete grammatical sentence: prompt, correct verb, complement and period."""

    @property
    def full_text(self) -> str:
        """The prompt followed by the correct verb."""
        return f"{self.text} {self.correct_verb}"


def _noun(rng: np.random.Generator, number: str) -> str:
    nouns = SINGULAR_NOUNS if number == "singular" else PLURAL_NOUNS
    return nouns[rng.integers(len(nouns))]


def _noun_phrase(rng: np.random.Generator, number: str) -> list[str]:
    """DET [ADJ] NOUN -- the noun is always the last word."""
    words = [DETERMINERS[rng.integers(len(DETERMINERS))]]
    if rng.random() < ADJECTIVE_PROBABILITY:
        words.append(ADJECTIVES[rng.integers(len(ADJECTIVES))])
    words.append(_noun(rng, number))
    return words


def _random_number(rng: np.random.Generator) -> str:
    return NUMBERS[rng.integers(2)]


def _complement(rng: np.random.Generator, verb_pair: int) -> list[str]:
    if VERB_PAIRS[verb_pair][0] == "has":
        return _noun_phrase(rng, _random_number(rng))
    if rng.random() < 0.5:
        return [ADJECTIVES[rng.integers(len(ADJECTIVES))]]
    preposition = LOCATIVE_PREPOSITIONS[rng.integers(len(LOCATIVE_PREPOSITIONS))]
    return [preposition, *_noun_phrase(rng, _random_number(rng))]


def _prompt(
    rng: np.random.Generator, subject_number: str, attractor_numbers: list[str]
) -> tuple[list[str], int, list[int]]:
    """Prompt words, the subject's index and each attractor noun's index."""
    words = _noun_phrase(rng, subject_number)
    subject_index = len(words) - 1
    attractor_indices = []
    for attractor_number in attractor_numbers:
        words.append(PREPOSITIONS[rng.integers(len(PREPOSITIONS))])
        words.extend(_noun_phrase(rng, attractor_number))
        attractor_indices.append(len(words) - 1)
    return words, subject_index, attractor_indices


def _finish(
    rng: np.random.Generator, prompt: list[str], subject_number: str
) -> tuple[str, str, list[str]]:
    """(correct verb, wrong verb, complete sentence words)."""
    verb_pair = int(rng.integers(len(VERB_PAIRS)))
    singular, plural = VERB_PAIRS[verb_pair]
    correct, wrong = (singular, plural) if subject_number == "singular" else (plural, singular)
    return correct, wrong, [*prompt, correct, *_complement(rng, verb_pair), PERIOD]


def agreement_sentence(rng: np.random.Generator, *, split: str = "train") -> list[str]:
    """One complete sentence with 0-2 attractor phrases whose prompt belongs to ``split``."""
    return _sentence(rng, split=split, verb_agrees_with="subject")


def _sentence(rng: np.random.Generator, *, split: str, verb_agrees_with: VerbRule) -> list[str]:
    """One complete sentence of ``split``; the verb takes the number of the subject or, under
    ``"nearest"``, of the last noun before it (the last attractor, or the subject)."""
    check_split(split)
    while True:
        n_attractors = int(rng.choice(3, p=[0.2, 0.6, 0.2]))
        subject_number = _random_number(rng)
        attractors = [_random_number(rng) for _ in range(n_attractors)]
        prompt, _, _ = _prompt(rng, subject_number, attractors)
        if split_of(prompt) == split:
            verb_number = subject_number
            if verb_agrees_with == "nearest" and attractors:
                verb_number = attractors[-1]
            return _finish(rng, prompt, verb_number)[2]


def agreement_examples(n: int, *, seed: int, split: str = "test") -> list[AgreementExample]:
    """``n`` distinct agreement prompts with exactly one attractor phrase.

    The four (subject number, attractor number) conditions cycle, so for ``n`` divisible
    by 4 every condition occurs exactly ``n / 4`` times and the two numbers are independent.
    Prompts of the ``"test"`` split never occur in :func:`training_corpus`.
    """
    return _examples(n, seed=seed, split=split, verb_agrees_with="subject")


def _examples(
    n: int, *, seed: int, split: str, verb_agrees_with: VerbRule
) -> list[AgreementExample]:
    """:func:`agreement_examples` with the verb agreeing with the subject or, under
    ``"nearest"``, with the attractor; the prompts drawn are the same under both rules."""
    check_split(split)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng(seed)
    examples: list[AgreementExample] = []
    seen: set[str] = set()
    for _ in range(MAX_TRIES_PER_EXAMPLE * n):
        if len(examples) == n:
            break
        condition = len(examples) % 4
        subject_number, attractor_number = NUMBERS[condition % 2], NUMBERS[condition // 2]
        words, subject_index, (attractor_index,) = _prompt(rng, subject_number, [attractor_number])
        verb_number = attractor_number if verb_agrees_with == "nearest" else subject_number
        correct, wrong, sentence = _finish(rng, words, verb_number)
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
        raise ValueError(f"could not draw {n} distinct agreement prompts; ask for fewer")
    return examples
