"""Words of the synthetic language, their parts of speech and grammatical number.

Every word has exactly one part of speech and nouns/verbs carry their number in the word
itself (``key``/``keys``, ``is``/``are``), so the labels used for probing are facts of the
lexicon, not guesses of a tagger.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

BOS, EOS, PAD, UNK = "<bos>", "<eos>", "<pad>", "<unk>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, BOS, EOS, UNK)

# Number-neutral determiners: none of them leaks the noun's number.
DETERMINERS: tuple[str, ...] = ("the", "my", "your", "our", "his", "her")

# (singular, plural); irregular plurals included so number is not just a trailing "s".
NOUN_PAIRS: tuple[tuple[str, str], ...] = (
    ("key", "keys"), ("cabinet", "cabinets"), ("table", "tables"), ("dog", "dogs"),
    ("cat", "cats"), ("book", "books"), ("door", "doors"), ("box", "boxes"),
    ("chair", "chairs"), ("lamp", "lamps"), ("window", "windows"), ("car", "cars"),
    ("bird", "birds"), ("tree", "trees"), ("house", "houses"), ("cup", "cups"),
    ("bottle", "bottles"), ("pen", "pens"), ("letter", "letters"), ("picture", "pictures"),
    ("friend", "friends"), ("teacher", "teachers"), ("doctor", "doctors"),
    ("farmer", "farmers"), ("child", "children"), ("man", "men"), ("woman", "women"),
    ("mouse", "mice"), ("foot", "feet"), ("tooth", "teeth"), ("student", "students"),
    ("painter", "painters"), ("horse", "horses"), ("boat", "boats"), ("phone", "phones"),
    ("coin", "coins"), ("flower", "flowers"), ("shelf", "shelves"), ("knife", "knives"),
    ("leaf", "leaves"),
)  # fmt: skip

# (singular, plural) verb forms: only the subject's number decides which one is grammatical.
VERB_PAIRS: tuple[tuple[str, str], ...] = (("is", "are"), ("was", "were"), ("has", "have"))

ADJECTIVES: tuple[str, ...] = (
    "red", "blue", "green", "old", "new", "small", "big", "heavy",
    "quiet", "bright", "dark", "broken", "clean", "empty", "warm", "cold",
)  # fmt: skip

# Prepositions that open the distracting phrase after the subject.
PREPOSITIONS: tuple[str, ...] = (
    "near", "behind", "beside", "under", "above", "with", "from", "by", "for", "to", "on", "in",
)  # fmt: skip
# Prepositions that open a locative complement after a copula ("is on the table").
LOCATIVE_PREPOSITIONS: tuple[str, ...] = ("on", "in", "under", "near", "behind")

PERIOD = "."

SINGULAR_NOUNS: tuple[str, ...] = tuple(s for s, _ in NOUN_PAIRS)
PLURAL_NOUNS: tuple[str, ...] = tuple(p for _, p in NOUN_PAIRS)

# Random sequences for copying are drawn from content words, so induction heads have to
# work on the same embeddings the grammar uses.
COPY_WORDS: tuple[str, ...] = (*SINGULAR_NOUNS, *PLURAL_NOUNS, *ADJECTIVES)

_POS_BY_WORD: dict[str, str] = {
    **dict.fromkeys(SPECIAL_TOKENS, "special"),
    **dict.fromkeys(DETERMINERS, "det"),
    **dict.fromkeys(SINGULAR_NOUNS + PLURAL_NOUNS, "noun"),
    **dict.fromkeys((v for pair in VERB_PAIRS for v in pair), "verb"),
    **dict.fromkeys(ADJECTIVES, "adj"),
    **dict.fromkeys(PREPOSITIONS, "prep"),
    PERIOD: "punct",
}

POS_TAGS: tuple[str, ...] = ("special", "det", "noun", "verb", "adj", "prep", "punct")

_NUMBER_BY_WORD: dict[str, str] = {
    **dict.fromkeys(SINGULAR_NOUNS, "singular"),
    **dict.fromkeys(PLURAL_NOUNS, "plural"),
    **dict.fromkeys((s for s, _ in VERB_PAIRS), "singular"),
    **dict.fromkeys((p for _, p in VERB_PAIRS), "plural"),
}

VOCAB: tuple[str, ...] = tuple(_POS_BY_WORD)
"""Every token of the language, special tokens first (``<pad>`` has id 0)."""


def vocabulary() -> list[str]:
    """All words of the language including ``<pad>``, ``<bos>``, ``<eos>``, ``<unk>``."""
    return list(VOCAB)


def _check_known(words: Iterable[str]) -> list[str]:
    words = list(words)
    unknown = sorted({w for w in words if w not in _POS_BY_WORD})
    if unknown:
        raise ValueError(
            f"words not in the tiny-llama vocabulary: {unknown[:5]}; "
            "see llmasos_widgets.language.vocabulary() for the valid words"
        )
    return words


def pos_tags(words: Sequence[str]) -> list[str]:
    """Part of speech of each word: one of :data:`POS_TAGS`.

    >>> pos_tags(["the", "keys", "near", "the", "old", "cabinet", "are"])
    ['det', 'noun', 'prep', 'det', 'adj', 'noun', 'verb']
    """
    if isinstance(words, str):
        raise TypeError("pos_tags expects a list of words, e.g. text.split(), not a string")
    return [_POS_BY_WORD[w] for w in _check_known(words)]


def grammatical_number(word: str) -> str | None:
    """``"singular"``/``"plural"`` for nouns and verbs, ``None`` for every other word."""
    _check_known([word])
    return _NUMBER_BY_WORD.get(word)


def verb_forms(verb: str) -> tuple[str, str]:
    """The (singular, plural) pair a verb form belongs to, e.g. ``"were" -> ("was", "were")``."""
    for pair in VERB_PAIRS:
        if verb in pair:
            return pair
    raise ValueError(f"{verb!r} is not a verb; the verbs are {[v for p in VERB_PAIRS for v in p]}")
