"""Cost of trace() against a plain forward and against eager ``output_attentions=True``.

One process, one random-init LLaMA-shaped model, repetitions interleaved
(plain, traced, eager, plain, ...) so background load hits all three modes alike.
Prints a table and writes JSON to ``bench/out/bench_trace.json``; ``--results`` also writes
``bench/results/bench_trace.json`` (the figures ``bench/tables.py`` publishes).

    python bench/bench_trace.py --reps 5 --results      # CPU: 8 layers, hidden 2048, T 512, 2048
    python bench/bench_trace.py --shape 7b --dtype bf16 --device cuda --results  # LLaMA-2-7B
        # shape, T 4096; writes bench_trace_7b.json, never the CPU figures
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from transformers import LlamaConfig, LlamaForCausalLM

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _results

try:
    from llmasos_widgets.tracing import trace
except ModuleNotFoundError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from llmasos_widgets.tracing import trace

SHAPES: dict[str, dict[str, Any]] = {
    # LLaMA-shaped attention (32 heads, 8 kv heads, head dim 64); small vocab and MLP for the CPU
    "bench": dict(
        hidden_size=2048,
        num_hidden_layers=8,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=64,
        intermediate_size=2048,
        vocab_size=1024,
        default_seq_lens=[512, 2048],
    ),
    "7b": dict(
        hidden_size=4096,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        head_dim=128,
        intermediate_size=11008,
        vocab_size=32000,
        default_seq_lens=[4096],
    ),
}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
MODES = ("plain", "traced", "eager")
# At the longest length: traced/plain time, and captured q+k bytes / eager attention bytes.
TARGETS = {"traced_over_plain_max": 1.10, "qk_over_attention_bytes_max": 0.1}


def build_model(
    shape: str, layers: int | None, dtype: torch.dtype, device: str
) -> LlamaForCausalLM:
    sizes = {k: v for k, v in SHAPES[shape].items() if k != "default_seq_lens"}
    if layers is not None:
        sizes["num_hidden_layers"] = layers
    config = LlamaConfig(**sizes, max_position_embeddings=8192)
    torch.manual_seed(0)
    with torch.device(device):  # initialise in place: a 7B model would take minutes on the CPU
        model = LlamaForCausalLM._from_config(config, dtype=dtype)
    model.set_attn_implementation("sdpa")  # run_once switches to eager and back per repetition
    return model.eval()


def _synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run_once(
    model: LlamaForCausalLM, mode: str, ids: torch.Tensor, device: str
) -> tuple[float, dict[str, int]]:
    """Seconds for one forward in ``mode`` and the bytes that mode keeps for attention."""
    model.set_attn_implementation("eager" if mode == "eager" else "sdpa")
    kept: dict[str, int] = {}
    _synchronize(device)
    start = time.perf_counter()
    with torch.no_grad():
        if mode == "plain":
            model(input_ids=ids, use_cache=False)
        elif mode == "traced":
            with trace(model) as tr:
                model(input_ids=ids, use_cache=False)
        else:
            out = model(input_ids=ids, use_cache=False, output_attentions=True)
    _synchronize(device)
    seconds = time.perf_counter() - start
    if mode == "traced":
        kept["qk_bytes"] = sum(t.nbytes for t in (*tr.queries, *tr.keys))
        kept["residual_bytes"] = sum(t.nbytes for t in tr.residual)
    elif mode == "eager":
        kept["attention_bytes"] = sum(t.nbytes for t in out.attentions)
    model.set_attn_implementation("sdpa")
    return seconds, kept


def bench_length(
    model: LlamaForCausalLM, seq_len: int, reps: int, warmup: int, device: str
) -> dict[str, Any]:
    generator = torch.Generator().manual_seed(seq_len)
    ids = torch.randint(0, model.config.vocab_size, (1, seq_len), generator=generator).to(device)
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    kept: dict[str, int] = {}
    for rep in range(warmup + reps):
        for mode in MODES:
            seconds, mode_kept = run_once(model, mode, ids, device)
            kept.update(mode_kept)
            if rep >= warmup:
                times[mode].append(seconds)
            print(f"  T={seq_len} rep {rep - warmup:+d} {mode:6s} {seconds:8.3f} s", flush=True)
    median = {mode: statistics.median(values) for mode, values in times.items()}
    # the minimum is the least disturbed by other processes on a shared machine
    fastest = {mode: min(values) for mode, values in times.items()}
    return {
        "seq_len": seq_len,
        "times_s": times,
        "median_s": median,
        "min_s": fastest,
        "traced_over_plain": median["traced"] / median["plain"],
        "eager_over_plain": median["eager"] / median["plain"],
        "traced_over_plain_min": fastest["traced"] / fastest["plain"],
        "eager_over_plain_min": fastest["eager"] / fastest["plain"],
        **kept,
        "qk_over_attention_bytes": kept["qk_bytes"] / kept["attention_bytes"],
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    header = (
        f"{'T':>6} {'plain s':>9} {'traced s':>9} {'eager s':>9} {'traced/plain':>13} "
        f"{'eager/plain':>12} {'(min) t/p':>10} {'q+k MB':>9} {'attn MB':>9} {'qk/attn':>8} "
        f"{'resid MB':>9}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        m = r["median_s"]
        print(
            f"{r['seq_len']:>6} {m['plain']:>9.3f} {m['traced']:>9.3f} {m['eager']:>9.3f} "
            f"{r['traced_over_plain']:>13.3f} {r['eager_over_plain']:>12.3f} "
            f"{r['traced_over_plain_min']:>10.3f} "
            f"{r['qk_bytes'] / 2**20:>9.1f} {r['attention_bytes'] / 2**20:>9.1f} "
            f"{r['qk_over_attention_bytes']:>8.4f} {r['residual_bytes'] / 2**20:>9.1f}"
        )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shape", choices=sorted(SHAPES), default="bench")
    parser.add_argument("--layers", type=int, default=None, help="override the shape's layer count")
    parser.add_argument(
        "--seq-lens", type=int, nargs="+", default=None, help="default: 512 2048 (7b: 4096)"
    )
    parser.add_argument("--reps", type=int, default=3, help="timed repetitions per mode")
    parser.add_argument("--warmup", type=int, default=1, help="untimed repetitions per mode")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    parser.add_argument("--device", default="cpu")
    _results.add_output_arguments(parser, "bench_trace")
    args = parser.parse_args(argv)
    seq_lens = args.seq_lens or SHAPES[args.shape]["default_seq_lens"]
    # the 7b (GPU) run gets its own files, so it never replaces the CPU figures
    name = "bench_trace" if args.shape == "bench" else f"bench_trace_{args.shape}"
    if args.out == _results.OUT / "bench_trace.json":
        args.out = _results.OUT / f"{name}.json"

    environment = _results.environment()
    print(f"building {args.shape} model ({args.dtype}, {args.device}) ...", flush=True)
    model = build_model(args.shape, args.layers, DTYPES[args.dtype], args.device)
    rows = [bench_length(model, t, args.reps, args.warmup, args.device) for t in seq_lens]
    print_table(rows)
    sizes = {k: v for k, v in SHAPES[args.shape].items() if k != "default_seq_lens"}
    if args.layers is not None:
        sizes["num_hidden_layers"] = args.layers
    config = {
        "shape": args.shape,
        "model": sizes,
        "seq_lens": seq_lens,
        "reps": args.reps,
        "warmup": args.warmup,
        "dtype": args.dtype,
        "device": args.device,
        "batch": 1,
        "modes": list(MODES),
    }
    figures = {"targets": TARGETS, "rows": rows}
    _results.write(
        name,
        environment=environment,
        config=config,
        figures=figures,
        out=args.out,
        results=args.results,
    )
    return {"environment": environment, "config": config, **figures}


if __name__ == "__main__":
    main()
