"""Fine-tune the bundled model on a changed rule, then find what changed with compare().

The changed rule (``language/_variants.py``): the verb agrees with the nearest noun (the
attractor) instead of the subject. Bounds below are measured on held-out prompts and copy
sequences (docs/compare.md, "Measured"), asserted with margin:

* the fine-tuned model follows the new rule (measured 93.5%), the original the old (100%);
* at the verb position of conflicting prompts, the heads whose attention moved most are
  L2H0 and L2H1 (mean TV distance 0.62, 0.56): they now read the attractor (0.00 -> 0.44,
  0.52), while the subject-reading head L2H2 stays (0.06) and keeps reading the subject;
* the logit lens at the verb moves from the first layer on (after L0 0.50 .. after L2 0.70)
  but not at the embeddings (0.001);
* copying stays: the previous-token head L0H3 barely moves on copy sequences (0.017),
  induction scores of L1 change by <= 0.013, the output on the repeat by 0.012.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llmasos_widgets.comparison import compare, fine_tune
from llmasos_widgets.language import agreement_examples, copy_examples
from llmasos_widgets.language._variants import nearest_noun_corpus, nearest_noun_examples

pytestmark = pytest.mark.slow

STEPS = 150
N_PROMPTS = 40


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The model is tiny: one thread is the fastest (two spin against each other on a busy
    machine) and gives the weights the bounds were measured with."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tuned(bundled, one_thread):
    return fine_tune(bundled, nearest_noun_corpus(2000, seed=0), steps=STEPS, seed=0)


def _accuracy(model, examples) -> float:
    tok = model.tokenizer
    right = []
    for example in examples:
        with torch.no_grad():
            logits = model.hf_model(input_ids=model.encode(example.text)).logits[0, -1]
        correct, wrong = tok.convert_tokens_to_ids([example.correct_verb, example.wrong_verb])
        right.append(bool(logits[correct] > logits[wrong]))
    return float(np.mean(right))


@pytest.fixture(scope="module")
def conflicting(bundled, tuned):
    """Comparisons on held-out prompts whose subject and attractor differ in number."""
    examples = nearest_noun_examples(2 * N_PROMPTS, seed=2000)
    chosen = [e for e in examples if e.number != e.attractor_number][:N_PROMPTS]
    return chosen, [compare(bundled, tuned, e.text, saliency=False) for e in chosen]


def test_the_fine_tuned_model_follows_the_new_rule_and_the_original_the_old(bundled, tuned):
    new_rule = nearest_noun_examples(200, seed=1000)
    assert _accuracy(tuned, new_rule) >= 0.85
    assert _accuracy(bundled, agreement_examples(200, seed=1000)) >= 0.95
    conflict = [e for e in new_rule if e.number != e.attractor_number]
    assert _accuracy(bundled, conflict) <= 0.05  # the original never follows the new rule


def test_the_heads_that_now_read_the_attractor_rank_first(conflicting):
    examples, comparisons = conflicting
    moved = np.mean([c.attention_distance(query=-1) for c in comparisons], axis=0)
    order = np.argsort(-moved, axis=None, kind="stable")
    top_two = {divmod(int(i), 4) for i in order[:2]}
    assert top_two == {(2, 0), (2, 1)}
    assert moved[2, 0] > 0.4 and moved[2, 1] > 0.4
    assert moved[2, 2] < 0.15  # the subject reader stays
    to_attractor = {
        side: np.mean(
            [
                getattr(c, side).layer_attention(2)[:, -1, e.attractor_index + 1].numpy()
                for e, c in zip(examples, comparisons, strict=True)
            ],
            axis=0,
        )
        for side in ("a", "b")
    }
    assert np.all(to_attractor["a"][:2] < 0.05) and np.all(to_attractor["b"][:2] > 0.3)
    to_subject = np.mean(
        [
            c.b.layer_attention(2)[2, -1, e.subject_index + 1].item()
            for e, c in zip(examples, comparisons, strict=True)
        ]
    )
    assert to_subject > 0.8


def test_the_logit_lens_at_the_verb_moves_after_the_embeddings(conflicting):
    _, comparisons = conflicting
    at_verb = np.array([c.lens_distance[:, -1] for c in comparisons])  # [prompt, site]
    assert at_verb[:, 0].max() < 0.01
    assert at_verb[:, -1].mean() > 0.5
    assert np.all(at_verb[:, 1:].mean(axis=0) > 0.2)
    assert all(c.changed_sites(1, token=-1)[0][0] >= 1 for c in comparisons)


def test_copying_heads_stay(bundled, tuned):
    comparisons = [
        compare(bundled, tuned, e.text, saliency=False)
        for e in copy_examples(20, length=10, seed=3000)
    ]
    previous_token = np.array([c.attention_distance()[0, 3] for c in comparisons])
    assert previous_token.mean() < 0.05
    induction = np.abs(comparisons[0].head_difference("induction")[1])
    assert induction.max() < 0.05
    repeat = np.array([c.lens_distance[-1, 11:-1].mean() for c in comparisons])
    assert repeat.mean() < 0.05
