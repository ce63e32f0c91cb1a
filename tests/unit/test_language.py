"""The synthetic language: determinism, known structure, disjoint held-out split."""

from __future__ import annotations

from collections import Counter

import pytest

from llmasos_widgets import language
from llmasos_widgets.language import (
    agreement_examples,
    copy_examples,
    grammatical_number,
    number_probe_examples,
    pos_tags,
    split_of,
    training_corpus,
    verb_forms,
    vocabulary,
)


def test_vocabulary_has_special_tokens_first_and_no_duplicates():
    words = vocabulary()
    assert words[:4] == ["<pad>", "<bos>", "<eos>", "<unk>"]
    assert len(words) == len(set(words)) == 125
    assert words == list(language.VOCAB)


def test_same_seed_same_data_other_seed_other_data():
    assert agreement_examples(20, seed=3) == agreement_examples(20, seed=3)
    assert copy_examples(5, length=7, seed=3) == copy_examples(5, length=7, seed=3)
    assert training_corpus(50, seed=3) == training_corpus(50, seed=3)
    assert agreement_examples(20, seed=3) != agreement_examples(20, seed=4)
    assert training_corpus(50, seed=3) != training_corpus(50, seed=4)


def test_agreement_indices_point_at_subject_attractor_and_verb_slot():
    for ex in agreement_examples(200, seed=0):
        assert ex.text == " ".join(ex.words)
        assert ex.verb_index == len(ex.words)
        assert pos_tags([ex.words[ex.subject_index]]) == ["noun"]
        assert grammatical_number(ex.words[ex.subject_index]) == ex.number
        assert grammatical_number(ex.words[ex.attractor_index]) == ex.attractor_number
        # The subject is the only noun before the preposition; the attractor ends the prompt.
        tags = pos_tags(ex.words)
        assert tags.index("noun") == ex.subject_index
        assert tags.index("prep") == ex.subject_index + 1
        assert ex.attractor_index == len(ex.words) - 1
        assert grammatical_number(ex.correct_verb) == ex.number
        assert verb_forms(ex.correct_verb) == verb_forms(ex.wrong_verb)
        assert ex.correct_verb != ex.wrong_verb
        assert ex.full_text == f"{ex.text} {ex.correct_verb}"
        assert ex.sentence.startswith(ex.full_text + " ") and ex.sentence.endswith(" .")


def test_subject_and_attractor_numbers_are_independent_and_balanced():
    examples = agreement_examples(400, seed=1)
    table = Counter((ex.number, ex.attractor_number) for ex in examples)
    assert table == {
        ("singular", "singular"): 100,
        ("singular", "plural"): 100,
        ("plural", "singular"): 100,
        ("plural", "plural"): 100,
    }


def test_all_verb_pairs_are_used():
    verbs = {ex.correct_verb for ex in agreement_examples(200, seed=2)}
    assert verbs == {"is", "are", "was", "were", "has", "have"}


def test_agreement_prompts_are_distinct_and_in_their_split():
    test = agreement_examples(300, seed=5, split="test")
    train = agreement_examples(300, seed=5, split="train")
    assert len({ex.text for ex in test}) == 300
    assert all(split_of(ex.words) == "test" for ex in test)
    assert all(split_of(ex.words) == "train" for ex in train)
    assert not {ex.text for ex in test} & {ex.text for ex in train}


def test_training_corpus_never_contains_a_held_out_prompt_or_copy_sequence():
    corpus = training_corpus(3000, seed=0)
    agreement = [doc.split() for doc in corpus if doc.endswith(" .")]
    copies = [doc.split() for doc in corpus if not doc.endswith(" .")]
    assert 1200 < len(agreement) < 1800  # copy_fraction=0.5
    prompts = set()
    for words in agreement:
        verb_index = pos_tags(words).index("verb")
        assert split_of(words[:verb_index]) == "train"
        prompts.add(" ".join(words[:verb_index]))
    for words in copies:
        assert words[: len(words) // 2] == words[len(words) // 2 :]
        assert split_of(words[: len(words) // 2]) == "train"
    assert not prompts & {ex.text for ex in agreement_examples(500, seed=0)}


def test_hash_rule_holds_out_about_a_fifth():
    examples = agreement_examples(2000, seed=9, split="train")
    assert all(split_of(ex.words) == "train" for ex in examples)
    test_share = sum(split_of(ex.words[:-1]) == "test" for ex in examples) / len(examples)
    assert 0.17 < test_share < 0.23


def test_copy_examples_repeat_exactly_without_inner_repeats():
    for ex in copy_examples(50, length=12, seed=0):
        assert ex.period == 12
        assert ex.words[:12] == ex.words[12:]
        assert len(set(ex.words[:12])) == 12
        assert ex.text == " ".join(ex.words)
        assert set(ex.words) <= set(language.COPY_WORDS)
        assert split_of(ex.words[:12]) == "test"


def test_copy_lengths_in_corpus_span_the_requested_range():
    corpus = training_corpus(2000, seed=0, copy_fraction=1.0, min_copy_length=5, max_copy_length=8)
    periods = {len(doc.split()) // 2 for doc in corpus}
    assert periods == {5, 6, 7, 8}


def test_pos_tags_known_answer():
    sentence = "<bos> the old keys near my cabinet are on the table ."
    assert pos_tags(sentence.split()) == [
        "special", "det", "adj", "noun", "prep", "det", "noun",
        "verb", "prep", "det", "noun", "punct",
    ]  # fmt: skip
    assert set(pos_tags(vocabulary())) == set(language.POS_TAGS)


def test_grammatical_number_known_answers():
    assert grammatical_number("children") == "plural"
    assert grammatical_number("mouse") == "singular"
    assert grammatical_number("were") == "plural"
    assert grammatical_number("the") is None


def test_number_probe_reads_the_attractor_position():
    examples = number_probe_examples(8, seed=0)
    assert [ex.label for ex in examples[:4]] == ["singular", "plural", "singular", "plural"]
    assert [ex.control_label for ex in examples[:4]] == ["singular", "singular", "plural", "plural"]
    for ex in examples:
        assert ex.position == len(ex.words) - 1
        assert grammatical_number(ex.words[ex.position]) == ex.control_label


def test_errors_name_the_valid_choices():
    with pytest.raises(ValueError, match=r"valid splits are \['train', 'test'\]"):
        agreement_examples(1, seed=0, split="validation")
    with pytest.raises(ValueError, match="vocabulary"):
        pos_tags(["the", "gizmo"])
    with pytest.raises(TypeError, match="list of words"):
        pos_tags("the key")
    with pytest.raises(ValueError, match="length must be between"):
        copy_examples(1, length=1, seed=0)
