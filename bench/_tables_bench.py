"""Renderers of the benchmark tables (bench/RESULTS.md, docs/widgets.md) for bench/tables.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from _tables_format import Sources, met, mib, run_line, size, table


def trace(sources: Sources) -> str:
    result = sources.result("bench_trace")
    cfg, model = result["config"], result["config"]["model"]
    rows = result["rows"]
    body = [
        [
            str(r["seq_len"]),
            f"{r['median_s']['plain']:.3f}",
            f"{r['median_s']['traced']:.3f}",
            f"{r['median_s']['eager']:.3f}",
            f"{r['traced_over_plain']:.2f}",
            f"{r['eager_over_plain']:.2f}",
            f"{r['traced_over_plain_min']:.2f}",
            mib(r["qk_bytes"]),
            mib(r["attention_bytes"]),
            f"{r['qk_over_attention_bytes']:.3f}",
            mib(r["residual_bytes"]),
        ]
        for r in rows
    ]
    longest = max(rows, key=lambda r: r["seq_len"])
    targets = result["targets"]
    time_ok = longest["traced_over_plain"] <= targets["traced_over_plain_max"]
    memory_ok = longest["qk_over_attention_bytes"] <= targets["qk_over_attention_bytes_max"]
    return "\n".join(
        [
            run_line(result, f"python bench/bench_trace.py --reps {cfg['reps']} --results"),
            "",
            f"Random-init LLaMA-shaped model: {model['num_hidden_layers']} layers, hidden "
            f"{model['hidden_size']}, {model['num_attention_heads']} heads, "
            f"{model['num_key_value_heads']} kv heads, head dim {model['head_dim']}, "
            f"intermediate {model['intermediate_size']}, vocab {model['vocab_size']}; batch "
            f"{cfg['batch']}; {cfg['dtype']} on {cfg['device']}; modes interleaved per "
            f"repetition; median of {cfg['reps']} after {cfg['warmup']} warm-up. Sizes in MiB.",
            "",
            table(
                [
                    "T",
                    "plain s",
                    "traced s",
                    "eager s",
                    "traced/plain",
                    "eager/plain",
                    "traced/plain (minima)",
                    "q+k MiB",
                    "eager attn MiB",
                    "q+k / attn",
                    "residual MiB",
                ],
                body,
                "r" * 11,
            ),
            "",
            f"- Time at T={longest['seq_len']}: traced/plain {longest['traced_over_plain']:.2f} "
            f"(target ≤ {targets['traced_over_plain_max']:.2f}): {met(time_ok)}.",
            f"- Memory at T={longest['seq_len']}: the captured q+k are "
            f"1/{1 / longest['qk_over_attention_bytes']:.0f} of eager's attention tensors "
            f"(target ≤ 1/{1 / targets['qk_over_attention_bytes_max']:.0f}): {met(memory_ok)}.",
        ]
    )


def saliency(sources: Sources) -> str:
    result = sources.result("bench_saliency")
    cfg, model = result["config"], result["config"]["model"]
    body = [
        [
            str(r["seq_len"]),
            r["task"],
            f"{r['ours_s']:.2f}",
            f"{r['captum_s']:.2f}",
            f"{r['time_ratio']:.2f}",
            f"{r['ours_peak_mib']:.0f}",
            f"{r['captum_peak_mib']:.0f}",
            f"{r['memory_ratio']:.3f}",
            f"{r['ig_over_forward_backward']:.1f}x",
            f"{r['max_abs_difference']:.1e}",
            "yes"
            if r["time_ratio"] <= result["target"]["time_ratio_max"]
            and r["memory_ratio"] <= result["target"]["memory_ratio_max"]
            else "no",
        ]
        for r in result["rows"]
    ]
    return "\n".join(
        [
            run_line(result, "python bench/bench_saliency.py --results"),
            "",
            f"Random-init LLaMA: {model['num_hidden_layers']} layers, hidden "
            f"{model['hidden_size']}, {model['num_attention_heads']} heads / "
            f"{model['num_key_value_heads']} kv heads, fp32, on {cfg['device']}. Integrated "
            f"gradients, {cfg['n_steps']} steps of the `{cfg['integration']}` rule on both "
            f"sides (Captum's rule: both compute the same estimator), `{cfg['baseline']}` "
            'baseline; ours = `attribute(..., method="integrated_gradients")`, Captum = '
            "`LayerIntegratedGradients` (one per layer for all sites), interleaved, median of "
            f"{cfg['repeats']}. Ratios are ours / Captum (< 1: ours better). Memory: "
            f"{cfg['memory']}. IG / (fwd+bwd): our time as a multiple of one forward + "
            "backward pass. Target: time ratio ≤ 1 at equal or lower memory (last column).",
            "",
            table(
                [
                    "T",
                    "task",
                    "ours s",
                    "Captum s",
                    "time ratio",
                    "ours peak MiB",
                    "Captum peak MiB",
                    "memory ratio",
                    "IG / (fwd+bwd)",
                    "max abs diff",
                    "target met",
                ],
                body,
                "rl" + "r" * 9,
            ),
        ]
    )


def probing(sources: Sources) -> str:
    result = sources.result("bench_probing")
    cfg = result["config"]
    limit = result["target"]["cpu_vs_base_max"]
    body = [
        [
            r["model"],
            r["method"],
            f"{r['texts_per_s']:.0f}",
            f"{r['tokens_per_s']:.0f}",
            f"{r['ms_per_batch']:.2f}",
            f"{r['vs_base']:.2f}x",
            f"{r['cpu_ms_per_batch']:.2f}",
            f"{r['cpu_vs_base']:.2f}x",
        ]
        for r in result["rows"]
    ]
    verdicts = [
        f"{r['model']} {r['cpu_vs_base']:.2f}x ({met(r['cpu_vs_base'] <= limit)})"
        for r in result["rows"]
        if r["method"] == "activations"
    ]
    return "\n".join(
        [
            run_line(result, "python bench/bench_probing.py --results"),
            "",
            f"{cfg['n_texts']} agreement prompts ({cfg['distinct_texts']} distinct), batch size "
            f"{cfg['batch_size']}, {cfg['threads']} torch thread, best of {cfg['repeats']} "
            "interleaved runs. Every row runs the same base-model forward on the same "
            "batches (one tokenizer call, duplicates dropped, longest first, same padding); "
            "`vs base` = time / time of that forward with nothing collected. CPU = this "
            "process's CPU time, the robust figure on a shared machine.",
            "",
            table(
                [
                    "model",
                    "method",
                    "texts/s",
                    "tokens/s",
                    "ms/batch",
                    "vs base",
                    "CPU ms/batch",
                    "CPU vs base",
                ],
                body,
                "ll" + "r" * 6,
            ),
            "",
            f"Target: collecting every site costs at most {limit:.2f}x the CPU time of the "
            f"same forward: {'; '.join(verdicts)}.",
        ]
    )


def widget_sizes(sources: Sources) -> str:
    result = sources.result("bench_widget")
    rows = result["rows"]
    bundle = rows[0]["bundle_bytes"]
    body = [
        [
            f"{r['layers']}, {r['heads']}, {r['tokens']}",
            size(r["first_render_bytes"]),
            size(r["first_render_data_bytes"]),
            f"{size(r['pattern_bytes_typical'])} / {size(r['pattern_bytes_diffuse'])}",
            size(r["pattern_dense_float32_bytes"]),
            f"{1000 * r['pattern_encode_seconds']:.0f} ms",
        ]
        for r in rows
    ]
    limit = result["target"]["first_render_bytes_max"]
    big = [r for r in rows if (r["layers"], r["heads"], r["tokens"]) == (32, 32, 2048)]
    verdict = (
        f"Target: first render < {size(limit)} at (32, 32, 2048): "
        f"{size(big[0]['first_render_bytes'])}, {met(big[0]['first_render_under_target'])}."
        if big
        else ""
    )
    return "\n".join(
        [
            run_line(result, "python bench/bench_widget.py --results"),
            "",
            "Bytes the Python `AttentionWidget` sends, on synthetic attention-like patterns "
            "(`bench_widget.SyntheticExplanation`; *diffuse* = random scores, the worst case).",
            "",
            table(
                [
                    "L, H, T",
                    f"first render (incl. {size(bundle)} bundle)",
                    "of which data",
                    "one head: typical / diffuse",
                    "dense float32 head",
                    "encode one head",
                ],
                body,
                "lrrrrr",
            ),
            "",
            verdict,
        ]
    )


def _hover(h: dict[str, Any]) -> str:
    return f"{h['work_ms']['median']:.1f} / {h['work_ms']['p95']:.1f} ms"


def widget_browser(sources: Sources) -> str:
    result = sources.result("bench_widget_browser")
    targets = result["targets"]
    body = [
        [
            f"{r['layers']}, {r['heads']}, {r['tokens']}",
            f"{size(r['first_render_bytes'])} ({size(r['first_render_data_bytes'])} data)",
            size(r["head_bytes"]),
            size(r["layer_bytes"]),
            f"{r['first_render_ms']:.0f} ms ({r['first_render_warm_ms']:.0f})",
            f"{r['select_head_ms']:.0f} ms",
            f"{r['select_layer_ms'] / 1000:.1f} s",
            _hover(r["hover_1_head"]),
            _hover(r["hover_layer"]),
            f"{r['hover_1_head']['latency_ms']['median']:.0f} / "
            f"{r['hover_layer']['latency_ms']['median']:.0f} ms",
        ]
        for r in result["rows"]
    ]
    lines = [
        run_line(result, "python bench/bench_widget_browser.py --results"),
        "",
        f"Headless Chromium {result['environment'].get('chromium', '')}".rstrip()
        + ", `--disable-gpu`. The real bundle runs in a page served from 127.0.0.1, fed by a "
        "fake anywidget model with the exact state and `pattern` messages of the Python "
        "`AttentionWidget` (synthetic patterns). First render: `render()` → first frame "
        f"painted with the grid. Hover: {result['config']['hovers']} `pointerover`s on token "
        "spans, each to a new token; **work** = handler + frame start → frame painted (the "
        "main-thread cost; under 16 ms the repaint makes the next frame); the last column "
        "also includes the wait for vsync.",
        "",
        table(
            [
                "L, H, T",
                "first render",
                "1 head",
                "whole layer",
                "time to first render (warm)",
                "select 1 head → painted",
                "select layer → painted",
                "hover, 1 head: work median / p95",
                "hover, layer: work median / p95",
                "hover → painted frame (median, 1 head / layer)",
            ],
            body,
            "l" + "r" * 9,
        ),
    ]
    big = next(
        (r for r in result["rows"] if (r["layers"], r["heads"], r["tokens"]) == (32, 32, 2048)),
        None,
    )
    if big:
        hover_limit = targets.get("hover_work_p95_ms", targets.get("hover_ms"))
        lines += [
            "",
            "Targets at (32, 32, 2048):",
            f"- first render {size(big['first_render_bytes'])} (target < "
            f"{size(targets['first_render_bytes'])}): "
            f"{met(big['first_render_bytes'] < targets['first_render_bytes'])}; "
            f"{big['first_render_ms']:.0f} ms (target < {targets['first_render_ms']:.0f} ms): "
            f"{met(big['first_render_ms'] < targets['first_render_ms'])}.",
        ]
        for label, key in (("one head", "hover_1_head"), ("a whole layer", "hover_layer")):
            p95 = big[key]["work_ms"]["p95"]
            lines.append(
                f"- hover repaint with {label}: work p95 {p95:.1f} ms (target < "
                f"{hover_limit:.0f} ms): {met(p95 < hover_limit)}."
            )
    return "\n".join(lines)


def _bertviz_source(sources: Sources) -> dict[str, Any]:
    """The newest run with BertViz figures: the last full run, else the transcribed one."""
    if sources.has("bench_widget_browser"):
        latest = sources.result("bench_widget_browser")
        if any("bertviz" in r for r in latest["rows"]):
            return latest
    return sources.result("bench_widget_browser_bertviz")


def _render(r: dict[str, Any] | None) -> str:
    if not r:
        return "-"
    if r.get("rendered"):
        return f"{r['render_ms'] / 1000:.1f} s"
    return str(r.get("error", "did not render"))


def widget_bertviz(sources: Sources) -> str:
    result = _bertviz_source(sources)
    body = []
    for r in result["rows"]:
        bv = r.get("bertviz")
        if not bv:
            continue
        cells = [f"{r['layers']}, {r['heads']}, {r['tokens']}"]
        for view in ("head_view", "model_view"):
            how = "" if bv[view]["html_bytes_how"] == "generated" else " (est.)"
            cells.append(size(bv[view]["html_bytes"]) + how)
        renders = {view: _render(bv[view].get("render")) for view in ("head_view", "model_view")}
        if renders["head_view"] == renders["model_view"]:
            cells.append(renders["head_view"])
        else:
            cells.append("; ".join(f"{view}: {text}" for view, text in renders.items()))
        body.append(cells)
    return "\n".join(
        [
            run_line(result, "python bench/bench_widget_browser.py --results"),
            "",
            f"BertViz on the same attention. {result.get('bertviz_note', '')}",
            "",
            table(
                ["L, H, T", "head_view HTML", "model_view HTML", "render in Chromium"],
                body,
                "lrrl",
            ),
        ]
    )


def scale(sources: Sources) -> str:
    """bench/bench_scale.py: one table per committed run (``runs``; older files: one run)."""
    result = sources.result("bench_scale")
    parts: list[str] = []
    for run in result.get("runs", [result]):
        cfg = run["config"]
        body = [
            [
                row["step"],
                f"{row['seconds']:.2f}",
                f"{row['over_plain_forward']:.2f}",
                f"{row['peak_above_weights_bytes'] / 2**30:.2f}",
            ]
            for row in run["rows"]
        ]
        command = (
            f"python bench/bench_scale.py --device {cfg['device']} --layers {cfg['layers']} "
            f"--tokens {cfg['tokens']} --results"
        )
        recomputes = run.get("explain_recomputes_layers")
        policy = (
            ""
            if recomputes is None
            else f" explain's saliency recomputes layers at this size: {recomputes}."
        )
        parts += [
            run_line(run, command),
            "",
            f"{cfg['layers']} layers, T={cfg['tokens']}, {cfg['dtype']} on {cfg['device']}; "
            f"weights {run['weight_bytes'] / 2**30:.2f} GiB; peak memory measured as "
            f"{run['peak_measure']}.{policy}",
            "",
            table(["step", "seconds", "x plain forward", "peak above weights, GiB"], body, "lrrr"),
            "",
        ]
    target = result.get("target_bytes")
    if target:
        parts.append(
            f"Target (32 layers, T=4096, bf16, CUDA): explain with gradient saliency adds "
            f"≤ {target / 1e9:.0f} GB."
        )
    return "\n".join(parts).rstrip("\n")


RENDERERS: dict[str, Callable[[Sources], str]] = {
    "trace": trace,
    "saliency": saliency,
    "probing": probing,
    "widget-sizes": widget_sizes,
    "widget-browser": widget_browser,
    "widget-bertviz": widget_bertviz,
    "scale": scale,
}
