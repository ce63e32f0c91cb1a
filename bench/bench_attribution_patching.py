"""Attribution patching (AtP) against exact activation patching: cost and agreement.

Each case is one prompt pair (one token changed in the middle) on a random-init LLaMA-shaped
model; the three measurements run interleaved in one process, median of ``--reps``:

* ``forward``: one no-grad forward of the pair (batch 2) -- the unit of "forward-pass
  equivalents";
* ``atp``: ``attribution_patching`` (one forward of the pair with grad, one backward);
* ``exact``: ``activation_patching`` (batched, 64 patched runs per pass).

Both maps (residual ``[site, position]``, heads ``[layer, head]``) for the last position's
logit difference. Agreement: Spearman's correlation over the head cells and how many of the
exact top-10 heads the estimate puts in its top 10. Peak memory: each method runs once more
in a fresh process (the resident high-water mark, reset after the model is built, the model
included) at the widest case (Linux).

AtP* (``star`` rows, same cases): the key-head map by AtP, by AtP with the QK fix and by
exact patching of the keys, and the head-output map's GradDrop scores (one backward pass per
layer more), each timed against the same forward; agreement with exact patching as above
(GradDrop: its top 10 against the exact output map's).

Cases: 4 layers x 32 heads at T = 64 (the cost target: the head map in <= 3 forward-pass
equivalents), and Llama-3.1-8B's width (hidden 4096, 32 heads, 8 kv heads, MLP 14336) with 2
layers and a 200-word vocabulary at T = 16.

    python bench/bench_attribution_patching.py --results
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _results
from bench_patching import VOCAB_WORDS
from bench_patching import _random_model as _model
from bench_patching import _random_pair as _pair

from llmasos_widgets.interventions import activation_patching, attribution_patching

NAME = "bench_attribution_patching"
# (name, layers, heads, kv heads, hidden, intermediate, T)
CASES = [
    ("4 layers x 32 heads", 4, 32, 8, 256, 1024, 64),
    ("Llama-3.1-8B width, 2 layers", 2, 32, 8, 4096, 14336, 16),
]
TARGET_FORWARD_EQUIVALENTS = 3.0


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ranks = [np.argsort(np.argsort(x.ravel(), kind="stable"), kind="stable") for x in (a, b)]
    return float(np.corrcoef(ranks[0], ranks[1])[0, 1])


def _forward(model: Any, clean: str, corrupted: str) -> None:
    ids = torch.cat([model.encode(clean), model.encode(corrupted)])
    with torch.no_grad():
        model.hf_model(input_ids=ids, use_cache=False, logits_to_keep=1)


def _run(method: str, model: Any, clean: str, corrupted: str, target: Any) -> Any:
    if method == "forward":
        return _forward(model, clean, corrupted)
    function = attribution_patching if method == "atp" else activation_patching
    return function(model, clean, corrupted, target=target)


STAR_METHODS = {
    "atp_keys": {"residual": False, "head_node": "k"},
    "qk_fix_keys": {"residual": False, "head_node": "k", "qk_fix": True},
    "grad_drop": {"grad_drop": True},
}


def _run_star(method: str, model: Any, clean: str, corrupted: str, target: Any) -> Any:
    if method == "forward":
        return _forward(model, clean, corrupted)
    if method == "exact_keys":
        return activation_patching(
            model, clean, corrupted, target=target, residual=False, head_node="k"
        )
    return attribution_patching(model, clean, corrupted, target=target, **STAR_METHODS[method])


def _top10(values: np.ndarray) -> set[int]:
    return set(np.argsort(-np.abs(values.ravel()), kind="stable")[:10].tolist())


def _interleaved(
    run: Any, methods: list[str], args: tuple[Any, ...], reps: int
) -> tuple[dict[str, float], dict[str, Any]]:
    """Each method's median seconds over ``reps`` interleaved rounds (after one warm-up
    forward), and its last result."""
    seconds: dict[str, list[float]] = {method: [] for method in methods}
    results: dict[str, Any] = {}
    run("forward", *args)  # warm-up
    for _ in range(reps):
        for method in methods:
            start = time.perf_counter()
            results[method] = run(method, *args)
            seconds[method].append(time.perf_counter() - start)
    return {method: statistics.median(values) for method, values in seconds.items()}, results


def measure_star(case: tuple[Any, ...], reps: int) -> dict[str, Any]:
    """AtP vs AtP* on one case: seconds, forward-pass equivalents, agreement."""
    name, layers, heads, kv_heads, hidden, intermediate, n_tokens = case
    model = _model(layers, heads, kv_heads, hidden, intermediate)
    clean, corrupted, target = _pair(n_tokens)
    methods = ["forward", "atp_keys", "qk_fix_keys", "exact_keys", "grad_drop"]
    median, results = _interleaved(_run_star, methods, (model, clean, corrupted, target), reps)
    exact_outputs = activation_patching(model, clean, corrupted, target=target).heads
    step = heads // kv_heads  # one cell per key head
    keys = {method: results[method].heads[:, ::step] for method in methods[1:4]}
    row = {
        "case": name,
        "tokens": n_tokens,
        **{f"{method}_s": median[method] for method in methods},
        **{
            f"{method}_forward_equivalents": median[method] / median["forward"]
            for method in methods[1:]
        },
        "key_cells": int(keys["exact_keys"].size),
        "atp_keys_spearman": _spearman(keys["atp_keys"], keys["exact_keys"]),
        "qk_fix_keys_spearman": _spearman(keys["qk_fix_keys"], keys["exact_keys"]),
        "atp_keys_top10": len(_top10(keys["atp_keys"]) & _top10(keys["exact_keys"])),
        "qk_fix_keys_top10": len(_top10(keys["qk_fix_keys"]) & _top10(keys["exact_keys"])),
        "atp_heads_top10": len(_top10(results["grad_drop"].heads) & _top10(exact_outputs)),
        "grad_drop_heads_top10": len(
            _top10(results["grad_drop"].grad_drop_heads) & _top10(exact_outputs)
        ),
    }
    print(
        f"{name:<30} keys rho AtP {row['atp_keys_spearman']:.3f} / QK fix "
        f"{row['qk_fix_keys_spearman']:.3f} (top-10 {row['atp_keys_top10']} / "
        f"{row['qk_fix_keys_top10']}); QK fix {row['qk_fix_keys_forward_equivalents']:.2f} fwd, "
        f"GradDrop {row['grad_drop_forward_equivalents']:.2f} fwd (heads top-10 "
        f"{row['atp_heads_top10']} -> {row['grad_drop_heads_top10']})"
    )
    return row


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _peak_rss(case: tuple[Any, ...], method: str, queue: Any) -> None:
    """In a fresh process: build the case, reset the resident high-water mark (Linux
    ``clear_refs``: building the model peaks higher than running it), run ``method`` once and
    report the new peak and the resident size before it."""
    _, layers, heads, kv_heads, hidden, intermediate, n_tokens = case
    model = _model(layers, heads, kv_heads, hidden, intermediate)
    clean, corrupted, target = _pair(n_tokens)
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_mb("VmRSS")
    _run(method, model, clean, corrupted, target)
    queue.put({"peak_mb": _status_mb("VmHWM"), "model_mb": before})


def peak_memory(case: tuple[Any, ...]) -> dict[str, dict[str, float]]:
    context = multiprocessing.get_context("spawn")
    out = {}
    for method in ("forward", "atp", "exact"):
        queue = context.Queue()
        process = context.Process(target=_peak_rss, args=(case, method, queue))
        process.start()
        out[method] = queue.get()
        process.join()
    return out


def measure(case: tuple[Any, ...], reps: int) -> dict[str, Any]:
    name, layers, heads, kv_heads, hidden, intermediate, n_tokens = case
    model = _model(layers, heads, kv_heads, hidden, intermediate)
    clean, corrupted, target = _pair(n_tokens)
    methods = ["forward", "atp", "exact"]
    median, results = _interleaved(_run, methods, (model, clean, corrupted, target), reps)
    atp, exact = results["atp"], results["exact"]
    top = [set(np.argsort(-np.abs(m.ravel()))[:10]) for m in (atp.heads, exact.heads)]
    row = {
        "case": name,
        "layers": layers,
        "heads": heads,
        "kv_heads": kv_heads,
        "hidden": hidden,
        "tokens": n_tokens,
        "forward_s": median["forward"],
        "atp_s": median["atp"],
        "exact_s": median["exact"],
        "atp_forward_equivalents": median["atp"] / median["forward"],
        "exact_forward_equivalents": median["exact"] / median["forward"],
        "exact_passes": exact.forward_passes,
        "head_spearman": _spearman(atp.heads, exact.heads),
        "top10_overlap": len(top[0] & top[1]),
        "residual_spearman": _spearman(atp.residual, exact.residual),
    }
    print(
        f"{name:<30} T={n_tokens:<3} forward {row['forward_s']:.3f} s  AtP {row['atp_s']:.3f} s "
        f"({row['atp_forward_equivalents']:.2f} fwd)  exact {row['exact_s']:.3f} s "
        f"({row['exact_forward_equivalents']:.1f} fwd)  heads rho {row['head_spearman']:.3f}  "
        f"top-10 {row['top10_overlap']}/10"
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory runs")
    _results.add_output_arguments(parser, NAME)
    args = parser.parse_args()
    environment = _results.environment()
    rows = [measure(case, args.reps) for case in CASES]
    star = [measure_star(case, args.reps) for case in CASES]
    if not args.no_memory:
        memory = peak_memory(CASES[-1])
        rows[-1]["peak_rss_mb"] = memory
        print("peak RSS (MB):", {k: round(v["peak_mb"]) for k, v in memory.items()})
    verdict = rows[0]["atp_forward_equivalents"] <= TARGET_FORWARD_EQUIVALENTS
    print(f"head map at T = 64, 4 x 32 heads, in <= 3 forward-pass equivalents: {verdict}")
    _results.write(
        NAME,
        environment=environment,
        config={"reps": args.reps, "device": "cpu", "dtype": "float32", "vocab_words": VOCAB_WORDS},
        figures={
            "rows": rows,
            "star": star,
            "target_forward_equivalents": TARGET_FORWARD_EQUIVALENTS,
            "target_met": verdict,
        },
        out=args.out,
        results=args.results,
    )


if __name__ == "__main__":
    main()
