"""The rule that keeps held-out examples out of training, by construction.

A sentence belongs to a split by a hash of its *key* words (the agreement prompt, or the
random half of a copy sequence), not by the seed that generated it: any seed, any number of
samples, the training corpus never contains a prompt or copy sequence of the test split.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

SPLITS: tuple[str, ...] = ("train", "test")

# One key in TEST_BUCKETS/N_BUCKETS goes to test: about 20% of the sentence space is held out.
N_BUCKETS = 5
TEST_BUCKETS = 1


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid splits are {list(SPLITS)}")
    return split


def split_of(key_words: Sequence[str]) -> str:
    """``"test"`` or ``"train"`` for a sentence whose identifying words are ``key_words``."""
    digest = hashlib.blake2b(" ".join(key_words).encode(), digest_size=8).digest()
    bucket = int.from_bytes(digest, "little") % N_BUCKETS
    return "test" if bucket < TEST_BUCKETS else "train"
