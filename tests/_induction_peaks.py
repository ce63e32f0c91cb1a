"""The known answer of generation saliency on the bundled model's copy sequences, measured
over held-out sequences (tests/integration/test_generate.py; the tutorial
notebooks/tutorial_generation.ipynb writes the same loop out with the public API)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

import llmasos_widgets as lw
from llmasos_widgets.language import copy_examples


@dataclasses.dataclass(frozen=True)
class InductionPeaks:
    """Known answer on copy sequences (``language/_copying.py``): how often each generated
    token's saliency peaks on the earlier copy of that token -- the token right after the
    earlier occurrence of the token it follows, where an induction head looks."""

    rate: float
    """Fraction of generated steps whose saliency row (at ``site``) peaks there."""
    steps: int
    sequences: int
    copied: float
    """Fraction of sequences whose completion was the exact copy."""
    site: int


def induction_peaks(
    model: Any,
    *,
    n: int,
    length: int,
    seed: int,
    site: int = 0,
    method: str = "gradient",
    split: str = "test",
) -> InductionPeaks:
    """Generate the second half of ``n`` held-out copy sequences of ``length`` words (the
    prompt is the first half plus the first repeated word) and measure :class:`InductionPeaks`
    at residual ``site`` (0 = embeddings)."""
    hits = steps = copied = 0
    for example in copy_examples(n, length=length, seed=seed, split=split):
        prompt = " ".join(example.words[: length + 1])
        explanation = lw.generate(model, prompt, length - 1, saliency_method=method)
        generation = explanation.generation
        assert generation is not None and generation.saliency is not None
        matrix = generation.saliency
        expected = matrix.target_positions + 1 - example.period
        hits += int((np.argmax(matrix.matrix(site), axis=1) == expected).sum())
        steps += matrix.n_generated
        whole = model.encode(example.text)[0].cpu().numpy()
        copied += int(np.array_equal(explanation.token_ids, whole))
    return InductionPeaks(
        rate=hits / max(steps, 1), steps=steps, sequences=n, copied=copied / max(n, 1), site=site
    )
