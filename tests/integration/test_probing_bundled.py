"""Known answers of probing on the bundled tiny-llama (figures in docs/probing.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import llmasos_widgets
from llmasos_widgets.probing import (
    activations,
    part_of_speech_dataset,
    probe,
    probe_activations,
    subject_number_dataset,
)

CHECKPOINT = Path(llmasos_widgets.__file__).parent / "models" / "tiny-llama"
pytestmark = pytest.mark.skipif(
    not (CHECKPOINT / "model.safetensors").is_file(),
    reason="bundled checkpoint not built yet (scripts/train_tiny_llama.py)",
)
SEED = 11  # held-out ("test" split) prompts, never in the training corpus
# Known-answer bounds; README.md's table quotes these (bench/tables.py reads them from here).
SUBJECT_NUMBER_PROMPTS = 800
BEST_TEST_ACCURACY_MIN = 0.9
BEST_SELECTIVITY_MIN = 0.2
RANDOM_LABELS_SITE = 2  # residual site probed with random labels


@pytest.fixture(scope="module")
def subject_number(bundled):
    data = subject_number_dataset(SUBJECT_NUMBER_PROMPTS, seed=SEED)
    return probe(bundled, data, seed=0, progress=False)


def test_word_i_is_token_i_plus_one(bundled):
    data = subject_number_dataset(8, seed=SEED)
    bos = bundled.tokenizer.bos_token_id
    for text, position in zip(data.texts, data.positions or (), strict=True):
        ids = bundled.encode(text)[0].tolist()
        assert ids[0] == bos and len(ids) == len(text.split()) + 1
        assert bundled.tokenizer.convert_ids_to_tokens(ids[position]) == text.split()[-1]


def test_subject_number_is_decodable_at_the_verb_position(subject_number):
    result = subject_number
    assert result.selectivity is not None and result.control_accuracy is not None
    # At the embeddings the last token is the attractor noun, whose number is independent
    # of the subject's: nothing to read there.
    assert abs(result.test_accuracy[0] - 0.5) < 3 * np.sqrt(0.25 / result.n_test)
    best = int(np.argmax(result.test_accuracy))
    # Only the residual after the last decoder layer has it (figures: bench_bundled.json).
    assert result.test_accuracy[best] >= BEST_TEST_ACCURACY_MIN
    assert result.selectivity[best] >= BEST_SELECTIVITY_MIN
    assert best == len(result.layers) - 1  # moved there by the last layer's attention


def test_random_labels_stay_at_chance_on_real_activations(bundled):
    data = subject_number_dataset(800, seed=SEED)
    acts = activations(
        bundled, data.texts, layers=[RANDOM_LABELS_SITE], positions=data.positions, progress=False
    )
    noise = np.random.default_rng(0).integers(0, 2, size=len(acts))
    result = probe_activations(acts, noise, ["a", "b"], control=False, seed=0)
    assert abs(result.test_accuracy[0] - 0.5) < 3 * np.sqrt(0.25 / result.n_test)


def test_part_of_speech_is_read_off_the_token(bundled):
    """Every word has one part of speech, so the embeddings decide it; word types are also
    easiest to memorize there, so the control task scores highest at layer 0 (measured:
    test 1.00 at every layer, control 0.74 at layer 0 and <= 0.48 after)."""
    result = probe(bundled, part_of_speech_dataset(60, seed=SEED), progress=False)
    assert result.test_accuracy[0] >= 0.95
    assert result.control_accuracy is not None and result.selectivity is not None
    assert result.control_accuracy[0] > result.control_accuracy[1:].max() + 0.1
    assert result.selectivity[0] == result.selectivity.min()
