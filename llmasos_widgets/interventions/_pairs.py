"""Minimal pairs from the bundled model's language, for patching with a known answer.

:func:`agreement_twins` takes plural-subject agreement prompts (``language.agreement_examples``)
and builds each one's singular twin: the same words with the subject noun in the singular.
The two differ in one token, so patching the plural prompt (clean) into its twin (corrupted)
asks where the subject's number is carried on its way to the verb.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmasos_widgets.language import NOUN_PAIRS, AgreementExample, agreement_examples, verb_forms

_SINGULAR = {plural: singular for singular, plural in NOUN_PAIRS}


@dataclass(frozen=True)
class AgreementTwin:
    """A plural-subject prompt (``clean``) and its singular twin (``corrupted``).

    Token positions assume the bundled tokenizer (``<bos>`` first, one token per word).
    """

    clean: str
    corrupted: str
    subject_position: int
    attractor_position: int
    plural_verb: str
    singular_verb: str
    attractor_number: str

    @property
    def target(self) -> tuple[str, str]:
        """``(plural verb, singular verb)``: their logit difference is > 0 on the clean prompt."""
        return (self.plural_verb, self.singular_verb)


def twin_of(example: AgreementExample) -> AgreementTwin:
    """The twin pair of a plural-subject ``example``."""
    if example.number != "plural":
        raise ValueError(f"twins start from a plural-subject prompt, got {example.number!r}")
    words = list(example.words)
    words[example.subject_index] = _SINGULAR[words[example.subject_index]]
    singular_verb, plural_verb = verb_forms(example.correct_verb)
    return AgreementTwin(
        clean=example.text,
        corrupted=" ".join(words),
        subject_position=example.subject_index + 1,
        attractor_position=example.attractor_index + 1,
        plural_verb=plural_verb,
        singular_verb=singular_verb,
        attractor_number=example.attractor_number,
    )


def agreement_twins(n: int, *, seed: int = 0, split: str = "test") -> list[AgreementTwin]:
    """``n`` twin pairs from held-out plural-subject prompts (attractors of both numbers,
    alternating)."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    examples = agreement_examples(2 * n, seed=seed, split=split)
    return [twin_of(example) for example in examples if example.number == "plural"][:n]
