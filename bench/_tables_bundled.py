"""Renderers of the bundled model's figures (README.md, docs/) for bench/tables.py.

Sources: the model's ``eval.json`` (written by scripts/train_tiny_llama.py),
``bench/results/bench_bundled.json`` (bench/bench_bundled.py) and the bounds the tests assert,
read from the test files' constants.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from _tables_format import Sources, number, percent, site_label, table

BUNDLED_MODEL = "tests/integration/test_bundled_model.py"
SALIENCY = "tests/integration/test_saliency_bundled.py"
PROBING = "tests/integration/test_probing_bundled.py"
HALF = "tests/integration/test_bf16.py"


def known_answers(sources: Sources) -> str:
    """README's table: what each known-answer test asserts, and what was measured."""
    report = sources.eval_report()
    bundled = sources.result("bench_bundled")
    const = sources.test_constant
    agree_n = const(BUNDLED_MODEL, "AGREEMENT_PROMPTS")
    copy_n = const(BUNDLED_MODEL, "COPY_SEQUENCES")
    copy_lengths = ", ".join(str(n) for n in const(BUNDLED_MODEL, "COPY_LENGTHS"))
    lengths = list(report["copy_accuracy_by_length"])
    heads_above = report["induction_heads_above_half"]
    salient = bundled["saliency_default_large"]
    subject = bundled["probing"]["subject_number"]
    best = max(range(len(subject["sites"])), key=lambda i: subject["test_accuracy"][i])
    noise = bundled["probing"]["random_labels"]["test_accuracy"]
    rows = [
        [
            "agreement: P(correct verb) > P(wrong verb) across a distracting phrase",
            f"≥ {percent(const(BUNDLED_MODEL, 'AGREEMENT_MIN'), 0)} of {agree_n} fresh held-out "
            "prompts",
            f"{percent(report['agreement_accuracy'])} of {report['agreement_examples']} "
            "held-out prompts (eval.json)",
        ],
        [
            "copying: top-1 correct on the second half of a repeated random sequence",
            f"≥ {percent(const(BUNDLED_MODEL, 'COPYING_MIN'), 0)} over {copy_n} fresh "
            f"sequences each of lengths {copy_lengths}",
            f"{percent(report['copy_accuracy'], 2)} over {report['copy_examples_per_length']} "
            f"per length {lengths[0]}–{lengths[-1]} (eval.json)",
        ],
        [
            "every head's reconstructed pattern vs Hugging Face eager attention (LLaMA GQA/MHA, "
            "Mistral, Qwen2, Gemma 2, left padding)",
            "max abs diff ≤ 1e-5 (fp32)",
            "within the bound (no figure recorded)",
        ],
        [
            "induction score ranks the model's induction heads first",
            'the heads the model card lists (score > 0.5) are `top_heads("induction")`\'s '
            "first, the next one scores < 0.5",
            f"{len(heads_above)} heads above 0.5, all in "
            f"{', '.join(sorted({f'L{layer}' for layer, _ in heads_above}))} (eval.json)",
        ],
        [
            f"saliency (default `{salient['method']}`, contrast correct − wrong verb): subject "
            "noun beats the attractor",
            f"≥ {percent(const(SALIENCY, 'SUBJECT_MAJORITY'), 0)} of "
            f"{const(SALIENCY, 'FAST_SET')} held-out prompts ({const(SALIENCY, 'SLOW_SET')} in "
            "the slow set)",
            f"{percent(salient['subject_above_attractor'])} of {salient['prompts']} "
            "(bench_bundled.json)",
        ],
        [
            "our attributions vs Captum (`Saliency`, `InputXGradient`, `LayerIntegratedGradients`)",
            "rtol 1e-3",
            "within the bound (no figure recorded)",
        ],
        [
            "probe for subject number at the last prompt token",
            f"best site is the last one ({site_label(subject['sites'][-1])}); there test "
            f"accuracy ≥ {const(PROBING, 'BEST_TEST_ACCURACY_MIN')} and selectivity ≥ "
            f"{const(PROBING, 'BEST_SELECTIVITY_MIN')} "
            f"({const(PROBING, 'SUBJECT_NUMBER_PROMPTS')} prompts)",
            f"best {site_label(subject['sites'][best])}: test accuracy "
            f"{subject['test_accuracy'][best]:.3f}, selectivity "
            f"{subject['selectivity'][best]:.3f} (bench_bundled.json)",
        ],
        [
            "probe on random labels",
            "held-out accuracy within 3σ of chance (site "
            f"{site_label(const(PROBING, 'RANDOM_LABELS_SITE'))})",
            f"{min(noise):.3f}–{max(noise):.3f} at every site (bench_bundled.json)",
        ],
    ]
    return table(["what", "the test asserts", "measured"], rows)


