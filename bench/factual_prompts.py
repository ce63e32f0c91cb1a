"""Factual prompts with a known subject, for measuring saliency methods on a real checkpoint.

Each prompt is completed by one fact about its subject (a country, city, ...): the answer's
first token is the target, and the subject's tokens are the known answer a saliency map
should rank first. ``bench/bench_defaults.py`` keeps only the prompts the model it measures
answers correctly (greedy top-1 = the answer's first token) and says how many it kept.
"""

from __future__ import annotations

from typing import NamedTuple


class FactualPrompt(NamedTuple):
    text: str  # the prompt; the next token is explained
    answer: str  # the expected continuation (its first token is the target), with its space
    subject: str  # a substring of ``text`` (never its first word): the fact's subject
    kind: str  # capital, language, currency, ...


def _p(text: str, answer: str, subject: str, kind: str) -> FactualPrompt:
    if subject not in text:
        raise ValueError(f"subject {subject!r} is not in {text!r}")
    return FactualPrompt(text, answer, subject, kind)


_CAPITALS = (
    ("France", "Paris"),
    ("Germany", "Berlin"),
    ("Italy", "Rome"),
    ("Spain", "Madrid"),
    ("Japan", "Tokyo"),
    ("Russia", "Moscow"),
    ("England", "London"),
    ("Egypt", "Cairo"),
    ("Greece", "Athens"),
    ("Portugal", "Lisbon"),
    ("Austria", "Vienna"),
    ("Ireland", "Dublin"),
    ("Norway", "Oslo"),
    ("Sweden", "Stockholm"),
    ("Poland", "Warsaw"),
    ("China", "Beijing"),
    ("Canada", "Ottawa"),
    ("Kenya", "Nairobi"),
    ("Thailand", "Bangkok"),
    ("Cuba", "Havana"),
    ("Peru", "Lima"),
    ("Argentina", "Buenos"),
    ("Mexico", "Mexico"),
    ("Turkey", "Ankara"),
    ("Iran", "Tehran"),
    ("India", "New"),
    ("Australia", "Canberra"),
    ("Hungary", "Budapest"),
    ("Denmark", "Copenhagen"),
    ("Finland", "Helsinki"),
    ("Belgium", "Brussels"),
    ("Netherlands", "Amsterdam"),
    ("Scotland", "Edinburgh"),
    ("Chile", "Santiago"),
    ("Colombia", "Bog"),
    ("Vietnam", "Hanoi"),
)
_LANGUAGES = (
    ("France", "French"),
    ("Germany", "German"),
    ("Italy", "Italian"),
    ("Spain", "Spanish"),
    ("Japan", "Japanese"),
    ("Russia", "Russian"),
    ("Brazil", "Portuguese"),
    ("Portugal", "Portuguese"),
    ("China", "Chinese"),
    ("Greece", "Greek"),
    ("Poland", "Polish"),
    ("Sweden", "Swedish"),
    ("Turkey", "Turkish"),
    ("Mexico", "Spanish"),
    ("Korea", "Korean"),
    ("Egypt", "Arabic"),
    ("Israel", "Hebrew"),
    ("Finland", "Finnish"),
    ("Austria", "German"),
    ("Argentina", "Spanish"),
    ("Chile", "Spanish"),
    ("Cuba", "Spanish"),
    ("Netherlands", "Dutch"),
    ("Thailand", "Thai"),
    ("Vietnam", "Vietnamese"),
    ("Hungary", "Hungarian"),
    ("Denmark", "Danish"),
    ("Norway", "Norwegian"),
    ("Iran", "Persian"),
)
_CURRENCIES = (
    ("Japan", "yen"),
    ("India", "rupee"),
    ("Russia", "rub"),
    ("China", "yuan"),
    ("Mexico", "peso"),
    ("Britain", "pound"),
    ("Switzerland", "Swiss"),
    ("Brazil", "real"),
    ("Korea", "won"),
    ("Poland", "z"),
    ("Sweden", "krona"),
    ("Turkey", "lira"),
)
_CONTINENTS = (
    ("Kenya", "Africa"),
    ("Nigeria", "Africa"),
    ("Brazil", "South"),
    ("Japan", "Asia"),
    ("Germany", "Europe"),
    ("Peru", "South"),
    ("Vietnam", "Asia"),
    ("Norway", "Europe"),
)
_LANDMARKS = (
    ("The Eiffel Tower is located in the city of", "Paris", "Eiffel Tower"),
    ("The Colosseum is located in the city of", "Rome", "Colosseum"),
    ("The Statue of Liberty is located in the city of", "New", "Statue of Liberty"),
    ("The clock tower Big Ben is located in the city of", "London", "Big Ben"),
    ("The Kremlin is located in the city of", "Moscow", "Kremlin"),
    ("The Acropolis is located in the city of", "Athens", "Acropolis"),
)

PROMPTS: tuple[FactualPrompt, ...] = (
    *(_p(f"The capital of {c} is", f" {a}", f" {c}", "capital") for c, a in _CAPITALS),
    *(_p(f"The official language of {c} is", f" {a}", f" {c}", "language") for c, a in _LANGUAGES),
    *(_p(f"The currency of {c} is the", f" {a}", f" {c}", "currency") for c, a in _CURRENCIES),
    *(
        _p(f"The country of {c} is located in", f" {a}", f" {c}", "continent")
        for c, a in _CONTINENTS
    ),
    *(_p(t, f" {a}", f" {s}", "landmark") for t, a, s in _LANDMARKS),
)
"""All candidate prompts (before the model's correctness filter)."""
