"""Table of ``bench/results/bench_sae_training.json`` (docs/features_training.md, region
``sae-training``): what ``train_sae`` optimises per second."""

from __future__ import annotations

from collections.abc import Callable

from _tables_format import Sources, run_line, table

COMMAND = "python bench/bench_sae_training.py --results"


def sae_training(sources: Sources) -> str:
    result = sources.result("bench_sae_training")
    rows = [
        [
            r["case"],
            f"{r['hidden']}",
            f"{r['width']} (k {r['k']})",
            f"{r['site']}",
            f"{r['train_tokens']} / {r['steps']}",
            f"{r['optimise_tokens_per_s']:.1f}",
            f"{r['end_to_end_tokens_per_s']:.1f}",
            f"{r['held_out_fve']:.3f}",
        ]
        for r in result["rows"]
    ]
    return (
        "\n".join(
            [
                run_line(result, COMMAND),
                "",
                "Tokens per second of the optimisation steps alone, and of the whole call "
                "(activation collection, held-out scoring and the SAE's construction included). "
                "The 8B-width run is three steps: a cost figure only, its FVE says nothing.",
                "",
                table(
                    [
                        "case",
                        "hidden",
                        "SAE width",
                        "site",
                        "tokens / steps",
                        "optimise tokens/s",
                        "end-to-end tokens/s",
                        "held-out FVE",
                    ],
                    rows,
                    "lrrrrrrr",
                ),
            ]
        )
        + "\n"
    )


RENDERERS: dict[str, Callable[[Sources], str]] = {"sae-training": sae_training}
