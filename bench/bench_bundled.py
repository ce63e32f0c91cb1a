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
  regularisation sweep, other split seeds, and random labels;
* ``half_precision``: the bundled model loaded in bf16 against float32 (the quantities
  tests/integration/test_bf16.py bounds), and patterns rebuilt from bf16/fp16 q/k against
  eager attention in the same dtype on small random LLaMAs.

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


HALF_SENTENCES = (  # as tests/integration/test_bf16.py
    "the keys near the cabinet are on the table .",
    "red doors old key tables lamp cold red doors old key tables lamp cold",
    "the key near the cabinets is on the table .",
)


def _relative_deltas(model: Any, n: int, seed: int) -> list[float]:
    relative = []
    for example in agreement_examples(n, seed=seed, split="test"):
        saliency = attribute(
            model, example.text, target=_contrast(example), method="integrated_gradients",
            baseline="pad", layers=0, n_steps=N_STEPS,
        )  # fmt: skip
        gap = saliency.f_x - saliency.f_baseline
        relative.append(float(abs(saliency.convergence_delta[0]) / abs(gap)))
    return relative


def _eager_half_difference(seed: int, n_tokens: int, dtype: torch.dtype, init: float) -> float:
    """max |pattern from captured half q/k - eager half attention| on a small random LLaMA."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from llmasos_widgets.tracing import trace

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=64, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        initializer_range=init, attn_implementation="eager",
    )  # fmt: skip
    model = LlamaForCausalLM(config).eval().to(dtype)
    ids = torch.randint(0, 64, (1, n_tokens), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad(), trace(model) as captured:
        eager = model(input_ids=ids, output_attentions=True).attentions
    return max(
        float((captured.attention(layer) - eager[layer][0].float()).abs().max())
        for layer in range(config.num_hidden_layers)
    )


def half_precision(model: Any) -> dict[str, Any]:
    half = load_model("tiny-llama", device="cpu", dtype="bfloat16")
    ig = {"prompts": 12, "seed": 5, "baseline": "pad", "n_steps": N_STEPS}
    ig["bf16"] = _relative_deltas(half, 12, seed=5)
    ig["float32"] = _relative_deltas(model, 12, seed=5)
    scores = {}
    for method, prompts in (
        ("gradient", 40),
        ("input_x_gradient", 12),
        ("integrated_gradients", 12),
        ("occlusion", 12),
    ):
        options: dict[str, Any] = {}
        if method in ("integrated_gradients", "occlusion"):
            options["baseline"] = "pad"
        if method == "integrated_gradients":
            options["n_steps"] = N_STEPS
        worst = 0.0
        for example in agreement_examples(prompts, seed=11, split="test"):
            target = _contrast(example)
            ref = attribute(model, example.text, target=target, method=method, **options)
            got = attribute(half, example.text, target=target, method=method, **options)
            worst = max(
                worst, float(np.abs(got.scores - ref.scores).max() / np.abs(ref.scores).max())
            )
        scores[method] = {"prompts": prompts, "seed": 11, "max_relative": worst, **options}
    wins = {}
    for name, m in (("bf16", half), ("float32", model)):
        wins[name] = float(
            np.mean(
                [
                    _subject_vs_attractor(
                        attribute(m, ex.text, target=_contrast(ex), layers=0).at(0), ex
                    )[0]
                    for ex in agreement_examples(40, seed=11, split="test")
                ]
            )
        )
    explain_diff = {"summaries": 0.0, "patterns": 0.0, "top_probs": 0.0, "lens_probs": 0.0}
    for text in HALF_SENTENCES:
        ref, got = model.explain(text, saliency=False), half.explain(text, saliency=False)
        for name, values in ref.head_summaries.items():
            diff = float(np.abs(got.head_summaries[name] - values).max())
            explain_diff["summaries"] = max(explain_diff["summaries"], diff)
        for layer in range(ref.n_layers):
            for head in range(ref.n_heads):
                diff = float(np.abs(got.attention(layer, head) - ref.attention(layer, head)).max())
                explain_diff["patterns"] = max(explain_diff["patterns"], diff)
        explain_diff["top_probs"] = max(
            explain_diff["top_probs"], float(np.abs(got.top_probs - ref.top_probs).max())
        )
        explain_diff["lens_probs"] = max(
            explain_diff["lens_probs"], float(np.abs(got.lens_probs - ref.lens_probs).max())
        )
    eager = []
    for dtype_name, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
        for init in (0.02, 0.2):
            worst = max(
                _eager_half_difference(seed, n, dtype, init)
                for seed in (0, 1, 2)
                for n in (16, 256)
            )
            eager.append({"dtype": dtype_name, "initializer_range": init, "max_abs": worst})
    return {
        "ig_relative_delta": ig,
        "score_difference": scores,
        "subject_above_attractor": {"prompts": 40, "seed": 11, **wins},
        "explain_difference": {"sentences": len(HALF_SENTENCES), **explain_diff},
        "eager_pattern_difference": {"seeds": [0, 1, 2], "tokens": [16, 256], "rows": eager},
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
        "half_precision": lambda: half_precision(model),
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
