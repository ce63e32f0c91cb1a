"""Tables of ``bench/bench_real_model.py``: explain() on SmolLM2-135M-Instruct against one plain
forward, split by part (``real-model`` region of bench/RESULTS.md, ``real-model-cost`` of
README.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from _tables_format import Sources, met, mib, run_line, table

COMMAND = "python bench/bench_real_model.py --results"
PART_NAMES = {
    "capture": "capture",
    "lens_kept": "lens kept",
    "predictions": "predictions",
    "summaries": "head summaries",
    "induction": "induction",
    "saliency": "saliency",
}


def _seconds(x: float) -> str:
    return f"{x:.2f}" if x < 100 else f"{x:.0f}"


def _targets(result: dict[str, Any]) -> tuple[float, float]:
    targets = result["targets"]
    return targets["explain_nosal_over_plain_max"], targets["explain_over_plain_max"]


def _get(d: dict[str, Any], key: str, fmt: Callable[[float], str]) -> str:
    return fmt(d[key]) if key in d else "-"


def _ratio(x: float) -> str:
    return f"{x:.2f}"


def real_model(sources: Sources) -> str:
    result = sources.result("bench_real_model")
    cfg = result["config"]
    rows = result["rows"]
    nosal_max, full_max = _targets(result)
    method = rows[0]["saliency_method"]
    times = []
    for r in rows:
        cpu, ratio, wall = r["median_cpu_s"], r["cpu_over_plain"], r["over_plain"]
        peak = r["peak_rss_delta_bytes"]
        times.append(
            [
                str(r["seq_len"]),
                str(r["reps"]),
                _seconds(cpu["plain"]),
                _seconds(cpu["explain_nosal"]),
                _get(cpu, "explain", _seconds),
                _ratio(ratio["explain_nosal"]),
                _get(ratio, "explain", _ratio),
                f"{_ratio(wall['explain_nosal'])} / {_get(wall, 'explain', _ratio)}",
                f"{_seconds(r['lens_view_cpu_s'])} ({r['lens_view_sites_read']})",
                _ratio(r["explain_nosal_with_lens_view_cpu_over_plain"]),
                mib(peak["plain"]),
                mib(peak["explain_nosal"]),
                _get(peak, "explain", mib),
                mib(r["qk_bytes"]),
                mib(r["residual_kept_bytes"]),
            ]
        )
    parts = []
    for r in rows:
        for mode, label in (("explain_nosal", "saliency=False"), ("explain", f"`{method}`")):
            if mode not in r["parts_median_cpu_s"]:
                continue
            split = r["parts_median_cpu_s"][mode]
            total = r["median_cpu_s"][mode]
            parts.append(
                [str(r["seq_len"]), label]
                + [
                    f"{_seconds(split[p])} ({100 * split[p] / total:.0f}%)"
                    if (p != "saliency" or mode == "explain")
                    else "-"
                    for p in PART_NAMES
                ]
            )
    verdicts = []
    for r in rows:
        nosal = r["cpu_over_plain"]["explain_nosal"]
        line = (
            f"- T = {r['seq_len']}: explain(saliency=False) {nosal:.2f}x a plain forward "
            f"(target ≤ {nosal_max:g}x): {met(nosal <= nosal_max)}"
        )
        if "explain" in r["cpu_over_plain"]:
            full = r["cpu_over_plain"]["explain"]
            line += f"; explain() {full:.2f}x (target ≤ {full_max:g}x): {met(full <= full_max)}"
        else:
            line += "; explain() with saliency not measured at this length in this run"
        verdicts.append(line + ".")
    return "\n".join(
        [
            run_line(result, COMMAND),
            "",
            f"{cfg['model']} on the {cfg['device'].upper()}: {cfg['layers']} layers, "
            f"{cfg['heads']} query / {cfg['kv_heads']} kv heads, hidden {cfg['hidden']}, "
            f"vocabulary {cfg['vocab']:,}; {cfg['input']}; {cfg['torch_threads']} torch "
            "thread. One process per T; in it the modes are interleaved per repetition. "
            "Times are CPU seconds (process time), which another job on the machine does not "
            "inflate the way it does wall time; ratios are the median over repetitions of "
            "each repetition's ratio (wall-time ratios beside them). plain = `model(input_ids)` "
            "under `no_grad` (full logits); explain() = the default saliency "
            f"(`{method}`). lens view = reading every logit-lens site afterwards (what the "
            "LogitLensWidget, the report or `lens_probs` asks for; timed on the sites read and "
            "scaled to all of them, which cost alike); + view = explain(saliency=False) plus "
            "that read, over plain: what explain() cost when it read the lens of every site "
            "in the forward. Peak = the call's peak RSS above the RSS before it (MiB); q+k and "
            "residual kept = what the explanation holds (MiB; residual: the sites whose lens "
            "is not read yet).",
            "",
            table(
                [
                    "T",
                    "reps",
                    "plain CPU s",
                    "saliency=False CPU s",
                    "explain() CPU s",
                    "saliency=False / plain",
                    "explain() / plain",
                    "wall-time ratios",
                    "lens view CPU s (sites read)",
                    "+ view / plain",
                    "plain peak",
                    "saliency=False peak",
                    "explain() peak",
                    "q+k",
                    "residual kept",
                ],
                times,
                "rrrrrrrrrrrrrrr",
            ),
            "",
            *verdicts,
            "",
            "Where explain's CPU time goes (median CPU seconds, share of that call): capture = "
            "the traced forward and assembly; lens kept = keeping the residual streams of the "
            "sites before the output; predictions = top-k of the output at every position "
            "(the output site's lens row comes with it); head summaries = entropy, previous- "
            "and first-token scores row by row, and the attention sinks measured in the same "
            "pass; induction = the forward over a random sequence written twice.",
            "",
            table(["T", "call", *PART_NAMES.values()], parts, "rl" + "r" * len(PART_NAMES)),
        ]
    )


def real_model_cost(sources: Sources) -> str:
    """One paragraph for the README."""
    result = sources.result("bench_real_model")
    rows = result["rows"]
    method = rows[0]["saliency_method"]
    env = result["environment"]
    cells = []
    for r in rows:
        ratio = r["cpu_over_plain"]
        cell = f"T = {r['seq_len']:,}: {ratio['explain_nosal']:.2f}x without saliency"
        if "explain" in ratio:
            cell += f", {ratio['explain']:.2f}x with `{method}` saliency"
        cells.append(cell)
    return (
        f"On SmolLM2-135M-Instruct on this repository's {env['cpu_count']}-CPU machine "
        f"({env['cpu']}, {result['config']['torch_threads']} torch thread), `explain()` costs, "
        "in CPU time as a multiple of one plain forward of the same text: "
        + "; ".join(cells)
        + ". The logit lens of the sites before the output is read when a view asks "
        "([docs/long_context.md](docs/long_context.md#the-logit-lens-read-when-viewed)); "
        "the split by part is in "
        "[bench/RESULTS.md](bench/RESULTS.md#explain-on-a-real-checkpoint)."
    )


RENDERERS: dict[str, Callable[[Sources], str]] = {
    "real-model": real_model,
    "real-model-cost": real_model_cost,
}
