"""Labelled datasets for probing the residual stream of the bundled model."""

from __future__ import annotations

from dataclasses import dataclass

from llmasos_widgets.language._agreement import agreement_examples


@dataclass(frozen=True)
class ProbeExample:
    """One labelled position: probe the residual stream at word ``position``.

    With the bundled tokenizer the token position is ``position + 1`` (``<bos>`` is 0).
    """

    text: str
    words: list[str]
    position: int
    label: str
    control_label: str
    """A label of the same kind that the model does not need here (for selectivity)."""


def number_probe_examples(n: int, *, seed: int, split: str = "test") -> list[ProbeExample]:
    """Subject number, read at the last word before the verb.

    That word is always the attractor noun, whose own number (``control_label``) is drawn
    independently of the subject's: a probe that reads the subject's number there reads
    information the model moved from the subject, not the current token's identity.
    Balanced: for ``n`` divisible by 4 each (label, control_label) pair occurs ``n / 4`` times.
    """
    return [
        ProbeExample(
            text=ex.text,
            words=ex.words,
            position=ex.verb_index - 1,
            label=ex.number,
            control_label=ex.attractor_number,
        )
        for ex in agreement_examples(n, seed=seed, split=split)
    ]
