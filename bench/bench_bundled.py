"""Figures of the bundled tiny-llama that README.md and docs/ quote, measured in one run.

Not a speed benchmark: the known answers behind the tests, measured on held-out data, so
that every figure the docs print comes from this JSON (``bench/tables.py``) rather than
being typed by hand. The tests assert bounds; this records what the model actually scores.

* ``saliency_by_method``: target ``Contrast(correct verb, wrong verb)``, scores at the input
  embeddings, share of held-out agreement prompts where the subject noun scores above the
  attractor noun (signed, and by |score|), per method and baseline;
* ``saliency_default_large``: the same share for the default method on the slow test's set;
* ``ig_completeness``: integrated gradients, every residual site, relative completeness
  error |delta| / |f(x) - f(baseline)| (median, 90th percentile, max per site) per baseline
  and integration rule, and the subject-vs-attractor share at the embeddings;
* ``probing``: ``probe`` on ``subject_number_dataset`` and ``part_of_speech_dataset``, the
  regularisation sweep, other split seeds, and random labels.

    python bench/bench_bundled.py --results             # the sizes the docs quote
    python bench/bench_bundled.py --ig-prompts 20       # smaller IG set (it is the slow part)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _results

try:
    from llmasos_widgets.attribution import Contrast, attribute
except ModuleNotFoundError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from llmasos_widgets.attribution import Contrast, attribute
from llmasos_widgets.language import agreement_examples
from llmasos_widgets.models import load_model
from llmasos_widgets.probing import (
    activations,
    part_of_speech_dataset,
    probe,
    probe_activations,
    subject_number_dataset,
)

N_STEPS = 50
# (label, attribute options) of the method comparison; "gausslegendre" is Captum's rule.
METHODS: list[tuple[str, dict[str, Any]]] = [
    ("gradient", {"method": "gradient"}),
    (
        "integrated_gradients (zero, gausslegendre)",
        {"method": "integrated_gradients", "baseline": "zero", "integration": "gausslegendre"},
    ),
    (
        "integrated_gradients (pad, gausslegendre)",
        {"method": "integrated_gradients", "baseline": "pad", "integration": "gausslegendre"},
    ),
    (
        "integrated_gradients (unk, gausslegendre)",
        {"method": "integrated_gradients", "baseline": "unk", "integration": "gausslegendre"},
    ),
    ("input_x_gradient", {"method": "input_x_gradient"}),
    ("occlusion (unk)", {"method": "occlusion", "baseline": "unk"}),
]
IG_RULES = [
    ("zero", "gausslegendre"),
    ("zero", "adaptive"),
    ("pad", "gausslegendre"),
    ("pad", "adaptive"),
]


def _contrast(example: Any) -> Contrast:
    return Contrast(example.correct_verb, example.wrong_verb)


def _subject_vs_attractor(scores: np.ndarray, example: Any) -> tuple[bool, bool]:
    """(subject > attractor signed, by |score|); token position = word index + 1 (<bos>)."""
    subject, attractor = scores[example.subject_index + 1], scores[example.attractor_index + 1]
    return bool(subject > attractor), bool(abs(subject) > abs(attractor))


def saliency_by_method(model: Any, n: int, seed: int) -> dict[str, Any]:
    examples = agreement_examples(n, seed=seed, split="test")
    rows = []
    for label, options in METHODS:
        signed, absolute = [], []
        for example in examples:
            extra = {"n_steps": N_STEPS} if "baseline" in options else {}
            saliency = attribute(
                model, example.text, target=_contrast(example), layers=0, **options, **extra
            )
            s, a = _subject_vs_attractor(saliency.at(0), example)
            signed.append(s)
            absolute.append(a)
        rows.append(
            {
                "method": label,
                "options": options,
                "subject_above_attractor": float(np.mean(signed)),
                "subject_above_attractor_abs": float(np.mean(absolute)),
            }
        )
        print(f"  {label}: {rows[-1]['subject_above_attractor']:.3f}", flush=True)
    return {"prompts": n, "seed": seed, "split": "test", "n_steps": N_STEPS, "rows": rows}


def saliency_default_large(model: Any, n: int, seed: int) -> dict[str, Any]:
    """The default method of ``attribute``, as the slow known-answer test runs it."""
    import inspect

    method = inspect.signature(attribute).parameters["method"].default
    wins = [
        _subject_vs_attractor(attribute(model, ex.text, target=_contrast(ex), layers=0).at(0), ex)[
            0
        ]
        for ex in agreement_examples(n, seed=seed, split="test")
    ]
    return {
        "method": method,
        "prompts": n,
        "seed": seed,
        "split": "test",
        "subject_above_attractor": float(np.mean(wins)),
    }


def ig_completeness(model: Any, n: int, seed: int) -> dict[str, Any]:
    examples = agreement_examples(n, seed=seed, split="test")
    rows = []
    for baseline, rule in IG_RULES:
        relative: list[np.ndarray] = []
        signed, absolute = [], []
        sites: list[int] = []
        for example in examples:
            saliency = attribute(
                model,
                example.text,
                target=_contrast(example),
                method="integrated_gradients",
                baseline=baseline,
                integration=rule,
                n_steps=N_STEPS,
                layers="all",
            )
            gap = abs(saliency.f_x - saliency.f_baseline)
            relative.append(np.abs(np.asarray(saliency.convergence_delta, np.float64)) / gap)
            sites = [int(site) for site in saliency.layers]
            s, a = _subject_vs_attractor(saliency.at(0), example)
            signed.append(s)
            absolute.append(a)
        stacked = np.stack(relative)  # [prompt, site]
        rows.append(
            {
                "baseline": baseline,
                "integration": rule,
                "sites": sites,
                "relative_delta_median": np.median(stacked, axis=0).tolist(),
                "relative_delta_p90": np.percentile(stacked, 90, axis=0).tolist(),
                "relative_delta_max": stacked.max(axis=0).tolist(),
                "subject_above_attractor": float(np.mean(signed)),
                "subject_above_attractor_abs": float(np.mean(absolute)),
            }
        )
        print(f"  IG {baseline} {rule}: median {rows[-1]['relative_delta_median']}", flush=True)
    return {"prompts": n, "seed": seed, "split": "test", "n_steps": N_STEPS, "rows": rows}


def _probe_table(result: Any) -> dict[str, Any]:
    return {
        "sites": [int(x) for x in result.layers],
        "train_accuracy": result.train_accuracy.tolist(),
        "test_accuracy": result.test_accuracy.tolist(),
        "control_accuracy": None
        if result.control_accuracy is None
        else result.control_accuracy.tolist(),
        "selectivity": None if result.selectivity is None else result.selectivity.tolist(),
        "majority_baseline": float(result.majority_baseline),
        "n_train": int(result.n_train),
        "n_test": int(result.n_test),
    }


def probing(model: Any, seed: int) -> dict[str, Any]:
    subject = probe(model, subject_number_dataset(800, seed=seed), seed=0, progress=False)
    small = subject_number_dataset(400, seed=seed)
    last = [model.hf_model.config.num_hidden_layers]  # the residual after the last layer
    l2_sweep = []
    for l2 in (1e-3, 1e-2, 1e-1, 1.0):
        result = probe(model, small, layers=last, l2=l2, seed=0, progress=False)
        l2_sweep.append({"l2": l2, **_probe_table(result)})
    split_seeds = []
    for split_seed in (0, 1, 2):
        result = probe(model, small, layers=last, seed=split_seed, progress=False)
        split_seeds.append({"seed": split_seed, **_probe_table(result)})
    data = subject_number_dataset(800, seed=seed)
    acts = activations(model, data.texts, positions=data.positions, progress=False)
    noise = np.random.default_rng(0).integers(0, 2, size=len(acts))
    random_labels = probe_activations(acts, noise, ["a", "b"], control=False, seed=0)
    part_of_speech = probe(model, part_of_speech_dataset(60, seed=seed), progress=False)
    return {
        "seed": seed,
        "defaults": {"l2": 1e-2, "test_size": 0.25, "split_seed": 0},
        "subject_number": {"texts": 800, **_probe_table(subject)},
        "l2_sweep": {"texts": 400, "rows": l2_sweep},
        "split_seeds": {"texts": 400, "rows": split_seeds},
        "random_labels": {"texts": 800, "labels": "rng(0) 0/1", **_probe_table(random_labels)},
        "part_of_speech": {"sentences": 60, **_probe_table(part_of_speech)},
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--method-prompts", type=int, default=40)
    parser.add_argument("--default-prompts", type=int, default=400)
    parser.add_argument("--ig-prompts", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    _results.add_output_arguments(parser, "bench_bundled")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    environment = _results.environment()
    model = load_model("tiny-llama", device="cpu")
    figures: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    steps = {
        "probing": lambda: probing(model, seed=11),
        "saliency_by_method": lambda: saliency_by_method(model, args.method_prompts, seed=11),
        "saliency_default_large": lambda: saliency_default_large(
            model, args.default_prompts, seed=2024
        ),
        "ig_completeness": lambda: ig_completeness(model, args.ig_prompts, seed=2024),
    }
    for name, step in steps.items():
        print(f"{name} ...", flush=True)
        start = time.perf_counter()
        figures[name] = step()
        seconds[name] = round(time.perf_counter() - start, 1)
    figures["seconds"] = seconds
    config = {
        "model": "tiny-llama (bundled)",
        "method_prompts": args.method_prompts,
        "default_prompts": args.default_prompts,
        "ig_prompts": args.ig_prompts,
        "threads": args.threads,
    }
    _results.write(
        "bench_bundled",
        environment=environment,
        config=config,
        figures=figures,
        out=args.out,
        results=args.results,
    )
    return figures


if __name__ == "__main__":
    main()
