"""Renderers of bench/bench_long_context.py's JSON: the kernel side of issue 11 (region
``long-context-kernel``) and the README's per-token memory (region ``long-context-memory``)."""

from __future__ import annotations

from collections.abc import Callable

from _tables_format import Sources, load_sentence, met, run_line, size, table


def _seconds(x: float) -> str:
    return f"{x:.2f} s" if x < 10 else f"{x:.0f} s"


def long_context_kernel(sources: Sources) -> str:
    result = sources.result("bench_long_context")
    config, targets = result["config"], result["targets"]
    previous = result.get("previous") or {}
    before = previous.get("rows", {})
    header = [
        "T",
        "first view: kernel, bytes (blocks)",
        "again (normalisers kept)",
        "before: first view",
        "zoom (1/8 x 1/8)",
        "before: zoom",
        "exact 64 x 64 detail",
        "whole layer at 128 x 128 per head",
        "first render",
        "today: one head's whole pattern",
        "float32 [T, T] per head",
    ]
    rows = []
    for r in result["rows"]:
        layer = r["layer"]
        layer_cell = size(layer["bytes"]) + (
            f" ({_seconds(layer['seconds'])})" if layer["how"] == "measured" else " (32 x a panel)"
        )
        today = r["today"]
        old = before.get(str(r["tokens"]))
        first = r["first_view"]
        blocks = " x ".join(str(b) for b in first.get("blocks", []))
        rows.append(
            [
                f"{r['tokens']:,}",
                f"{_seconds(first['seconds'])}, {size(first['bytes'])} ({blocks})",
                _seconds(first["again_seconds"]) if "again_seconds" in first else "-",
                (
                    f"{_seconds(old['first_view']['seconds'])}, {size(old['first_view']['bytes'])}"
                    if old
                    else "-"
                ),
                f"{_seconds(r['zoom']['seconds'])}, {size(r['zoom']['bytes'])}",
                f"{_seconds(old['zoom']['seconds'])}, {size(old['zoom']['bytes'])}" if old else "-",
                f"{_seconds(r['detail']['seconds'])}, {size(r['detail']['bytes'])}",
                layer_cell,
                size(r["first_render"]["bytes"]),
                size(today.get("head_bytes")),
                size(today["float32_pattern_bytes"]),
            ]
        )
    views = [max(r["first_view"]["bytes"], r["zoom"]["bytes"]) for r in result["rows"]]
    layers = [r["layer"]["bytes"] for r in result["rows"]]
    firsts = [r["first_render"]["bytes"] for r in result["rows"]]
    exact = all(
        r["detail"]["exact"] and abs(r["detail"]["weight"] - r["detail"]["exact_weight"]) < 1e-5
        for r in result["rows"]
    )
    bertviz = "; ".join(
        f"({b['layers']}, {b['heads']}, {b['tokens']}) {size(b['head_view_html_bytes'])}"
        for b in result["bertviz"]
    )
    lines = [
        run_line(result, "python bench/bench_long_context.py --results"),
        "",
        f"One layer of {config['heads']} heads, head dim {config['head_dim']} (LLaMA-2-7B's "
        f"attention shape), seeded synthetic q/k in {config['dtype']} with one planted cell "
        "~20k tokens back (T/4 below 20k); a view costs the same in any layer, so one layer "
        f"is computed. {config['torch_threads']} torch threads. Bytes are the `view` "
        "message of `widgets/_pattern_views.py` (JSON + deflated buffers) at "
        f"{config['view'][0]} x {config['view'][1]}; the first render adds the widget's "
        "state at 32 layers x 32 heads (no JS bundle). Kernel seconds: the first view "
        "includes the row normalisers (cold: one pass gives them with the pooled values); "
        "*again*, zoom and detail reuse them. The kernel caps a view at 512 kB: asked "
        "512 x 512, it sends the blocks in parentheses. Widget state bytes as jupyter_client "
        "packs them (UTF-8 JSON). *Today* is `encode_pattern` of the whole quantized pattern "
        "(run where T <= 4096)."
        + (
            f" *Before*: the previous kernel ({previous['kernel']}), run at "
            f"{previous['date_utc'][:16].replace('T', ' ')} UTC under a load average of "
            f"{previous['load_average_start'][0]} with {previous['torch_threads']} torch threads."
            if previous
            else ""
        ),
        "",
        table(header, rows, "r" * len(header)),
        "",
        f"- One view ≤ {size(targets['view_bytes'])}: {met(max(views) <= targets['view_bytes'])}"
        f" (largest {size(max(views))}).",
        f"- A whole layer at view resolution ≤ {size(targets['layer_bytes'])}: "
        f"{met(max(layers) <= targets['layer_bytes'])} (largest {size(max(layers))}).",
        f"- First render ≤ {size(targets['first_render_bytes'])}: "
        f"{met(max(firsts) <= targets['first_render_bytes'])} (largest {size(max(firsts))}).",
        "- The exact 64 x 64 detail holds the planted cell's exact weight at every T: "
        f"{'yes' if exact else 'no'}.",
        f"- BertViz head view, HTML bytes: {bertviz} (bench_widget_browser_bertviz.json).",
    ]
    return "\n".join(lines) + "\n"


# (layers, query heads, kv heads, head dim) from the models' config.json
SHAPES = {"LLaMA-2-7B": (32, 32, 32, 128), "Llama-3.1-8B": (32, 32, 8, 128)}


def long_context_memory(sources: Sources) -> str:
    result = sources.result("bench_long_context")
    header = ["model", "q + k per token, one layer", "per token, all layers", "8k tokens",
              "32k tokens", "128k tokens"]  # fmt: skip
    rows = []
    for name, (layers, heads, kv_heads, dim) in SHAPES.items():
        per_layer = (heads + kv_heads) * dim * 2  # bf16
        per_token = layers * per_layer
        rows.append(
            [name, size(per_layer), size(per_token)]
            + [size(per_token * t) for t in (8192, 32768, 131072)]
        )
    by_t = {r["tokens"]: r for r in result["rows"]}
    measured = ", ".join(
        f"T = {t:,}: {_seconds(r['first_view']['seconds'])}" for t, r in sorted(by_t.items())
    )
    return (
        table(header, rows, "lrrrrr")
        + "\n\nMeasured on this repository's 2-core CPU (bench/RESULTS.md, long-context kernel): "
        f"one head's first view (asked at 512 x 512; one pass gives the row normalisers and "
        f"the pooled values) at head dim 128 takes {measured} with "
        f"{result['config']['torch_threads']} torch threads; a zoom or an exact detail reuses "
        f"the normalisers and costs its region only. "
        f"{load_sentence(result['environment'])}\n"
    )


RENDERERS: dict[str, Callable[[Sources], str]] = {
    "long-context-kernel": long_context_kernel,
    "long-context-memory": long_context_memory,
}
