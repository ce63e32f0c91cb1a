"""Table of ``bench/results/bench_attribution_patching.json`` (docs/interventions.md, region
``attribution-patching``): what attribution patching costs and how close it is to exact
patching."""

from __future__ import annotations

from collections.abc import Callable

from _tables_format import Sources, met, run_line, table

COMMAND = "python bench/bench_attribution_patching.py --results"


def attribution_patching(sources: Sources) -> str:
    result = sources.result("bench_attribution_patching")
    rows = [
        [
            r["case"],
            f"{r['hidden']}",
            f"{r['tokens']}",
            f"{r['forward_s']:.3f}",
            f"{r['atp_s']:.3f} ({r['atp_forward_equivalents']:.1f})",
            f"{r['exact_s']:.2f} ({r['exact_forward_equivalents']:.0f})",
            f"{r['head_spearman']:.3f}",
            f"{r['top10_overlap']} / 10",
        ]
        for r in result["rows"]
    ]
    lines = [
        run_line(result, COMMAND),
        "",
        "One prompt pair per case (one token changed in the middle), random-init LLaMA-shaped "
        f"models, fp32 on the CPU, median of {result['config']['reps']} interleaved runs. "
        "*Forward* is one no-grad forward of the pair; AtP and exact patching compute both "
        "maps; in parentheses, forward-pass equivalents (time / forward). Agreement over the "
        "head cells: Spearman's correlation, and how many of exact patching's top-10 heads "
        "the estimate puts in its top 10.",
        "",
        table(
            [
                "case",
                "hidden",
                "T",
                "forward s",
                "AtP s (fwd)",
                "exact s (fwd)",
                "heads ρ",
                "top 10",
            ],
            rows,
            "lrrrrrrr",
        ),
        "",
        f"- Head map at T = 64 on 4 layers x 32 heads in ≤ "
        f"{result['target_forward_equivalents']:.0f} forward-pass equivalents: "
        f"{met(result['target_met'])}.",
    ]
    memory = result["rows"][-1].get("peak_rss_mb")
    if memory:
        lines.append(
            f"- Peak resident memory at {result['rows'][-1]['case']} (the process, model "
            f"included; the model alone {memory['forward']['model_mb']:.0f} MB): forward "
            f"{memory['forward']['peak_mb']:.0f} MB, AtP {memory['atp']['peak_mb']:.0f} MB, "
            f"exact patching {memory['exact']['peak_mb']:.0f} MB."
        )
    return "\n".join(lines) + "\n"


def atp_star(sources: Sources) -> str:
    """AtP against AtP* (the QK fix, GradDrop) on the same cases."""
    result = sources.result("bench_attribution_patching")
    rows = [
        [
            r["case"],
            f"{r['key_cells']}",
            f"{r['atp_keys_spearman']:.3f} / {r['qk_fix_keys_spearman']:.3f}",
            f"{r['atp_keys_top10']} / {r['qk_fix_keys_top10']}",
            f"{r['atp_keys_forward_equivalents']:.1f} / {r['qk_fix_keys_forward_equivalents']:.1f}",
            f"{r['exact_keys_forward_equivalents']:.1f}",
            f"{r['atp_heads_top10']} / {r['grad_drop_heads_top10']}",
            f"{r['grad_drop_forward_equivalents']:.1f}",
        ]
        for r in result["star"]
    ]
    return (
        "\n".join(
            [
                run_line(result, COMMAND),
                "",
                "The same pairs and forward as the table above. Keys: the key-head map "
                '(`head_node="k"`, one cell per key/value head) by AtP and by AtP with the QK '
                "fix, against exact patching of the keys. GradDrop: how many of exact "
                "patching's top-10 head outputs AtP's |estimate| and GradDrop's score each "
                "put in their top 10. Costs in forward-pass equivalents.",
                "",
                table(
                    [
                        "case",
                        "key cells",
                        "keys ρ AtP / QK fix",
                        "top 10 AtP / QK fix",
                        "fwd AtP / QK fix",
                        "fwd exact keys",
                        "heads top 10 AtP / GradDrop",
                        "fwd GradDrop",
                    ],
                    rows,
                    "lrrrrrrr",
                ),
            ]
        )
        + "\n"
    )


