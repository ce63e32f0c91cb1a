"""The synthetic language of the bundled ``tiny-llama`` model, with mechanisms known by design.

* agreement: the verb's number (is/are, was/were, has/have) follows the subject noun across
  a prepositional phrase whose noun's number is independent (:func:`agreement_examples`);
* induction/copying: random word sequences repeated twice (:func:`copy_examples`);
* a probe-able feature: the subject's number at the attractor noun (:func:`number_probe_examples`),
  and a part of speech for every word (:func:`pos_tags`).

Everything is deterministic given ``seed``; the ``"test"`` split is disjoint from the training
corpus by a hash rule (``_splits.py``), whatever seeds are used.
"""

from llmasos_widgets.language._agreement import (
    NUMBERS,
    AgreementExample,
    agreement_examples,
    agreement_sentence,
)
from llmasos_widgets.language._copying import CopyExample, copy_examples, random_sequence
from llmasos_widgets.language._corpus import training_corpus
from llmasos_widgets.language._lexicon import (
    ADJECTIVES,
    BOS,
    COPY_WORDS,
    DETERMINERS,
    EOS,
    NOUN_PAIRS,
    PAD,
    PERIOD,
    POS_TAGS,
    PREPOSITIONS,
    SPECIAL_TOKENS,
    UNK,
    VERB_PAIRS,
    VOCAB,
    grammatical_number,
    pos_tags,
    verb_forms,
    vocabulary,
)
from llmasos_widgets.language._probes import ProbeExample, number_probe_examples
from llmasos_widgets.language._splits import SPLITS, split_of

__all__ = [
    "ADJECTIVES",
    "BOS",
    "COPY_WORDS",
    "DETERMINERS",
    "EOS",
    "NOUN_PAIRS",
    "NUMBERS",
    "PAD",
    "PERIOD",
    "POS_TAGS",
    "PREPOSITIONS",
    "SPECIAL_TOKENS",
    "SPLITS",
    "UNK",
    "VERB_PAIRS",
    "VOCAB",
    "AgreementExample",
    "CopyExample",
    "ProbeExample",
    "agreement_examples",
    "agreement_sentence",
    "copy_examples",
    "grammatical_number",
    "number_probe_examples",
    "pos_tags",
    "random_sequence",
    "split_of",
    "training_corpus",
    "verb_forms",
    "vocabulary",
]
