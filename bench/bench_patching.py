"""Activation patching, batched against the naive one-run-per-cell loop, plus the known answers
of head ablation and patching on the bundled model.

Side by side in one process, interleaved (batched, naive, batched, ...), median of ``--reps``:

* ``batched``: ``activation_patching`` (every patched cell one row of a batch of up to
  ``batch_size`` rows; cells whose clean and corrupted activations are equal are not run);
* ``naive``: ``tests/_naive_patching.py``, one batch-1 forward per cell (TransformerLens's
  ``generic_activation_patch`` loop), clean and corrupted runs separately.

Both compute the full residual ``[site, position]`` map and the ``[layer, head]`` map for the
last position's logit difference; the bench checks they agree. Cases: the bundled model on an
agreement twin (T = 6), and random-init LLaMA-shaped models at longer T with one token changed
in the middle.

Known answers (``--known``, default on): copying accuracy with the induction heads (the four of
highest induction score) or the last layer's four heads ablated, zero and mean, over 3 seeds of
100 copy sequences; every single head ablated alone; subject and attractor patching flip rates
per residual site over 200 agreement twins.

    python bench/bench_patching.py --results      # writes bench/results/bench_patching.json
    python bench/bench_patching.py --quick        # smoke run, no known answers

Prints tables; ``bench/tables.py`` renders the committed JSON (``bench/_tables_patching.py``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _results

try:
    import llmasos_widgets as lw
except ModuleNotFoundError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import llmasos_widgets as lw

sys.path.append(str(Path(__file__).resolve().parents[1]))  # tests/: tokenizers, naive patching

from llmasos_widgets.interventions import (
    CopyingAccuracy,
    ablate_heads,
    activation_patching,
    agreement_twins,
)
from llmasos_widgets.language import copy_examples
from tests._naive_patching import naive_patching

BATCH_SIZE = 64
# random-init cases: (layers, heads, kv heads, hidden, T)
RANDOM_CASES = [(4, 8, 2, 128, 32), (4, 8, 2, 128, 64)]
VOCAB_WORDS = 200


def _random_model(
    layers: int, heads: int, kv_heads: int, hidden: int, intermediate: int | None = None
) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    from llmasos_widgets.models import as_explainable
    from tests._tokenizers import WORD_SPECIALS, word_level_tokenizer

    words = [f"w{i}" for i in range(VOCAB_WORDS)]
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(WORD_SPECIALS) + len(words),
        hidden_size=hidden,
        intermediate_size=intermediate or 4 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=256,
        attn_implementation="sdpa",
    )
    model = LlamaForCausalLM(config).eval()
    return as_explainable(model, word_level_tokenizer([*WORD_SPECIALS, *words], max_length=256))


def _random_pair(n_tokens: int) -> tuple[str, str, tuple[str, str]]:
    rng = np.random.default_rng(n_tokens)
    words = [f"w{i}" for i in rng.choice(VOCAB_WORDS, size=n_tokens - 1)]
    changed = list(words)
    middle = len(words) // 2
    changed[middle] = "w0" if words[middle] != "w0" else "w1"
    return " ".join(words), " ".join(changed), ("w2", "w3")


def compare(name: str, model: Any, clean: str, corrupted: str, target: Any, reps: int) -> dict:
    batched_s, naive_s = [], []
    for _ in range(reps):
        start = time.perf_counter()
        batched = activation_patching(model, clean, corrupted, target=target, batch_size=BATCH_SIZE)
        batched_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        residual, heads, _, _, naive_passes = naive_patching(model, clean, corrupted, target=target)
        naive_s.append(time.perf_counter() - start)
    difference = max(
        float(np.abs(residual - batched.residual_values).max()),
        float(np.abs(heads - batched.head_values).max()),
    )
    n_sites, n_tokens = batched.residual_values.shape
    row = {
        "case": name,
        "n_layers": batched.n_layers,
        "n_heads": batched.n_heads,
        "n_tokens": n_tokens,
        "cells": n_sites * n_tokens + batched.n_layers * batched.n_heads,
        "batched_rows": batched.metadata["patched_runs"],
        "batched_passes": batched.forward_passes,
        "naive_passes": naive_passes,
        "batched_s": statistics.median(batched_s),
        "naive_s": statistics.median(naive_s),
        "max_abs_difference": difference,
    }
    row["pass_ratio"] = row["batched_passes"] / row["naive_passes"]
    row["time_ratio"] = row["batched_s"] / row["naive_s"]
    print(
        f"{name:<28} T={n_tokens:<4} cells={row['cells']:<5} passes {row['batched_passes']:>4} vs "
        f"{naive_passes:>5} ({row['pass_ratio']:.3f})  time {row['batched_s']:.3f} vs "
        f"{row['naive_s']:.3f} s ({row['time_ratio']:.3f})  max diff {difference:.1e}"
    )
    return row


def known_answers(model: Any) -> dict[str, Any]:
    scores = model.explain("the key is on the table", saliency=False).head_summaries["induction"]
    n_heads = scores.shape[1]
    order = np.argsort(scores, axis=None)[::-1][:4]
    induction = sorted((int(i) // n_heads, int(i) % n_heads) for i in order)
    last_layer = [(scores.shape[0] - 1, h) for h in range(n_heads)]
    ablation = []
    for seed in (1, 21, 5):
        texts = [e.text for e in copy_examples(100, length=10, seed=seed)]
        reference = [e.text for e in copy_examples(100, length=10, seed=seed + 1)]
        for mode in ("zero", "mean"):
            extra = {"reference": reference} if mode == "mean" else {}
            for label, heads in (("induction", induction), ("last layer", last_layer)):
                r = ablate_heads(model, texts, heads, mode=mode, target=CopyingAccuracy(), **extra)
                ablation.append(
                    {
                        "seed": seed,
                        "mode": mode,
                        "heads": label,
                        "before": r.before,
                        "after": r.after,
                    }
                )
                print(f"ablate {label:<10} {mode:<4} seed {seed}: {r.before:.3f} -> {r.after:.3f}")
    texts = [e.text for e in copy_examples(100, length=10, seed=1)]
    single = [
        [
            ablate_heads(model, texts, [(layer, head)], target=CopyingAccuracy()).after
            for head in range(n_heads)
        ]
        for layer in range(scores.shape[0])
    ]
    twins = agreement_twins(200, seed=0)
    subject, attractor = [], []
    for twin in twins:
        r = activation_patching(model, twin.clean, twin.corrupted, target=twin.target, heads=False)
        subject.append(r.flips(r.residual_values[:, twin.subject_position]))
        attractor.append(r.flips(r.residual_values[:, twin.attractor_position]))
    patching = {
        "n_pairs": len(twins),
        "sites": list(r.site_names),
        "subject_flips": np.mean(subject, axis=0).tolist(),
        "attractor_flips": np.mean(attractor, axis=0).tolist(),
    }
    print("flip rates by site", patching)
    return {
        "induction_heads": induction,
        "induction_scores": scores.tolist(),
        "ablation": ablation,
        "single_head_copying": single,
        "patching": patching,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one repetition, no known answers")
    _results.add_output_arguments(parser, "bench_patching")
    args = parser.parse_args()
    reps = 1 if args.quick else args.reps
    environment = _results.environment()
    bundled = lw.load_model("tiny-llama", device="cpu")
    twin = agreement_twins(1, seed=0)[0]
    rows = [compare("tiny-llama (bundled)", bundled, twin.clean, twin.corrupted, twin.target, reps)]
    cases = RANDOM_CASES[:1] if args.quick else RANDOM_CASES
    for layers, heads, kv_heads, hidden, n_tokens in cases:
        model = _random_model(layers, heads, kv_heads, hidden)
        clean, corrupted, target = _random_pair(n_tokens)
        name = f"random {layers}L {heads}H hidden {hidden}"
        rows.append(compare(name, model, clean, corrupted, target, reps))
    figures: dict[str, Any] = {"rows": rows}
    if not args.quick:
        figures["known_answers"] = known_answers(bundled)
    _results.write(
        "bench_patching",
        environment=environment,
        config={"batch_size": BATCH_SIZE, "reps": reps, "device": "cpu", "dtype": "float32"},
        figures=figures,
        out=args.out,
        results=args.results and not args.quick,
    )


if __name__ == "__main__":
    main()
