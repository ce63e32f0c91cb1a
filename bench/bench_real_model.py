"""What ``explain()`` costs on a real checkpoint, against one plain forward of the same text.

SmolLM2-135M-Instruct (30 layers, 9 query / 3 kv heads, hidden 576, vocabulary 49,152; the
test suite's real model, ``tests/_real_model.py``), float32 on the CPU, random token ids of
length T. One subprocess per T (a fresh heap, so one T's allocations do not hide the next
one's peak); inside it the modes are interleaved per repetition (plain, explain without
saliency, explain with the default saliency, plain, ...) so background load hits them alike.

* plain: ``model(input_ids)`` under ``no_grad`` (full ``[T, vocab]`` logits, as a user runs it);
* explain(saliency=False) and explain() (the default ``saliency_method``), split into parts
  by timing the functions ``explain`` calls: head summaries (``row_summaries``), the
  induction pass, saliency (``attribute``), the predictions (top-k of the model's output,
  read during the forward) and the logit lens kept during the forward (the residual streams);
  capture = the rest (the traced forward, token strings, assembly);
* lens view: reading every logit-lens site afterwards (what the LogitLensWidget or the
  report asks for), and explain + lens view, the cost when every site is read.

Peak RSS: the process's high-water mark (``VmHWM``) is reset before each call (Linux
``/proc/self/clear_refs``) and read after it, minus the RSS before the call.

Times are taken as wall and CPU (process) time, with 1 torch thread by default: on a shared
machine another job inflates wall time many times over (and idle-spinning threads with it),
CPU time much less. Below T = 1024 the lens view reads every site; from 1024 on one site,
scaled to all.

    python bench/bench_real_model.py --results          # T = 256, 1024, 4096 (1 rep at 4096)
    python bench/bench_real_model.py --seq-lens 256 --reps 1   # a quick look
    # a loaded machine: each length in its own process at once, then the table from their JSON
    python bench/bench_real_model.py --worker 1024 --reps 1 &
    python bench/bench_real_model.py --worker 4096 --long-no-saliency &
    python bench/bench_real_model.py --collect --results
"""

from __future__ import annotations

import argparse
import inspect
import json
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _results

ROOT = Path(__file__).resolve().parents[1]
SEQ_LENS = (256, 1024, 4096)
MODES = ("plain", "explain_nosal", "explain")
PARTS = ("capture", "lens_kept", "predictions", "summaries", "induction", "saliency")
LONG = 4096
"""From this T on: --long-reps repetitions."""
LENS_ALL_BELOW = 1024
"""Below this T the lens view reads every site; from it on one site, scaled to all (every site
costs the same: one head over the same number of tokens)."""
TARGETS = {"explain_nosal_over_plain_max": 2.0, "explain_over_plain_max": 4.0}