def methods(sources: Sources) -> str:
    """Which causal method when: cost and agreement, from the committed benches."""
    patching = sources.result("bench_patching")
    atp = sources.result("bench_attribution_patching")
    widest = max(patching["rows"], key=lambda r: r["naive_passes"])
    small, wide = atp["rows"][0], atp["rows"][-1]
    star_small, star_wide = atp["star"][0], atp["star"][-1]
    rows = [
        [
            "`activation_patching`",
            "the total effect of each residual cell and head (exact)",
            f"{widest['batched_passes']} batched passes for {widest['naive_passes']} cells "
            f"({widest['n_layers']} layers x {widest['n_heads']} heads, T = "
            f"{widest['n_tokens']}); {small['exact_forward_equivalents']:.0f} forward-pass "
            f"equivalents at {small['layers']} x {small['heads']} heads, T = {small['tokens']}",
            "the reference",
        ],
        [
            "`attribution_patching`",
            "the same maps, first-order estimate; confirm the top cells with `.verify(k)`",
            f"{small['atp_forward_equivalents']:.1f} forward-pass equivalents at "
            f"{small['layers']} x {small['heads']} heads, {wide['atp_forward_equivalents']:.1f} "
            "at Llama-3.1-8B width",
            f"heads Spearman {small['head_spearman']:.3f} / {wide['head_spearman']:.3f} "
            "(random models); too small where attention saturates",
        ],
        [
            '`attribution_patching(..., head_node="k", qk_fix=True)`',
            "AtP* for queries and keys: each head's softmax recomputed exactly",
            f"{star_small['qk_fix_keys_forward_equivalents']:.1f} / "
            f"{star_wide['qk_fix_keys_forward_equivalents']:.1f} forward-pass equivalents",
            f"keys Spearman {star_small['qk_fix_keys_spearman']:.3f} / "
            f"{star_wide['qk_fix_keys_spearman']:.3f} (AtP {star_small['atp_keys_spearman']:.3f} "
            f"/ {star_wide['atp_keys_spearman']:.3f})",
        ],
        [
            "`attribution_patching(..., grad_drop=True)`",
            "GradDrop's unsigned score, against cancellation; `verify` ranks by it",
            f"{star_small['grad_drop_forward_equivalents']:.1f} / "
            f"{star_wide['grad_drop_forward_equivalents']:.1f} forward-pass equivalents "
            "(one backward pass per layer more)",
            f"heads top 10: {star_small['grad_drop_heads_top10']} / "
            f"{star_wide['grad_drop_heads_top10']} (AtP {star_small['atp_heads_top10']} / "
            f"{star_wide['atp_heads_top10']})",
        ],
        [
            "`path_patching`",
            "one sender -> receiver path (q, k, v or logits)",
            "4 forward passes per path",
            "exact for the path it defines",
        ],
        [
            "`logit_attribution`",
            "each head's and MLP's direct share of a logit (norm scale frozen)",
            "1 forward pass",
            "adds up to the logit to float rounding",
        ],
    ]
    return (
        "\n".join(
            [
                "Costs and agreements from `bench/results/bench_patching.json` and "
                "`bench/results/bench_attribution_patching.json` (their runs: bench/RESULTS.md and "
                "the cost table above).",
                "",
                table(["method", "answers", "cost", "agreement with exact patching"], rows, "llll"),
            ]
        )
        + "\n"
    )


RENDERERS: dict[str, Callable[[Sources], str]] = {
    "attribution-patching": attribution_patching,
    "attribution-patching-star": atp_star,
    "interventions-methods": methods,
}
