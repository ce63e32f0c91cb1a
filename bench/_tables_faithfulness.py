"""Tables of ``bench/results/bench_faithfulness.json`` (docs/faithfulness.md): each saliency
method's faithfulness on held-out agreement prompts, and the cost of batching the curves."""

from __future__ import annotations

from collections.abc import Callable

from _tables_format import Sources, percent, run_line, table

COMMAND = "python bench/bench_faithfulness.py --results"


def faithfulness_methods(sources: Sources) -> str:
    result = sources.result("bench_faithfulness")
    cfg = result["config"]
    body = [
        [
            f"{r['prompts']} (seed {r['seed']})",
            f"`{r['method']}`",
            percent(r["subject_above_attractor"]),
            percent(r["subject_first"]),
            f"{r['mean_score']:.3f}",
            f"{r['median_score']:.3f}",
            f"{r['sd_score']:.2f}",
            f"{r['mean_comprehensiveness']:.3f}",
            f"{r['mean_sufficiency']:.3f}",
            "-" if r["method"] == "gradient" else percent(r["beats_gradient"], 0),
        ]
        for r in result["methods"]
    ]
    return "\n".join(
        [
            run_line(result, COMMAND),
            "",
            "Held-out agreement prompts, target `Contrast(correct_verb, wrong_verb)`, scores at "
            f"`emb`, `{cfg['baseline']}` baseline, {cfg['n_random']} random orders; integrated "
            f"gradients with {cfg['ig_steps']} steps, occlusion with its `zero` baseline for "
            "the map (the test always deletes with `pad`).",
            "",
            table(
                [
                    "prompts",
                    "method",
                    "subject > attractor",
                    "subject ranked first",
                    "mean score",
                    "median",
                    "sd",
                    "comprehensiveness",
                    "sufficiency",
                    "beats gradient",
                ],
                body,
                "llrrrrrrrr",
            ),
        ]
    )


def faithfulness_cost(sources: Sources) -> str:
    result = sources.result("bench_faithfulness")
    body = [
        [
            str(r["tokens"]),
            str(r["masked_inputs"]),
            f"{1000 * r['batched_s']:.0f}",
            f"{1000 * r['one_per_row_s']:.0f}",
            f"{r['time_ratio']:.2f}",
            f"{r['max_abs_difference']:.1e}",
        ]
        for r in result["cost"]
    ]
    return "\n".join(
        [
            f"One `faithfulness` call, batched (256 rows per forward, identical rows run once) "
            f"vs one forward per masked input, median of {result['config']['reps']} "
            "interleaved runs (`bench/results/bench_faithfulness.json`; the run and its load: "
            "the methods table below):",
            "",
            table(
                ["tokens", "masked inputs", "batched ms", "one per row ms", "ratio", "max diff"],
                body,
                "rrrrrr",
            ),
        ]
    )


RENDERERS: dict[str, Callable[[Sources], str]] = {
    "faithfulness-methods": faithfulness_methods,
    "faithfulness-cost": faithfulness_cost,
}
