"""Tables of ``bench/bench_generation.py``: the batched generation saliency matrix against
N separate ``attribute()`` calls, and the copy known answer (``generation`` region of
bench/RESULTS.md and docs/generation.md)."""

from __future__ import annotations

from collections.abc import Callable

from _tables_format import Sources, met, percent, run_line, table

TEST_FILE = "tests/integration/test_generate.py"


def generation(sources: Sources) -> str:
    result = sources.result("bench_generation")
    cfg = result["config"]
    model = cfg["random_model"]
    ratio_max = result["target"]["ratio_max"]
    body = [
        [
            r["model"],
            str(r["n_tokens"]),
            str(r["n_generated"]),
            f"{r['batched_s']:.2f}",
            f"{r['separate_s']:.2f}",
            f"{r['ratio']:.3f}",
            f"{r['cpu_ratio']:.3f}",
            f"{r['max_abs_difference']:.1e}",
            met(r["ratio"] <= ratio_max),
        ]
        for r in result["rows"]
    ]
    induction = [
        [
            "emb" if row["site"] == 0 else f"after L{row['site'] - 1}",
            percent(row["rate"]),
            str(row["steps"]),
            f"{row['sequences']} ({percent(row['copied'], 0)} copied exactly)",
        ]
        for row in result["induction"]
    ]
    bound = sources.test_constant(TEST_FILE, "INDUCTION_PEAK_RATE")
    return "\n".join(
        [
            run_line(result, "python bench/bench_generation.py --results"),
            "",
            f"N = {cfg['n_generated']} generated tokens after a {cfg['prompt_tokens']}-token "
            f"random prompt (plus `<bos>`), `{cfg['method']}` at every residual site. "
            "batched = `attribute_generation` (what `generate()` runs: the sequence replicated "
            "in a batch, each row reading its own target, one forward + one backward); "
            "separate = one `attribute()` per generated token. Interleaved, median of "
            f"{cfg['repeats']}; ratio = batched / separate (wall time; CPU time beside it). "
            f"random-512: random-init LLaMA, {model['num_hidden_layers']} layers, hidden "
            f"{model['hidden_size']}, {model['num_attention_heads']} heads / "
            f"{model['num_key_value_heads']} kv heads, fp32. Target: ratio ≤ {ratio_max}.",
            "",
            table(
                [
                    "model",
                    "T",
                    "N",
                    "batched s",
                    "separate s",
                    "ratio",
                    "CPU-time ratio",
                    "max abs diff",
                    "target",
                ],
                body,
                "lrrrrrrrl",
            ),
            "",
            "Copy known answer on the bundled model: the second half of held-out copy "
            f"sequences ({cfg['copy_length']} words, split `{cfg['copy_split']}`, seed "
            f"{cfg['copy_seed']}; prompt = first half + first repeated word) is generated "
            "greedily, and each generated token's gradient saliency row peaks on the earlier "
            "copy of that token (the token after the earlier occurrence of the token it "
            f"follows) in this share of steps. The test asserts ≥ {percent(bound, 0)} at `emb` "
            f"(`{TEST_FILE}`).",
            "",
            table(["site", "peaks on the earlier copy", "steps", "sequences"], induction, "lrrl"),
        ]
    )


RENDERERS: dict[str, Callable[[Sources], str]] = {"generation": generation}