def saliency_methods(sources: Sources) -> str:
    data = sources.result("bench_bundled")
    by_method = data["saliency_by_method"]
    large = data["saliency_default_large"]
    rows = [
        [
            _method_label(r["options"])
            + (" (the default)" if r["method"] == large["method"] else ""),
            percent(r["subject_above_attractor"]),
            percent(r["subject_above_attractor_abs"]),
        ]
        for r in by_method["rows"]
    ]
    return "\n".join(
        [
            f"Measured on {by_method['prompts']} held-out prompts (seed {by_method['seed']}), "
            f"{by_method['n_steps']} steps where the method integrates "
            "(`bench/results/bench_bundled.json`):",
            "",
            table(
                ["method (baseline, rule)", "subject > attractor (signed)", "by \\|score\\|"], rows
            ),
            "",
            f"On the {large['prompts']}-prompt slow set (seed {large['seed']}) the default "
            f"`{large['method']}` scores {percent(large['subject_above_attractor'])}.",
        ]
    )


def _method_label(options: dict[str, Any]) -> str:
    extra = [options[k] for k in ("baseline", "integration") if k in options]
    return f"`{options['method']}`" + (f" ({', '.join(f'`{x}`' for x in extra)})" if extra else "")


def ig_completeness(sources: Sources) -> str:
    data = sources.result("bench_bundled")["ig_completeness"]
    sites = data["rows"][0]["sites"]
    rows = []
    for r in data["rows"]:
        cells = [f"`{r['baseline']}`, `{r['integration']}`"]
        for i in range(len(sites)):
            cells.append(
                " / ".join(
                    number(r[key][i])
                    for key in ("relative_delta_median", "relative_delta_p90", "relative_delta_max")
                )
            )
        cells.append(
            f"{percent(r['subject_above_attractor'])} / {percent(r['subject_above_attractor_abs'])}"
        )
        rows.append(cells)
    return "\n".join(
        [
            f"Relative |delta| / |f(x) − f(b)|, median / 90th percentile / max over "
            f"{data['prompts']} held-out prompts (seed {data['seed']}), contrast target, "
            f"{data['n_steps']} steps, per residual site; last column: subject > attractor at "
            "`emb` (signed / by \\|score\\|). From `bench/results/bench_bundled.json`.",
            "",
            table(
                [
                    "baseline, rule",
                    *(site_label(s) for s in sites),
                    "subject > attractor",
                ],
                rows,
            ),
        ]
    )


def _probe_rows(p: dict[str, Any]) -> list[list[str]]:
    rows = []
    for i, site in enumerate(p["sites"]):
        control = p["control_accuracy"]
        selectivity = p["selectivity"]
        rows.append(
            [
                site_label(site),
                f"{p['train_accuracy'][i]:.3f}",
                f"{p['test_accuracy'][i]:.3f}",
                "-" if control is None else f"{control[i]:.3f}",
                "-" if selectivity is None else f"{selectivity[i]:.3f}",
                f"{p['majority_baseline']:.2f}",
            ]
        )
    return rows


def probing_bundled(sources: Sources) -> str:
    data = sources.result("bench_bundled")["probing"]
    subject, pos = data["subject_number"], data["part_of_speech"]
    header = ["site", "train", "test", "control", "selectivity", "majority"]
    split = data["split_seeds"]
    split_text = " / ".join(f"{r['selectivity'][0]:.2f}" for r in split["rows"])
    split_seeds = "/".join(str(r["seed"]) for r in split["rows"])
    sweep = data["l2_sweep"]
    noise = data["random_labels"]
    return "\n".join(
        [
            f"**Subject number at the last prompt token** "
            f"(`subject_number_dataset({subject['texts']}, seed={data['seed']})`: "
            f"{subject['n_train']} train / {subject['n_test']} test rows):",
            "",
            table(header, _probe_rows(subject), "lrrrrr"),
            "",
            f"Selectivity {site_label(split['rows'][0]['sites'][0])} over split seeds "
            f"{split_seeds} ({split['texts']} prompts): {split_text}.",
            "",
            f"**Regularization** ({sweep['texts']} prompts, "
            f"{site_label(sweep['rows'][0]['sites'][0])}):",
            "",
            table(
                ["`l2`", *(f"{r['l2']:g}" for r in sweep["rows"])],
                [
                    ["test accuracy", *(f"{r['test_accuracy'][0]:.2f}" for r in sweep["rows"])],
                    [
                        "control accuracy",
                        *(f"{r['control_accuracy'][0]:.2f}" for r in sweep["rows"]),
                    ],
                    ["selectivity", *(f"{r['selectivity'][0]:.2f}" for r in sweep["rows"])],
                ],
                "l" + "r" * len(sweep["rows"]),
            ),
            "",
            f"**Random labels** on the same {noise['texts']} activations "
            f"({noise['n_test']} test rows): held-out accuracy "
            + ", ".join(
                f"{site_label(s)} {a:.3f}"
                for s, a in zip(noise["sites"], noise["test_accuracy"], strict=True)
            )
            + f"; the 3σ binomial band is 0.5 ± {3 * (0.25 / noise['n_test']) ** 0.5:.3f}.",
            "",
            f"**Part of speech** (`part_of_speech_dataset({pos['sentences']}, "
            f"seed={data['seed']})`: {pos['n_train']} train / {pos['n_test']} test words):",
            "",
            table(header, _probe_rows(pos), "lrrrrr"),
        ]
    )


