"""Tables of ``bench/results/bench_sae_training.json`` (docs/features_training.md, region
``sae-training``): what ``train_sae`` optimises per second; and of
``bench/results/bench_sae_resampling.json`` (region ``sae-resampling``): dead latents and FVE
with and without resampling."""

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


RESAMPLING_COMMAND = "python bench/bench_sae_resampling.py --results"


def sae_resampling(sources: Sources) -> str:
    result = sources.result("bench_sae_resampling")
    rows = []
    for r in result["rows"]:
        every = r["resample_every"]
        how = "off" if every is None else f"{every} (encoder {r['resampled_encoder_norm']:g})"
        rows.append(
            [
                f"{r['case']} ({r['steps']} steps)",
                how,
                f"{r['dead_latents']} / {r['width']}",
                f"{r['held_out_dead']}",
                f"{r['held_out_fve']:.4f}",
            ]
        )
    return (
        "\n".join(
            [
                run_line(result, RESAMPLING_COMMAND),
                "",
                "Same seed and data in each row. Dead: silent over the last `dead_window` "
                "training tokens. Never fire: never active on any held-out token of "
                "train_sae's own split. Encoder: the resampled encoder column's norm as a "
                "fraction of the live columns' mean (Anthropic's 0.2 is what `train_sae` "
                "uses; 1 is shown for comparison).",
                "",
                table(
                    ["case", "resample every", "dead", "never fire (held out)", "held-out FVE"],
                    rows,
                    "lrrrr",
                ),
            ]
        )
        + "\n"
    )


RENDERERS: dict[str, Callable[[Sources], str]] = {
    "sae-training": sae_training,
    "sae-resampling": sae_resampling,
}
