"""Faithfulness (deletion/insertion vs random order) of each saliency method on the bundled
model's held-out agreement prompts, and what batching the curves saves.

* methods: on each set of ``agreement_examples(n, seed, split="test")``, target
  ``Contrast(correct_verb, wrong_verb)``, every method's map at ``emb`` is scored by
  ``lw.faithfulness`` (``pad`` baseline, 16 random orders); recorded per method: how often it
  ranks the subject first and above the attractor, and the mean / median / sd of its scores;
* cost: one ``faithfulness`` call batched (default ``batch_rows``) against one forward per
  masked input (``batch_rows=1``), interleaved, median of ``--reps``; both give the same curves.

    python bench/bench_faithfulness.py --results   # writes bench/results/bench_faithfulness.json

``bench/tables.py`` renders the committed JSON (``bench/_tables_faithfulness.py``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _results

try:
    import llmasos_widgets as lw
except ModuleNotFoundError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import llmasos_widgets as lw

from llmasos_widgets.attribution import Contrast, ConvergenceWarning
from llmasos_widgets.language import agreement_examples

# (seed, prompts, methods); 2025 is the set tests/integration/test_faithfulness.py asserts on
SETS = (
    (11, 40, ("gradient", "input_x_gradient", "integrated_gradients", "occlusion")),
    (2025, 32, ("gradient", "occlusion")),
)
IG_STEPS = 50


def method_rows(model: Any, seed: int, n: int, methods: tuple[str, ...]) -> list[dict[str, Any]]:
    examples = agreement_examples(n, seed=seed, split="test")
    scores: dict[str, list[tuple[float, float, float]]] = {m: [] for m in methods}
    first: dict[str, list[bool]] = {m: [] for m in methods}
    pair: dict[str, list[bool]] = {m: [] for m in methods}
    for example in examples:
        target = Contrast(example.correct_verb, example.wrong_verb)
        subject, attractor = example.subject_index + 1, example.attractor_index + 1
        for method in methods:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                saliency = lw.attribute(
                    model, example.text, target=target, method=method, layers=0, n_steps=IG_STEPS
                )
            result = lw.faithfulness(model, saliency)
            scores[method].append((result.score, result.comprehensiveness, result.sufficiency))
            first[method].append(int(result.order[0]) == subject)
            emb = saliency.at(0)
            pair[method].append(bool(emb[subject] > emb[attractor]))
    gradient = np.array([s[0] for s in scores["gradient"]])
    rows = []
    for method in methods:
        values = np.array(scores[method])
        rows.append(
            {
                "seed": seed,
                "prompts": n,
                "method": method,
                "subject_first": float(np.mean(first[method])),
                "subject_above_attractor": float(np.mean(pair[method])),
                "mean_score": float(values[:, 0].mean()),
                "median_score": float(np.median(values[:, 0])),
                "sd_score": float(values[:, 0].std()),
                "mean_comprehensiveness": float(values[:, 1].mean()),
                "mean_sufficiency": float(values[:, 2].mean()),
                "beats_gradient": float(np.mean(values[:, 0] > gradient)),
            }
        )
        print(rows[-1])
    return rows


def cost_rows(model: Any, reps: int) -> list[dict[str, Any]]:
    rows = []
    for example in agreement_examples(3, seed=5, split="test"):
        saliency = lw.attribute(
            model, example.text, target=Contrast(example.correct_verb, example.wrong_verb)
        )
        times: dict[str, list[float]] = {"batched": [], "one_per_row": []}
        results = {}
        for _ in range(reps):
            for name, batch_rows in (("batched", 256), ("one_per_row", 1)):
                start = time.perf_counter()
                results[name] = lw.faithfulness(model, saliency, batch_rows=batch_rows)
                times[name].append(time.perf_counter() - start)
        n = len(results["batched"].order)
        masked_rows = 2 * (n + 1) * (results["batched"].n_random + 1)
        batched = statistics.median(times["batched"])
        naive = statistics.median(times["one_per_row"])
        difference = max(
            float(np.abs(getattr(results["batched"], c) - getattr(results["one_per_row"], c)).max())
            for c in ("deletion", "deletion_random", "insertion", "insertion_random")
        )
        rows.append(
            {
                "tokens": n + 1,
                "masked_inputs": masked_rows,
                "batched_s": batched,
                "one_per_row_s": naive,
                "time_ratio": batched / naive,
                "max_abs_difference": difference,
            }
        )
        print(rows[-1])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    _results.add_output_arguments(parser, "bench_faithfulness")
    args = parser.parse_args()
    environment = _results.environment()
    model = lw.load_model("tiny-llama", device="cpu")
    methods = [row for seed, n, names in SETS for row in method_rows(model, seed, n, names)]
    cost = cost_rows(model, args.reps)
    _results.write(
        "bench_faithfulness",
        environment=environment,
        config={
            "sets": [list(s[:2]) for s in SETS],
            "ig_steps": IG_STEPS,
            "n_random": 16,
            "baseline": "pad",
            "reps": args.reps,
            "device": "cpu",
        },
        figures={"methods": methods, "cost": cost},
        out=args.out,
        results=args.results,
    )


if __name__ == "__main__":
    main()