# ---- the worker: one T in this process --------------------------------------------------------


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class Timers:
    """Seconds (wall and CPU) spent in the functions explain() calls, per call of explain()."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.cpu_seconds: dict[str, float] = defaultdict(float)

    def clear(self) -> None:
        self.seconds.clear()
        self.cpu_seconds.clear()

    def wrap(self, module: Any, name: str, part: str) -> None:
        real = getattr(module, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            start, cpu_start = time.perf_counter(), time.process_time()
            try:
                return real(*args, **kwargs)
            finally:
                self.seconds[part] += time.perf_counter() - start
                self.cpu_seconds[part] += time.process_time() - cpu_start

        setattr(module, name, timed)


def worker(
    seq_len: int, reps: int, warmup: int, threads: int, modes: tuple[str, ...] = MODES
) -> dict[str, Any]:
    import gc

    import torch

    torch.set_num_threads(threads)

    sys.path.insert(0, str(ROOT))
    import llmasos_widgets.attribution as attribution
    from llmasos_widgets import load_model
    from llmasos_widgets.explanation import _explain, _lens, explain
    from tests._real_model import smollm2_checkpoint

    model = load_model(str(smollm2_checkpoint()))
    hf_model = model.hf_model
    timers = Timers()
    timers.wrap(_explain, "row_summaries", "summaries")
    timers.wrap(_explain, "_induction_scores", "induction")
    timers.wrap(attribution, "attribute", "saliency")
    timers.wrap(_lens, "read_top", "predictions")  # the output site, during the forward
    # LogitLens.read: the other sites keep their residual stream (lens_kept)
    real_read = _lens.LogitLens.read

    def timed_read(self: Any, site: int, hidden: Any) -> None:
        start, cpu_start = time.perf_counter(), time.process_time()
        before, cpu_before = timers.seconds["predictions"], timers.cpu_seconds["predictions"]
        real_read(self, site, hidden)
        spent = time.perf_counter() - start - (timers.seconds["predictions"] - before)
        cpu_spent = time.process_time() - cpu_start
        timers.seconds["lens_kept"] += spent
        timers.cpu_seconds["lens_kept"] += cpu_spent - (
            timers.cpu_seconds["predictions"] - cpu_before
        )

    _lens.LogitLens.read = timed_read  # type: ignore[method-assign]

    generator = torch.Generator().manual_seed(seq_len)
    ids = torch.randint(0, int(hf_model.config.vocab_size), (seq_len,), generator=generator)

    def plain() -> None:
        with torch.no_grad():
            hf_model(input_ids=ids[None])

    def run(mode: str) -> dict[str, Any]:
        gc.collect()
        rss_before = _rss_kib("VmRSS")
        peak_ok = _reset_peak()
        timers.clear()
        start = time.perf_counter()
        cpu_start = time.process_time()
        explanation = None
        if mode == "plain":
            plain()
        else:
            explanation = explain(model, ids, saliency=mode == "explain")
        seconds = time.perf_counter() - start
        cpu_seconds = time.process_time() - cpu_start
        peak = _rss_kib("VmHWM") if peak_ok else 0
        row: dict[str, Any] = {
            "seconds": seconds,
            "cpu_seconds": cpu_seconds,
            "peak_rss_delta_bytes": max(0, peak - rss_before) * 1024 if peak_ok else None,
        }
        if explanation is not None:
            parts = {part: timers.seconds.get(part, 0.0) for part in PARTS[1:]}
            parts["capture"] = seconds - sum(parts.values())
            row["parts_s"] = parts
            cpu_parts = {part: timers.cpu_seconds.get(part, 0.0) for part in PARTS[1:]}
            cpu_parts["capture"] = cpu_seconds - sum(cpu_parts.values())
            row["parts_cpu_s"] = cpu_parts
            row["residual_kept_bytes"] = explanation.logit_lens.residual_bytes
            row["qk_bytes"] = sum(t.nbytes for t in (*explanation.queries, *explanation.keys))
            if mode == "explain_nosal":  # a view reads every site of the lens
                pending = explanation.logit_lens.pending_sites
                read = pending if seq_len < LENS_ALL_BELOW else pending[:1]
                start, cpu_start = time.perf_counter(), time.process_time()
                for site in read:
                    explanation.lens_site(site)
                scale = len(pending) / len(read)
                row["lens_view_s"] = (time.perf_counter() - start) * scale
                row["lens_view_cpu_s"] = (time.process_time() - cpu_start) * scale
                row["lens_view_sites_read"] = f"{len(read)} of {len(pending)}"
        del explanation
        return row

    small = ids[:16]
    for _ in range(warmup):  # untimed: kernels, allocator, tokenizer caches
        with torch.no_grad():
            hf_model(input_ids=small[None])
        explain(model, small, saliency=True)
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
    for rep in range(reps):
        for mode in modes:
            row = run(mode)
            runs[mode].append(row)
            print(f"  T={seq_len} rep {rep} {mode:14s} {row['seconds']:8.2f} s", file=sys.stderr)
            partial = {"seq_len": seq_len, "runs": runs, "partial": True}
            _results.OUT.mkdir(parents=True, exist_ok=True)
            (_results.OUT / f"bench_real_model_T{seq_len}.partial.json").write_text(
                json.dumps(partial, default=str)
            )
    return {
        "seq_len": seq_len,
        "runs": runs,
        "saliency_method": inspect.signature(explain).parameters["saliency_method"].default,
        "rss_after_load_bytes": _rss_kib("VmRSS") * 1024,
        "torch_threads": torch.get_num_threads(),
        "load_average": _results.load_average(),
    }


# ---- the parent: one subprocess per T, then the table ------------------------------------------


def _default_saliency_method() -> str:
    sys.path.insert(0, str(ROOT))
    from llmasos_widgets.explanation import explain

    return str(inspect.signature(explain).parameters["saliency_method"].default)


def summarise(raw: dict[str, Any]) -> dict[str, Any]:
    runs = raw["runs"]
    modes = [mode for mode in MODES if mode in runs]
    median = {mode: statistics.median(r["seconds"] for r in runs[mode]) for mode in modes}
    cpu = {mode: statistics.median(r["cpu_seconds"] for r in runs[mode]) for mode in modes}

    def ratios(key: str) -> dict[str, float]:
        # ratios per repetition (each rep's modes ran back to back), then their median
        return {
            mode: statistics.median(
                e[key] / p[key] for e, p in zip(runs[mode], runs["plain"], strict=True)
            )
            for mode in modes[1:]
        }

    def parts_of(key: str) -> dict[str, dict[str, float]]:
        return {
            mode: {part: statistics.median(r[key][part] for r in runs[mode]) for part in PARTS}
            for mode in modes[1:]
        }

    nosal_runs = runs["explain_nosal"]
    lens_view = statistics.median(r["lens_view_s"] for r in nosal_runs)
    lens_view_cpu = statistics.median(r["lens_view_cpu_s"] for r in nosal_runs)
    peak = {mode: max((r["peak_rss_delta_bytes"] or 0) for r in runs[mode]) for mode in modes}
    nosal = runs["explain_nosal"][0]
    return {
        "seq_len": raw["seq_len"],
        "reps": len(runs["plain"]),
        "saliency_method": raw["saliency_method"],
        "torch_threads": raw["torch_threads"],
        "median_s": median,
        "median_cpu_s": cpu,
        "over_plain": ratios("seconds"),
        "cpu_over_plain": ratios("cpu_seconds"),
        "parts_median_s": parts_of("parts_s"),
        "parts_median_cpu_s": parts_of("parts_cpu_s"),
        "lens_view_s": lens_view,
        "lens_view_sites_read": nosal_runs[0]["lens_view_sites_read"],
        "lens_view_cpu_s": lens_view_cpu,
        "explain_nosal_with_lens_view_over_plain": (median["explain_nosal"] + lens_view)
        / median["plain"],
        "explain_nosal_with_lens_view_cpu_over_plain": (cpu["explain_nosal"] + lens_view_cpu)
        / cpu["plain"],
        "peak_rss_delta_bytes": peak,
        "residual_kept_bytes": nosal["residual_kept_bytes"],
        "qk_bytes": nosal["qk_bytes"],
        "rss_after_load_bytes": raw["rss_after_load_bytes"],
        "load_average": raw["load_average"],
        "raw": runs,
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    header = (
        f"{'T':>5} {'plain s':>8} {'nosal s':>8} {'expl s':>8} {'nosal/p':>8} {'expl/p':>7} "
        + " ".join(f"{p[:9]:>9}" for p in PARTS)
        + f" {'lensview':>8} {'peak MiB p/n/e':>16}"
    )
    print("CPU seconds (process time) and CPU-time ratios; peak RSS above the call's start")
    print(header)
    print("-" * len(header))
    for r in rows:
        nan = float("nan")
        full = "explain" if "explain" in r["median_cpu_s"] else "explain_nosal"
        m = {"explain": nan, **r["median_cpu_s"]}
        parts = r["parts_median_cpu_s"][full]
        ratio = {"explain": nan, **r["cpu_over_plain"]}
        peak = r["peak_rss_delta_bytes"]
        peaks = "/".join(f"{peak.get(mode, nan) / 2**20:.0f}" for mode in MODES)
        print(
            f"{r['seq_len']:>5} {m['plain']:>8.2f} {m['explain_nosal']:>8.2f} "
            f"{m['explain']:>8.2f} {ratio['explain_nosal']:>8.2f} "
            f"{ratio['explain']:>7.2f} "
            + " ".join(f"{parts[p]:>9.2f}" for p in PARTS)
            + f" {r['lens_view_cpu_s']:>8.2f} {peaks:>16}"
        )
        wall = {"explain": nan, **r["over_plain"]}
        print(f"      wall-time ratios: {wall['explain_nosal']:.2f} / {wall['explain']:.2f}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seq-lens", type=int, nargs="+", default=list(SEQ_LENS))
    parser.add_argument("--reps", type=int, default=3, help="repetitions below 4096 tokens")
    parser.add_argument("--long-reps", type=int, default=1, help="repetitions at T >= 4096")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: no spinning under load)"
    )
    parser.add_argument(
        "--jobs", type=int, default=1, help="lengths measured at once (one process each)"
    )
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--long-no-saliency",
        action="store_true",
        help=f"at T >= {LONG}: plain and explain(saliency=False) only (a loaded machine)",
    )
    parser.add_argument(
        "--collect",
        action="store_true",
        help="run nothing: read the workers' bench/out/bench_real_model_T<T>.json (each "
        "length run on its own with --worker T, e.g. at once on a loaded machine)",
    )
    _results.add_output_arguments(parser, "bench_real_model")
    args = parser.parse_args(argv)
    if args.worker is not None:
        long = args.worker >= LONG
        reps = args.long_reps if long else args.reps
        modes = MODES[:2] if long and args.long_no_saliency else MODES
        text = json.dumps(worker(args.worker, reps, args.warmup, args.threads, modes))
        _results.OUT.mkdir(parents=True, exist_ok=True)
        (_results.OUT / f"bench_real_model_T{args.worker}.json").write_text(text + "\n")
        print(text)
        return {}

    environment = _results.environment()
    environment["torch_threads"] = args.threads  # the workers' (this process computes nothing)
    rows = []
    pending = list(args.seq_lens)
    running: list[tuple[int, subprocess.Popen[str]]] = []
    if args.collect:
        for seq_len in pending:
            raw_path = _results.OUT / f"bench_real_model_T{seq_len}.json"
            if raw_path.is_file():
                rows.append(summarise(json.loads(raw_path.read_text())))
                continue
            # a worker still running: the repetitions it finished (plain and saliency=False)
            raw = json.loads(raw_path.with_suffix(".partial.json").read_text())
            raw["runs"] = {mode: runs for mode, runs in raw["runs"].items() if runs}
            raw.setdefault("saliency_method", _default_saliency_method())
            raw.setdefault("torch_threads", args.threads)
            raw.setdefault("rss_after_load_bytes", None)
            raw.setdefault("load_average", None)
            rows.append({**summarise(raw), "partial": True})
        pending = []
    while pending or running:
        while pending and len(running) < args.jobs:
            seq_len = pending.pop(0)
            print(f"T={seq_len} ...", flush=True)
            command = [
                sys.executable,
                __file__,
                *("--worker", str(seq_len), "--reps", str(args.reps)),
                *("--long-reps", str(args.long_reps), "--warmup", str(args.warmup)),
                *("--threads", str(args.threads)),
            ]
            process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
            running.append((seq_len, process))
        seq_len, process = running.pop(0)
        out, _ = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"the worker for T={seq_len} failed ({process.returncode})")
        rows.append(summarise(json.loads(out.strip().splitlines()[-1])))
    rows.sort(key=lambda row: row["seq_len"])
    loads = [row["load_average"] for row in rows if row.get("load_average")]
    if args.collect and loads:  # the workers' load, not the collecting process's
        environment["load_average_start"] = max(loads, key=lambda load: load[0])
        environment["collected_from_workers"] = True
    print_table(rows)
    config = {
        "model": "SmolLM2-135M-Instruct (dequantized from GGUF Q4_1), float32",
        "layers": 30,
        "heads": 9,
        "kv_heads": 3,
        "hidden": 576,
        "vocab": 49152,
        "device": "cpu",
        "seq_lens": args.seq_lens,
        "reps": args.reps,
        "long_reps": args.long_reps,
        "warmup": args.warmup,
        "torch_threads": args.threads,
        "jobs": args.jobs,
        "modes": list(MODES),
        "parts": list(PARTS),
        "input": "random token ids (torch.Generator seeded with T)",
    }
    figures = {"targets": TARGETS, "rows": rows}
    _results.write(
        "bench_real_model",
        environment=environment,
        config=config,
        figures=figures,
        out=args.out,
        results=args.results,
    )
    return {"environment": environment, "config": config, **figures}


if __name__ == "__main__":
    main()
