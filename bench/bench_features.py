"""What recording SAE features adds to ``explain()``.

Per case, ``explain(model, text, saliency=False)`` with and without ``saes=[sae]`` (one TopK
SAE of width 16 x hidden at a middle residual site), interleaved in one process: the median
of ``--reps`` runs, and the median of each pair's ratio, of both the wall time and the
process's CPU time (the steadier measure on a shared machine; one torch thread by default,
``--threads``). Saliency is off so the denominator is the forward, the head summaries, the
induction pass and the lens (the default's occlusion saliency would hide the cost). During
``explain`` the capture keeps the site's residual rows; the first read of the record (a view,
the report, ``save``) encodes them, keeps the active latents (CSR) and computes the
reconstruction error from them, timed in the same interleaved runs as ``first_read_*_s``
(``overhead_with_first_read_*``: explain's overhead plus that read); reading the head on the
decoder directions of the latents that occur (logit effects) comes after, when first asked for,
timed apart as ``effects_*_s``.

The feature-examples pass (``feature_examples``: every latent's top-k contexts, histogram and
firing count over a corpus) is timed per case on ``--example-texts`` random texts of the case's
length (bundled: 400 x 64 tokens; 8B width: 16 x 64), reported as seconds per million tokens.

Cases: the bundled tiny-llama (hidden 64, 3 layers) at T = 64 and 128 (its context), and,
unless ``--small``, a random-init model of Llama-3.1-8B's width (hidden 4096, 32 heads, 8 kv
heads, MLP 14336) with 4 layers and a 200-word vocabulary at T = 64 (d_sae = 65536, k = 64).
Four layers is the worst case for the ratio: the SAE's encode costs a fixed ~16 hidden^2
multiply-adds per token against ~13 hidden^2 per layer, so a full 32-layer model pays about an
eighth of the 4-layer ratio.

    python bench/bench_features.py --results
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _results

from llmasos_widgets.features import SAEConfig, SparseAutoencoder

NAME = "bench_features"
TARGET_OVERHEAD = 0.10
WIDTH = 16


def _bundled() -> Any:
    from llmasos_widgets import load_model

    return load_model("tiny-llama", device="cpu")


def _wide() -> Any:
    from bench_patching import _random_model

    return _random_model(4, 32, 8, 4096, 14336)


def _text(model: Any, n_tokens: int, seed: int | None = None) -> str:
    rng = np.random.default_rng(n_tokens if seed is None else seed)
    if "tiny" in model.name:
        from llmasos_widgets.language import SPECIAL_TOKENS, VOCAB

        words = [w for w in VOCAB if w not in SPECIAL_TOKENS]
    else:
        words = [f"w{i}" for i in range(200)]
    # one token per word on both tokenizers; <bos> makes the last one
    return " ".join(str(w) for w in rng.choice(words, size=n_tokens - 1))


def _sae(hidden: int, site: int, k: int) -> SparseAutoencoder:
    torch.manual_seed(0)
    return SparseAutoencoder(SAEConfig(d_in=hidden, d_sae=WIDTH * hidden, site=site, k=k)).eval()


def _time(function: Any) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process): on a shared machine the CPU time is the
    steadier measure of the work done (waiting for a core is not work)."""
    wall, cpu = time.perf_counter(), time.process_time()
    function()
    return time.perf_counter() - wall, time.process_time() - cpu


def examples_pass(model: Any, sae: SparseAutoencoder, n_tokens: int, n_texts: int) -> float:
    """Seconds per million tokens of ``feature_examples`` over ``n_texts`` texts."""
    from llmasos_widgets.features import feature_examples

    texts = [_text(model, n_tokens, seed=1000 + i) for i in range(n_texts)]
    counted = sum(int(model.encode(text).shape[1]) for text in texts)
    start = time.process_time()
    feature_examples(model, sae, texts, k=10, progress=False)
    return (time.process_time() - start) / counted * 1e6


