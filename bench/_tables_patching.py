"""Tables of ``bench/results/bench_patching.json``: batched activation patching against the
naive loop (bench/RESULTS.md), and the known answers of ablation and patching on the bundled
model (docs/interventions.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from _tables_format import Sources, run_line, table

COMMAND = "python bench/bench_patching.py --results"


def patching(sources: Sources) -> str:
    result = sources.result("bench_patching")
    cfg = result["config"]
    body = [
        [
            r["case"],
            str(r["n_layers"]),
            str(r["n_heads"]),
            str(r["n_tokens"]),
            str(r["cells"]),
            str(r["batched_rows"]),
            str(r["batched_passes"]),
            str(r["naive_passes"]),
            f"{r['pass_ratio']:.3f}",
            f"{r['batched_s']:.2f}",
            f"{r['naive_s']:.2f}",
            f"{r['time_ratio']:.2f}",
            f"{r['max_abs_difference']:.1e}",
        ]
        for r in result["rows"]
    ]
    return "\n".join(
        [
            run_line(result, COMMAND),
            "",
            "Full residual `[site, position]` and head `[layer, head]` maps of one prompt pair "
            "(the target's logit difference after the last token), fp32 on "
            f"{cfg['device']}, median of {cfg['reps']} interleaved runs. Batched = "
            f"`activation_patching(..., batch_size={cfg['batch_size']})`: one patched run per "
            "batch row, cells whose clean and corrupted activations are equal not run (rows "
            "run); naive = one batch-1 forward per cell (`tests/_naive_patching.py`). Ratios "
            "are batched / naive; max abs diff compares the two maps' raw target values.",
            "",
            table(
                [
                    "case",
                    "layers",
                    "heads",
                    "T",
                    "cells",
                    "rows run",
                    "batched passes",
                    "naive passes",
                    "pass ratio",
                    "batched s",
                    "naive s",
                    "time ratio",
                    "max abs diff",
                ],
                body,
                "l" + "r" * 12,
            ),
        ]
    )


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def interventions_known(sources: Sources) -> str:
    result = sources.result("bench_patching")
    known: dict[str, Any] = result["known_answers"]
    heads = ", ".join(f"L{layer}H{head}" for layer, head in known["induction_heads"])
    by: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in known["ablation"]:
        by.setdefault((row["heads"], row["mode"]), []).append(row)
    ablation_rows = [
        [
            label,
            mode,
            ", ".join(_pct(r["before"]) for r in rows),
            ", ".join(_pct(r["after"]) for r in rows),
        ]
        for (label, mode), rows in by.items()
    ]
    seeds = ", ".join(str(r["seed"]) for r in next(iter(by.values())))
    single = known["single_head_copying"]
    single_rows = [[f"L{layer}", *(_pct(v) for v in values)] for layer, values in enumerate(single)]
    patching = known["patching"]
    patch_rows = [
        [site, _pct(s), _pct(a)]
        for site, s, a in zip(
            patching["sites"], patching["subject_flips"], patching["attractor_flips"], strict=True
        )
    ]
    return "\n".join(
        [
            run_line(result, COMMAND),
            "",
            f"**Ablation.** Induction heads (the 4 of highest induction score): {heads}. "
            "Copying accuracy (top-1 on the repeat, its first token excluded) on 100 held-out "
            f"copy sequences of 10 words per seed (seeds {seeds}); mean ablation uses 100 "
            "other sequences as the reference.",
            "",
            table(["heads ablated", "mode", "before", "after"], ablation_rows, "llrr"),
            "",
            "Copying accuracy with one head zero-ablated (seed 1):",
            "",
            table(
                ["layer", *(f"H{h}" for h in range(len(single[0])))],
                single_rows,
                "l" + "r" * len(single[0]),
            ),
            "",
            f"**Patching.** {patching['n_pairs']} held-out agreement twins (plural-subject "
            "prompt patched into its singular twin); share of pairs whose verb preference "
            "flips to the plural verb when one residual cell is patched:",
            "",
            table(["site", "subject position", "attractor position"], patch_rows, "lrr"),
        ]
    )


RENDERERS: dict[str, Callable[[Sources], str]] = {
    "patching": patching,
    "interventions-known": interventions_known,
}
