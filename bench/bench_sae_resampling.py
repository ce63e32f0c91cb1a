"""Dead-latent resampling in ``train_sae``: dead latents and held-out FVE with and without.

Two cases on the bundled tiny-llama, CPU, one thread, each trained without resampling and
with ``resample_every`` 10 and 25 steps (same seed, same data), and once at 25 steps with the
resampled encoder at the live latents' full mean norm instead of Anthropic's 0.2 of it:

* ``number``: the known-answer SAE of tests/_sae_known.py (site 3, the last token of 2000
  agreement prompts, width 256, k 8, 10 epochs of 256-token batches: 80 steps);
* ``every token``: site 1, every token of 1000 agreement sentences, width 256, k 4, 3 epochs
  of 256-token batches.

Dead latents are counted two ways: ``report.dead_latents`` (silent over the last
``dead_window`` training tokens; a resampled latent counts until it fires) and
``held_out_dead`` (never active on any held-out token).

    python bench/bench_sae_resampling.py --results
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _results

from llmasos_widgets import activations, load_model, train_sae
from llmasos_widgets.features import _training
from llmasos_widgets.language import agreement_examples

NAME = "bench_sae_resampling"
# (resample_every, the resampled encoder's norm as a fraction of the live ones' mean)
RUNS = ((None, 0.2), (10, 0.2), (25, 0.2), (25, 1.0))


def _cases() -> dict[str, dict[str, Any]]:
    prompts = [e.text for e in agreement_examples(2000, seed=1, split="train")]
    sentences = [e.sentence for e in agreement_examples(1000, seed=1, split="train")]
    return {
        "number": dict(
            site=3, texts=prompts, width=256, k=8, positions="last", epochs=10, batch_size=256
        ),
        "every token": dict(site=1, texts=sentences, width=256, k=4, epochs=3, batch_size=256),
    }


def _held_out_dead(model: Any, report: Any, case: dict[str, Any]) -> int:
    """Latents never active on the held-out texts' rows (the same split train_sae made)."""
    _, held = _training._split(list(case["texts"]), 0.1, 0)
    positions = case.get("positions", "all")
    acts = activations(model, held, layers=[case["site"]], positions=positions, progress=False)
    rows = torch.from_numpy(acts[case["site"]])
    if positions == "all":  # train_sae skips <bos> rows
        bos = model.tokenizer.bos_token_id
        rows = rows[torch.from_numpy(~((acts.positions == 0) & (acts.token_ids == bos)))]
    with torch.no_grad():
        fired = (report.sae.encode(rows) > 0).any(0)
    return int((~fired).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    _results.add_output_arguments(parser, NAME)
    args = parser.parse_args()
    torch.set_num_threads(1)
    environment = _results.environment()
    model = load_model("tiny-llama", device="cpu")
    rows = []
    for name, case in _cases().items():
        options = {key: value for key, value in case.items() if key not in ("site", "texts")}
        for every, encoder_norm in RUNS:
            _training._RESAMPLED_ENCODER_NORM = encoder_norm
            begin = time.perf_counter()
            report = train_sae(
                model, case["site"], case["texts"], seed=0, resample_every=every, **options
            )
            wall = time.perf_counter() - begin
            row = {
                "case": name,
                "resample_every": every,
                "resampled_encoder_norm": encoder_norm if every else None,
                "steps": report.steps,
                "resampled": report.metadata["resampled"],
                "dead_latents": report.dead_latents,
                "held_out_dead": _held_out_dead(model, report, case),
                "width": case["width"],
                "held_out_fve": round(report.fve, 4),
                "train_fve": round(report.train_fve, 4),
                "l0": round(report.l0, 2),
                "wall_s": round(wall, 2),
            }
            rows.append(row)
            print(row, flush=True)
    _results.write(
        NAME,
        environment=environment,
        config={"device": "cpu", "threads": 1, "seed": 0, "cases": list(_cases())},
        figures={"rows": rows},
        out=args.out,
        results=args.results,
    )


if __name__ == "__main__":
    main()
