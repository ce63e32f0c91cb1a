"""Tables of ``bench/results/bench_defaults.json`` (docs/saliency.md, bench/RESULTS.md): each
saliency method on factual prompts of a real checkpoint, and what a call costs."""

from __future__ import annotations

from collections.abc import Callable

from _tables_format import Sources, load_sentence, percent, run_line, table

COMMAND = "python bench/bench_defaults.py --results"
NAME = "bench_defaults"


def defaults_methods(sources: Sources) -> str:
    result = sources.result(NAME)
    cfg = result["config"]
    body = [
        [
            f"`{r['method']}`",
            str(r["prompts"]),
            percent(r["subject_first"]),
            percent(r["subject_top2"]),
            percent(r["subject_first_excluding_0"]),
            percent(r["subject_top2_excluding_0"]),
            percent(r["position_0_first"]),
            f"{r['mean_faithfulness']:.3f}",
            f"{r['median_seconds']:.1f}",
        ]
        for r in result["methods"]
    ]
    return "\n".join(
        [
            run_line(result, COMMAND),
            "",
            f"{cfg['model']}: {cfg['prompts_kept']} of the {cfg['prompts_written']} prompts of "
            "`bench/factual_prompts.py` answered correctly (greedy top-1 = the answer's first "
            "token) were kept; target: log p(answer's first token), scores at `emb`, each "
            "method with its defaults (integrated gradients on every "
            f"{cfg['ig_every']}th kept prompt: about a minute a call on this machine). "
            '"Without position 0": the same ranking with the first token (the attention '
            "sink; this tokenizer adds no `<bos>`) left out; no subject is the first token. "
            "Faithfulness: `lw.faithfulness` defaults (`pad` deletion, 16 random orders).",
            "",
            table(
                [
                    "method",
                    "prompts",
                    "subject ranked first",
                    "subject in top 2",
                    "first, without position 0",
                    "top 2, without position 0",
                    "position 0 ranked first",
                    "mean faithfulness",
                    "s per call (median)",
                ],
                body,
                "lrrrrrrrr",
            ),
        ]
    )


def defaults_cost(sources: Sources) -> str:
    result = sources.result(NAME)
    cfg = result["config"]
    body = []
    for r in result["cost"]:
        scaled = r["all_sites_measured_on"]
        note = f" (scaled from sites {scaled})" if scaled else ""
        body.append(
            [
                f"`{r['method']}`",
                f"{r['embeddings_s']:.1f}",
                str(r["embeddings_passes"]),
                f"{r['all_sites_s']:.0f}{note}",
                str(r["all_sites_passes"]),
                f"{r['all_sites_s'] / r['embeddings_s']:.0f}×",
            ]
        )
    tokens, sites = result["cost"][0]["tokens"], result["cost"][0]["sites"]
    load = load_sentence(cfg["cost_environment"]).rstrip(".")
    return "\n".join(
        [
            f"One call on a {tokens}-token prompt (`{cfg['cost_text']}`), at `emb` and at all "
            f"{sites} residual sites, one run each, by a second process of the same run "
            f"(same machine, 1 torch thread; {load}); "
            "passes = calls of the model's forward (a batched forward, plus its backward where "
            "the method takes gradients):",
            "",
            table(
                ["method", "emb s", "emb passes", "all sites s", "all sites passes", "ratio"],
                body,
                "lrrrrr",
            ),
        ]
    )


RENDERERS: dict[str, Callable[[Sources], str]] = {
    "defaults-methods": defaults_methods,
    "defaults-cost": defaults_cost,
}
