"""``train_sae`` throughput: tokens per second of SAE optimisation and of the whole call.

One TopK SAE of width 16 x hidden (k = 32) per case, a short run, float32, on the CPU (or
``--device cuda``):

* ``bundled``: the bundled tiny-llama (hidden 64, width 1024), site 3 (``after L2``), every
  token of 1000 agreement sentences, 3 epochs of 256-token batches;
* ``8B width``: a random-init 4-layer LLaMA of Llama-3.1-8B's width (hidden 4096, 32 heads,
  8 kv heads, MLP 14336; 200-word vocabulary; built like bench_patching's), width 65536,
  site 2, every token of 20 texts of 64 words, one epoch of 512-token batches.

``optimise_tokens_per_s`` counts only the optimisation steps (``report.tokens_per_second``);
``end_to_end_tokens_per_s`` divides the training tokens by the whole call's wall time
(activation collection, held-out scoring and the SAE's construction included).

    python bench/bench_sae_training.py --results      # --quick: the bundled case only
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _results
from bench_patching import _random_model

from llmasos_widgets import load_model, train_sae
from llmasos_widgets.language import agreement_examples

NAME = "bench_sae_training"
K = 32
EXPANSION = 16


def _bundled_case() -> tuple[Any, int, list[str], int, int]:
    texts = [e.sentence for e in agreement_examples(1000, seed=1, split="train")]
    return load_model("tiny-llama", device="cpu"), 3, texts, 256, 3


def _wide_case() -> tuple[Any, int, list[str], int, int]:
    model = _random_model(4, 32, 8, 4096, 14336)
    rng = np.random.default_rng(0)
    texts = [" ".join(f"w{i}" for i in rng.integers(0, 200, size=64)) for _ in range(20)]
    return model, 2, texts, 512, 1


def measure(name: str, case: Any, device: str) -> dict[str, Any]:
    model, site, texts, batch_size, epochs = case()
    hidden = int(model.hf_model.config.hidden_size)
    if device != "cpu":
        model.hf_model.to(device)
    begin = time.perf_counter()
    report = train_sae(
        model, site, texts, width=EXPANSION * hidden, k=K, batch_size=batch_size,
        epochs=epochs, seed=0, activation_batch_size=8, device=device,
    )  # fmt: skip
    wall = time.perf_counter() - begin
    row = {
        "case": name,
        "hidden": hidden,
        "width": EXPANSION * hidden,
        "k": K,
        "site": site,
        "batch_tokens": batch_size,
        "epochs": epochs,
        "train_tokens": report.tokens,
        "steps": report.steps,
        "optimise_s": round(report.seconds, 3),
        "wall_s": round(wall, 3),
        "optimise_tokens_per_s": round(report.tokens_per_second, 1),
        "end_to_end_tokens_per_s": round(report.tokens / wall, 1),
        "held_out_fve": round(report.fve, 4),
        "l0": round(report.l0, 2),
        "dead_latents": report.dead_latents,
    }
    print(
        f"{name:>10} | hidden {hidden:>5} | width {row['width']:>6} | {report.tokens:>6} tokens "
        f"in {report.steps:>3} steps | optimise {row['optimise_tokens_per_s']:>9.1f} tok/s | "
        f"end to end {row['end_to_end_tokens_per_s']:>8.1f} tok/s | FVE {report.fve:.3f}",
        flush=True,
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the bundled case only")
    parser.add_argument("--device", default="cpu")
    _results.add_output_arguments(parser, NAME)
    args = parser.parse_args()
    environment = _results.environment()
    rows = [measure("bundled", _bundled_case, args.device)]
    if not args.quick:
        rows.append(measure("8B width", _wide_case, args.device))
    _results.write(
        NAME,
        environment=environment,
        config={"device": args.device, "dtype": "float32", "k": K, "expansion": EXPANSION},
        figures={"rows": rows},
        out=args.out,
        results=args.results and not args.quick,
    )


if __name__ == "__main__":
    main()
