"""Table of ``bench/bench_features.py``: what recording one SAE's features adds to
``explain()`` (``features`` region of docs/features_views.md)."""

from __future__ import annotations

from collections.abc import Callable

from _tables_format import Sources, met, percent, run_line, table


def _ms(seconds: float) -> str:
    return f"{1000 * seconds:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _signed(fraction: float) -> str:
    return f"{'+' if fraction >= 0 else '−'}{percent(abs(fraction))}"


def features(sources: Sources) -> str:
    result = sources.result("bench_features")
    cfg = result["config"]
    target = cfg["target_overhead"]
    rows = []
    for case in result["cases"]:
        rows.append(
            [
                case["case"],
                f"{case['hidden']} x {case['layers']}",
                f"{case['d_sae']} (k {case['k']})",
                _ms(case["explain_cpu_s"]),
                _signed(case["overhead_cpu"]),
                _signed(case["overhead_cpu_paired_median"]),
                _signed(case["overhead_wall"]),
                _ms(case["first_read_cpu_s"]),
                _signed(case["overhead_with_first_read_cpu"]),
                _signed(case["overhead_with_first_read_cpu_paired_median"]),
                _ms(case["effects_cpu_s"]),
                f"{case['examples_cpu_s_per_million_tokens']:.0f} s"
                if "examples_cpu_s_per_million_tokens" in case
                else "—",
                met(case["overhead_cpu"] <= target),
                met(case["overhead_with_first_read_cpu"] <= target),
            ]
        )
    return "\n".join(
        [
            run_line(result, "python bench/bench_features.py --results"),
            "",
            f"`explain(model, text, saliency=False)` with and without one TopK SAE of width "
            f"{cfg['width']} x hidden at a middle residual site, interleaved on one torch "
            f"thread: median CPU time of {cfg['reps']} runs per tiny-llama case, and the median "
            "of each with/without pair's ratio; the wall-time overhead beside it. `explain` "
            "keeps the site's rows; the first read of the record (a view, the report, `save`) "
            "encodes them, timed in the same interleaved runs, and the overhead of explain "
            "plus that read is given as well (median CPU times, and the median of each run's "
            "ratio). Logit effects are read after that, when first asked for, timed apart. "
            "Feature examples: CPU seconds per million tokens of `feature_examples` (top 10 "
            "contexts per latent) over random texts of the case's length. "
            f"Target, on both models: ≤ {percent(target, 0)}.",
            "",
            table(
                [
                    "case",
                    "hidden x layers",
                    "d_sae",
                    "explain (CPU)",
                    "+ features in explain",
                    "paired",
                    "wall",
                    "first read",
                    "explain + first read",
                    "paired",
                    "logit effects later",
                    "examples per 1M tokens",
                    "target in explain",
                    "target with first read",
                ],
                rows,
                "llrrrrrrrrrrll",
            ),
        ]
    )


RENDERERS: dict[str, Callable[[Sources], str]] = {"features": features}