def measure(model: Any, n_tokens: int, k: int, reps: int, example_texts: int = 0) -> dict[str, Any]:
    from llmasos_widgets.explanation import explain

    hidden = int(model.config.hidden_size)
    site = (int(model.config.num_hidden_layers) + 1) // 2
    sae = _sae(hidden, site, k)
    text = _text(model, n_tokens)
    options = {"saliency": False, "progress": False}
    explained = explain(model, text, saes=[sae], **options)  # warm-up, and the facts
    assert explained.n_tokens == n_tokens, (explained.n_tokens, n_tokens)
    plain, with_sae, first_read, effects = [], [], [], []
    for _ in range(reps):  # interleaved: drift in the machine's load hits both alike
        plain.append(_time(lambda: explain(model, text, **options)))
        done: list[Any] = []
        with_sae.append(
            _time(lambda out=done: out.append(explain(model, text, saes=[sae], **options)))
        )
        assert done[0].feature().codes.pending  # explain did not encode
        # the encode, paid when a view, the report or save() first reads the record
        first_read.append(_time(lambda out=done: out[0].feature().latents))
        # then the logit effects of the latents that occur
        effects.append(_time(lambda out=done: out[0].feature().to_arrays()))
    record = explained.feature()
    figures: dict[str, Any] = {
        "tokens": n_tokens,
        "hidden": hidden,
        "layers": int(model.config.num_hidden_layers),
        "site": site,
        "d_sae": sae.d_sae,
        "k": k,
        "active_latents": len(record.effect_latents),
    }
    for index, clock in enumerate(("wall", "cpu")):
        base = statistics.median(run[index] for run in plain)
        features = statistics.median(run[index] for run in with_sae)
        figures[f"explain_{clock}_s"] = round(base, 4)
        figures[f"explain_with_sae_{clock}_s"] = round(features, 4)
        figures[f"overhead_{clock}"] = round(features / base - 1, 4)
        # each with-SAE run against the run just before it: robust to the load drifting
        paired = [b[index] / a[index] - 1 for a, b in zip(plain, with_sae, strict=True)]
        figures[f"overhead_{clock}_paired_median"] = round(statistics.median(paired), 4)
        figures[f"explain_{clock}_s_all"] = [round(run[index], 4) for run in plain]
        figures[f"explain_with_sae_{clock}_s_all"] = [round(run[index], 4) for run in with_sae]
        read = statistics.median(run[index] for run in first_read)
        figures[f"first_read_{clock}_s"] = round(read, 4)
        figures[f"first_read_{clock}_s_all"] = [round(run[index], 4) for run in first_read]
        figures[f"overhead_with_first_read_{clock}"] = round((features + read) / base - 1, 4)
        paired = [
            (b[index] + r[index]) / a[index] - 1
            for a, b, r in zip(plain, with_sae, first_read, strict=True)
        ]
        figures[f"overhead_with_first_read_{clock}_paired_median"] = round(
            statistics.median(paired), 4
        )
        figures[f"effects_{clock}_s"] = round(statistics.median(run[index] for run in effects), 4)
    if example_texts:
        figures["examples_cpu_s_per_million_tokens"] = round(
            examples_pass(model, sae, n_tokens, example_texts), 1
        )
        figures["examples_texts"] = example_texts
    return figures


def _report(case: dict[str, Any]) -> None:
    print(
        f"{case['case']}: explain overhead {case['overhead_cpu']:+.1%} CPU time "
        f"(paired runs: {case['overhead_cpu_paired_median']:+.1%}), "
        f"{case['overhead_wall']:+.1%} wall ({case['explain_cpu_s']:.3f} s CPU without); "
        f"first read {case['first_read_cpu_s']:.3f} s CPU, with explain's overhead "
        f"{case['overhead_with_first_read_cpu']:+.1%}; "
        f"reading the logit effects later: {case['effects_cpu_s']:.3f} s CPU"
        + (
            f"; feature examples {case['examples_cpu_s_per_million_tokens']:.0f} s CPU per 1M "
            "tokens"
            if "examples_cpu_s_per_million_tokens" in case
            else ""
        ),
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=25, help="runs per tiny-llama case")
    parser.add_argument("--small", action="store_true", help="the bundled model only")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    _results.add_output_arguments(parser, NAME)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    environment = _results.environment()
    cases = []
    bundled = _bundled()
    for n_tokens in (64, 128):
        texts = 400 if n_tokens == 64 else 0
        figures = measure(bundled, n_tokens, 32, args.reps, texts)
        case = {"case": f"tiny-llama, T = {n_tokens}", **figures}
        _report(case)
        cases.append(case)
    if not args.small:
        wide = _wide()
        case = {
            "case": "Llama-3.1-8B width, 4 layers, T = 64",
            **measure(wide, 64, 64, max(3, args.reps // 8), 16),
        }
        _report(case)
        cases.append(case)
    _results.write(
        NAME,
        environment=environment,
        config={"width": WIDTH, "reps": args.reps, "target_overhead": TARGET_OVERHEAD},
        figures={"cases": cases},
        out=args.out,
        results=args.results,
    )


if __name__ == "__main__":
    main()
