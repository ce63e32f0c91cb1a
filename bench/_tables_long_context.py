"""Renderer of bench/bench_long_context_browser.py's JSON (region ``long-context-browser``)."""

from __future__ import annotations

from collections.abc import Callable

from _tables_format import Sources, met, run_line, size, table

TARGET_NAMES = {
    "first_render_ms": "first render ≤ 1 s",
    "select_head_ms": "select a head → painted ≤ 300 ms",
    "zoom_ms": "zoom → detail painted ≤ 300 ms",
    "hover_work_p95_ms": "hover work p95 ≤ 8 ms",
    "first_render_bytes": "first render ≤ 1 MB",
    "view_bytes": "one pattern view ≤ 512 kB",
}


def _threads(row: dict[str, object]) -> str:
    n = row.get("torch_threads")
    return "torch's default threads" if n is None else f"{n} torch thread{'s' if n != 1 else ''}"


def _hover(work: dict[str, float]) -> str:
    return f"{work['median']:.1f} / {work['p95']:.1f} ms"


def long_context_browser(sources: Sources) -> str:
    result = sources.result("bench_long_context_browser")
    header = [
        "path",
        "L, H, T",
        "first render",
        "first render ms",
        "select head → painted (kernel)",
        "zoom → painted (kernel)",
        "one head's view",
        "hover work median / p95",
        "strip spans",
    ]
    rows = [
        [
            "whole patterns (today)",
            f"{r['layers']}, {r['heads']}, {r['tokens']}",
            size(r["first_render_bytes"]),
            f"{r['first_render_ms']:.0f}",
            f"{r['select_head_ms']:.0f} ms",
            "-",
            size(r["view_bytes"]),
            _hover(r["hover_work_ms"]),
            f"{r['tokens']}",
        ]
        for r in result["today"]
    ]
    previous = result.get("previous") or {}
    lod = [(f"level of detail, before ({previous.get('date_utc', '')[11:16]} UTC)", r)
           for r in previous.get("rows", [])]  # fmt: skip
    cpu = result["environment"]["cpu"]
    lod += [(f"level of detail, {cpu} ({_threads(r)})", r) for r in result["rows"]]
    others = result.get("other_cpus", [])
    lod += [
        (f"level of detail, {run['environment']['cpu']} ({_threads(r)})", r)
        for run in others
        for r in run["rows"]
    ]
    rows += [
        [
            name,
            f"{r['layers']}, {r['heads']}, {r['tokens']}",
            size(r["first_render_bytes"]),
            f"{r['first_render_ms']:.0f}",
            f"{r['select_head_ms']:.0f} ms ({r['select_kernel_ms']:.0f})",
            f"{r['zoom_ms']:.0f} ms ({r['zoom_kernel_ms']:.0f})",
            f"{size(r['view_bytes'])} ({r['view_blocks']} rows of blocks)",
            _hover(r["hover_work_ms"]),
            f"≤ {r['strip_spans_max']}",
        ]
        for name, r in lod
    ]
    lines = [
        run_line(result, "python bench/bench_long_context_browser.py --results"),
        "",
        "Headless Chromium; the real bundle in a page served from 127.0.0.1; the browser's "
        "messages reach the live Python `AttentionWidget` (its `_handle_custom_msg`, through "
        "Playwright's `expose_function`) on a planted Explanation (`tests/_long_context.py`, "
        "head dim 16), so *select* and *zoom* include the kernel's pooled computation (in "
        "parentheses) and the real bytes. *Whole patterns* are today's figures from "
        "`bench_widget_browser.json` (whole quantized patterns, synthetic data). Hover: "
        f"{result['config']['hovers']} `pointerover`s on strip tokens, each scrolled into view "
        "first (not timed); work = handler + the frame's update. Bytes: the widget state as "
        "jupyter_client packs it (UTF-8 JSON + buffers) plus the bundle."
        + (
            f" *Before*: the previous kernel ({previous['kernel']}), run at "
            f"{previous['date_utc'][:16].replace('T', ' ')} UTC under a load average of "
            f"{previous['load_average_start'][0]} with {previous['torch_threads']} torch threads."
            if previous
            else ""
        ),
        "",
        table(header, rows, "llrrrrrrr"),
        "",
    ]
    runs = [(result["environment"], r) for r in result["rows"]]
    runs += [(run["environment"], r) for run in others for r in run["rows"]]
    for environment, r in runs:
        verdict = r["verdict"]
        lines.append(
            f"- {environment['cpu']}, {environment['date_utc'][:10]}, load "
            f"{environment['load_average_start'][0]}; at ({r['layers']}, {r['heads']}, "
            f"{r['tokens']}), {_threads(r)}: "
            + "; ".join(f"{TARGET_NAMES[k]}: {met(v == 'met')}" for k, v in verdict.items())
            + "."
        )
        samples = r.get("select_samples")
        if samples:
            each = ", ".join(f"{x['ms']:.0f}" for x in samples)
            lines.append(
                f"  Select: the median of {len(samples)} heads, each selected cold ({each} ms; "
                "the first is the process's first view)."
            )
        else:
            lines.append("  Select: one head, selected once.")
        trip = r.get("select_trip_ms")
        if trip:
            lines.append(
                f"  Select, ms after the click: view asked {trip['asked_ms']:.0f}, reply in the "
                f"page {trip['replied_ms']:.0f} (kernel {r['select_kernel_ms']:.0f}), painted "
                f"{r['select_head_ms']:.0f}."
            )
    if result["rows"]:
        r = result["rows"][0]
        lines.append(
            f"- Zoomed view {size(r['zoom_bytes'])}; a strip row (one token's exact attention "
            f"over all {r['tokens']} keys) {size(r['strip_row_bytes'])}."
        )
    return "\n".join(lines) + "\n"


RENDERERS: dict[str, Callable[[Sources], str]] = {"long-context-browser": long_context_browser}
