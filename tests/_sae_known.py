"""The SAE both known-answer modules train (test_sae_training.py, test_steering.py), and how
they score agreement: figures in docs/features_training.md."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from llmasos_widgets.language import AgreementExample, agreement_examples

# "after L2": the subject's number reaches the last prompt token only in the last layer's
# output (docs/probing.md); at site 2 ("after L1") the best latent's held-out AUC is 0.51.
SITE = 3
TRAIN = dict(width=256, k=8, positions="last", epochs=10, batch_size=256, seed=0)
N_TRAIN, TRAIN_SEED = 2000, 1  # "train" split prompts
N_TEST, TEST_SEED = 400, 11  # held-out ("test" split) prompts, never in the model's corpus


@contextmanager
def one_thread() -> Iterator[None]:
    """The bundled model and its SAE are tiny: one thread is the fastest (two spin against
    each other on a busy machine: 24 s instead of 1.6 s measured for the training steps)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def train_prompts() -> list[AgreementExample]:
    return agreement_examples(N_TRAIN, seed=TRAIN_SEED, split="train")


def held_out_prompts() -> list[AgreementExample]:
    return agreement_examples(N_TEST, seed=TEST_SEED, split="test")


def train_number_sae(model: Any) -> Any:
    from llmasos_widgets.features import train_sae

    return train_sae(model, SITE, [e.text for e in train_prompts()], **TRAIN)


def auc(score: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """Area under the ROC curve of each column of ``score`` ``[row]`` or ``[row, column]``
    (ties count half): P(score of a positive > score of a negative), by Mann-Whitney ranks."""
    from scipy.stats import rankdata  # scikit-learn's dependency, a test extra

    ranks = rankdata(score, axis=0)
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    return (ranks[positive].sum(axis=0) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def last_token_features(model: Any, sae: Any, prompts: list[AgreementExample]) -> np.ndarray:
    from llmasos_widgets.probing import activations

    acts = activations(model, [e.text for e in prompts], layers=[SITE], progress=False)
    with torch.no_grad():
        return sae.encode(torch.from_numpy(acts[SITE])).numpy()


def number_latent(model: Any, sae: Any) -> tuple[int, int]:
    """(latent, sign) whose activation best separates the subjects of the *training* prompts;
    sign +1: it fires for plural subjects, -1: for singular ones."""
    prompts = train_prompts()
    features = last_token_features(model, sae, prompts)
    plural = np.array([e.number == "plural" for e in prompts])
    aucs = auc(features, plural)
    best = int(np.argmax(np.abs(aucs - 0.5)))
    return best, 1 if aucs[best] > 0.5 else -1


def verb_preference(model: Any, prompts: list[AgreementExample]) -> np.ndarray:
    """logit(correct verb) - logit(wrong verb) after each prompt; > 0: the model agrees."""
    tokenizer, out = model.tokenizer, np.zeros(len(prompts))
    by_length: dict[int, list[int]] = {}
    for i, e in enumerate(prompts):
        by_length.setdefault(len(e.words), []).append(i)
    with torch.no_grad():
        for members in by_length.values():
            ids = torch.cat([model.encode(prompts[i].text) for i in members])
            logits = model.hf_model(input_ids=ids, use_cache=False).logits[:, -1]
            for row, i in enumerate(members):
                right, wrong = tokenizer.convert_tokens_to_ids(
                    [prompts[i].correct_verb, prompts[i].wrong_verb]
                )
                out[i] = float(logits[row, right] - logits[row, wrong])
    return out
