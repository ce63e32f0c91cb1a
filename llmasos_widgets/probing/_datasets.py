"""Labelled probing datasets: the user's own, and ready ones from the bundled language."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

# The bundled tokenizer puts <bos> first, so word i of a text is token i + 1.
BUNDLED_BOS_OFFSET = 1


@dataclass(frozen=True, kw_only=True)
class ProbeDataset:
    """Rows of (text, label, token position) to probe.

    ``positions`` are token positions as the model's tokenizer splits the text (``<bos>``
    included; negative counts from the end), or ``None`` to let ``probe(positions=...)``
    decide. The same text may occur in several rows (e.g. one row per word); it is run
    through the model once.
    """

    texts: tuple[str, ...]
    labels: tuple[Hashable, ...]
    positions: tuple[int, ...] | None = None
    name: str = "custom"

    def __post_init__(self) -> None:
        object.__setattr__(self, "texts", tuple(self.texts))
        object.__setattr__(self, "labels", tuple(self.labels))
        if not self.texts:
            raise ValueError("the dataset is empty; pass at least two rows with different labels")
        if len(self.labels) != len(self.texts):
            raise ValueError(
                f"{len(self.labels)} labels for {len(self.texts)} texts; pass one label per text"
            )
        for i, text in enumerate(self.texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{i}] is {type(text).__name__}, expected str")
        for i, label in enumerate(self.labels):
            if not isinstance(label, Hashable) or label is None:
                raise TypeError(f"labels[{i}] is {label!r}; labels must be strings or ints")
        if len(set(self.labels)) < 2:
            raise ValueError(
                f"every row has the label {self.labels[0]!r}: a probe needs at least two "
                "classes to tell apart; add rows of another class"
            )
        if self.positions is not None:
            positions = tuple(self.positions)
            object.__setattr__(self, "positions", positions)
            if len(positions) != len(self.texts):
                raise ValueError(
                    f"{len(positions)} positions for {len(self.texts)} texts; pass one token "
                    "position per text, or positions=None"
                )
            for i, position in enumerate(positions):
                if isinstance(position, bool) or not isinstance(position, int):
                    raise TypeError(f"positions[{i}] is {position!r}; positions must be ints")

    def __len__(self) -> int:
        return len(self.texts)

    def classes(self) -> list[Hashable]:
        """Distinct labels in a stable order (sorted when they compare, else by string)."""
        distinct = set(self.labels)
        try:
            return sorted(distinct)  # type: ignore[type-var]
        except TypeError:
            return sorted(distinct, key=str)


def as_probe_dataset(data: Any) -> ProbeDataset:
    """A :class:`ProbeDataset` from a ``ProbeDataset``, a pandas DataFrame with columns
    ``text``/``label`` (and optionally ``position``), or a list of ``(text, label)`` or
    ``(text, label, position)`` tuples."""
    if isinstance(data, ProbeDataset):
        return data
    columns = getattr(data, "columns", None)
    if columns is not None:  # a pandas DataFrame, without importing pandas
        missing = {"text", "label"} - set(columns)
        if missing:
            raise ValueError(
                f"the DataFrame lacks column(s) {sorted(missing)}; it needs 'text' and "
                f"'label' (and optionally 'position'), has {list(columns)}"
            )
        positions = None
        if "position" in columns:
            positions = tuple(int(p) for p in data["position"])
        return ProbeDataset(
            texts=tuple(data["text"]),
            labels=tuple(_plain(label) for label in data["label"]),
            positions=positions,
        )
    if isinstance(data, (str, bytes)) or not isinstance(data, Sequence):
        raise TypeError(
            f"dataset must be a ProbeDataset, a DataFrame or a list of (text, label[, "
            f"position]) tuples, got {type(data).__name__}"
        )
    rows = list(data)
    if not rows:
        raise ValueError("the dataset is empty; pass at least two rows with different labels")
    widths = {len(row) if isinstance(row, (tuple, list)) else -1 for row in rows}
    if widths not in ({2}, {3}):
        raise ValueError(
            "every row must be a (text, label) or a (text, label, position) tuple, all of "
            "the same length"
        )
    return ProbeDataset(
        texts=tuple(row[0] for row in rows),
        labels=tuple(_plain(row[1]) for row in rows),
        positions=tuple(row[2] for row in rows) if widths == {3} else None,
    )


def _plain(label: Any) -> Any:
    """numpy scalars (from DataFrames) to Python scalars, so labels save as JSON."""
    return label.item() if hasattr(label, "item") else label


def subject_number_dataset(n: int, *, seed: int, split: str = "test") -> ProbeDataset:
    """Subject number (``"singular"``/``"plural"``) read at the last token of agreement prompts.

    The prompt stops right before the verb (``"the keys near the old cabinet"``), so the last
    token's residual is what predicts the verb's number. That token is the attractor noun,
    whose own number is independent of the subject's: decoding the label there means the
    model moved the subject's number to it. Balanced for ``n`` divisible by 4.
    """
    from llmasos_widgets.language import number_probe_examples

    examples = number_probe_examples(n, seed=seed, split=split)
    return ProbeDataset(
        texts=tuple(ex.text for ex in examples),
        labels=tuple(ex.label for ex in examples),
        positions=tuple(ex.position + BUNDLED_BOS_OFFSET for ex in examples),
        name="subject number",
    )


def part_of_speech_dataset(n: int, *, seed: int, split: str = "test") -> ProbeDataset:
    """Part of speech of every word of ``n`` complete agreement sentences (about 10 rows each).

    Every word has one part of speech in this language, so token identity alone decides the
    label: a good probe here has high accuracy but, against the control task, low selectivity.
    """
    from llmasos_widgets.language import agreement_examples, pos_tags

    texts: list[str] = []
    labels: list[str] = []
    positions: list[int] = []
    for example in agreement_examples(n, seed=seed, split=split):
        words = example.sentence.split()
        for i, tag in enumerate(pos_tags(words)):
            texts.append(example.sentence)
            labels.append(tag)
            positions.append(i + BUNDLED_BOS_OFFSET)
    return ProbeDataset(
        texts=tuple(texts),
        labels=tuple(labels),
        positions=tuple(positions),
        name="part of speech",
    )