def _eager_bounds(sources: Sources) -> dict[tuple[str, float], float]:
    """EAGER_BOUND of test_bf16.py, ``{(torch.bfloat16, init): bound}``, without torch."""
    import ast

    tree = ast.parse((sources.root / HALF).read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "EAGER_BOUND":
            assert isinstance(node.value, ast.Dict)
            bounds = {}
            for key, value in zip(node.value.keys, node.value.values, strict=True):
                assert isinstance(key, ast.Tuple)
                dtype = key.elts[0]
                assert isinstance(dtype, ast.Attribute)
                name = {"bfloat16": "bf16", "float16": "fp16"}[dtype.attr]
                bounds[name, ast.literal_eval(key.elts[1])] = ast.literal_eval(value)
            return bounds
    raise SystemExit(f"{HALF} has no EAGER_BOUND; the half-precision table quotes it")


def half_precision(sources: Sources) -> str:
    data = sources.result("bench_bundled")["half_precision"]
    const = sources.test_constant
    ig, scores = data["ig_relative_delta"], data["score_difference"]
    wins, diff = data["subject_above_attractor"], data["explain_difference"]
    tolerance = const(HALF, "RELATIVE_SCORE_TOLERANCE")
    methods = list(scores)

    def median(xs: list[float]) -> float:
        ordered = sorted(xs)
        mid = len(ordered) // 2
        return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2

    rows = [
        [
            f"IG relative delta at `emb` (`{ig['baseline']}`, default rule, {ig['n_steps']} "
            f"steps, {ig['prompts']} prompts)",
            f"median {number(median(ig['bf16']))}, max {number(max(ig['bf16']))} (float32: "
            f"{number(median(ig['float32']))}, {number(max(ig['float32']))})",
            f"median {const(HALF, 'BF16_MEDIAN_RELATIVE_DELTA')}, max "
            f"{const(HALF, 'BF16_MAX_RELATIVE_DELTA')}",
        ],
        [
            "scores, max \\|Δ\\| / max \\|float32\\| ("
            + ", ".join(f"{m}: {scores[m]['prompts']} prompts" for m in methods)
            + ")",
            ", ".join(f"{m} {number(scores[m]['max_relative'])}" for m in methods),
            ", ".join(f"{m} {tolerance[m]}" for m in methods),
        ],
        [
            f"subject > attractor, `gradient` ({wins['prompts']} prompts, seed {wins['seed']})",
            f"{percent(wins['bf16'])} (float32: {percent(wins['float32'])})",
            "≥ 90%",
        ],
        [
            f"head summaries / patterns / top-k probs / logit-lens probs ({diff['sentences']} "
            "sentences), max \\|Δ\\|",
            " / ".join(
                number(diff[k]) for k in ("summaries", "patterns", "top_probs", "lens_probs")
            ),
            " / ".join(
                str(const(HALF, k))
                for k in (
                    "SUMMARY_TOLERANCE",
                    "PATTERN_TOLERANCE",
                    "PROBABILITY_TOLERANCE",
                    "LENS_TOLERANCE",
                )
            ),
        ],
    ]
    eager = data["eager_pattern_difference"]
    bounds = _eager_bounds(sources)
    eager_rows = [
        [
            r["dtype"],
            f"{r['initializer_range']}",
            number(r["max_abs"]),
            f"{bounds[r['dtype'], r['initializer_range']]:g}",
        ]
        for r in eager["rows"]
    ]
    return "\n".join(
        [
            'The bundled model loaded with `dtype="bfloat16"` on the CPU against float32 '
            "(measured: `bench/results/bench_bundled.json`; bounds: "
            "`tests/integration/test_bf16.py`):",
            "",
            table(["quantity", "bf16 vs float32, measured max", "test bound"], rows),
            "",
            "Patterns rebuilt from half-precision q/k against eager attention in the same dtype "
            "(random LLaMA, hidden 128, 4 heads / 2 kv heads, seeds "
            f"{', '.join(str(x) for x in eager['seeds'])}, T = "
            f"{' and '.join(str(x) for x in eager['tokens'])}), max \\|ours − eager\\|:",
            "",
            table(["dtype", "`initializer_range`", "measured max", "test bound"], eager_rows),
        ]
    )


RENDERERS: dict[str, Callable[[Sources], str]] = {
    "half-precision": half_precision,
    "known-answers": known_answers,
    "saliency-methods": saliency_methods,
    "ig-completeness": ig_completeness,
    "probing-bundled": probing_bundled,
}
