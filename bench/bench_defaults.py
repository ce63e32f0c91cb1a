"""Which saliency method should be the default on a real checkpoint, and what each one costs.

On SmolLM2-135M-Instruct (the test suite's real checkpoint, tests/_real_model.py, float32):

* ranking: the factual prompts of ``bench/factual_prompts.py`` that the model answers
  correctly (greedy top-1 = the answer's first token); target ``NextToken(answer)`` (its
  log-probability), scores at ``emb``, every registered method with its defaults. Recorded per
  method: how often the top-scored token is a subject token (and a subject token is in the
  top 2), the same with position 0 (the first token, the attention sink: the tokenizer adds no
  ``<bos>``) left out of the ranking, the mean ``lw.faithfulness`` score (its defaults: ``pad``
  deletion, 16 random orders; position 0 is a candidate there), and the time per call;
* cost: one prompt of about 20 tokens, each method at ``emb`` and at every residual site
  (integrated gradients at every site: measured on ``--ig-sites`` evenly spread sites and
  scaled to all of them, since one site costs the same forward+backward passes as another),
  with the model passes each call ran.

    python bench/bench_defaults.py --results   # writes bench/results/bench_defaults.json

``bench/tables.py`` renders the committed JSON (``bench/_tables_defaults.py``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
import _results  # noqa: E402
from factual_prompts import PROMPTS, FactualPrompt  # noqa: E402

import llmasos_widgets as lw  # noqa: E402
from llmasos_widgets.attribution import ConvergenceWarning, available_methods  # noqa: E402
from tests._real_model import smollm2_checkpoint  # noqa: E402

# ~20 tokens; the fact's subject is in the middle
COST_TEXT = (
    "Of all the famous old cities in Europe that tourists like to visit, the capital of France is"
)
COST_ANSWER = " Paris"


def _first_token(model: Any, answer: str) -> int:
    return int(model.tokenizer(answer, add_special_tokens=False)["input_ids"][0])


def subject_positions(model: Any, prompt: FactualPrompt) -> list[int]:
    """Token positions of the subject (the tokens between the text before it and after it)."""
    start = prompt.text.index(prompt.subject)
    stop = start + len(prompt.subject)
    before = len(model.encode(prompt.text[:start])[0]) if start else 0
    through = len(model.encode(prompt.text[:stop])[0])
    tokens = model.tokens(model.encode(prompt.text))
    assert model.tokens(model.encode(prompt.text[:stop])) == tokens[:through], prompt
    return list(range(before, through))


def kept_prompts(model: Any) -> list[FactualPrompt]:
    kept = []
    for prompt in PROMPTS:
        with torch.no_grad():
            logits = model.hf_model(model.encode(prompt.text)).logits[0, -1]
        if int(logits.argmax()) == _first_token(model, prompt.answer):
            kept.append(prompt)
    return kept


class PassCounter:
    """Counts the model's forward passes (batched: one per call of the HF model)."""

    def __init__(self, hf_model: Any) -> None:
        self.n = 0
        self.handle = hf_model.register_forward_pre_hook(self._count)

    def _count(self, *_: Any) -> None:
        self.n += 1


def _attribute(model: Any, text: str, method: str, target: int, layers: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return lw.attribute(
            model, text, target=target, method=method, layers=layers, progress=False
        )


def ranking_rows(
    model: Any, prompts: list[FactualPrompt], ig_every: int, shard: tuple[int, int] = (0, 1)
) -> tuple[list[dict], list[dict]]:
    methods = available_methods()
    per_prompt = []
    for index, prompt in enumerate(prompts):
        if index % shard[1] != shard[0]:
            continue
        subject = set(subject_positions(model, prompt))
        target = _first_token(model, prompt.answer)
        entry: dict[str, Any] = {
            "index": index,
            "text": prompt.text,
            "kind": prompt.kind,
            "subject": sorted(subject),
        }
        for method in methods:
            if method == "integrated_gradients" and index % ig_every:
                continue  # ~1 min a call on the loaded bench machine: every ig_every-th prompt
            start = time.perf_counter()
            saliency = _attribute(model, prompt.text, method, target, "embeddings")
            seconds = time.perf_counter() - start
            scores = saliency.at(0).astype(np.float64)
            order = [int(i) for i in np.argsort(-scores, kind="stable")]
            without_first = [i for i in order if i != 0]
            result = lw.faithfulness(model, saliency)
            entry[method] = {
                "seconds": seconds,
                "top": order[0],
                "first": order[0] in subject,
                "top2": bool(subject & set(order[:2])),
                "first_excluding_0": without_first[0] in subject,
                "top2_excluding_0": bool(subject & set(without_first[:2])),
                "position_0_first": order[0] == 0,
                "faithfulness": result.score,
            }
        per_prompt.append(entry)
        print(
            index,
            prompt.text,
            {m: (entry[m]["top"], round(entry[m]["seconds"], 2)) for m in methods if m in entry},
            flush=True,
        )
    return summary_rows(per_prompt), per_prompt


def summary_rows(per_prompt: list[dict]) -> list[dict]:
    rows = []
    for method in available_methods():
        values = [entry[method] for entry in per_prompt if method in entry]
        rows.append(
            {
                "method": method,
                "prompts": len(values),
                "subject_first": float(np.mean([v["first"] for v in values])),
                "subject_top2": float(np.mean([v["top2"] for v in values])),
                "subject_first_excluding_0": float(
                    np.mean([v["first_excluding_0"] for v in values])
                ),
                "subject_top2_excluding_0": float(np.mean([v["top2_excluding_0"] for v in values])),
                "position_0_first": float(np.mean([v["position_0_first"] for v in values])),
                "mean_faithfulness": float(np.nanmean([v["faithfulness"] for v in values])),
                "median_seconds": statistics.median(v["seconds"] for v in values),
            }
        )
        print(rows[-1], flush=True)
    return rows


def _timed(model: Any, method: str, target: int, layers: Any, reps: int) -> tuple[float, int, Any]:
    times, passes = [], 0
    for _ in range(reps):
        counter = PassCounter(model.hf_model)
        start = time.perf_counter()
        try:
            saliency = _attribute(model, COST_TEXT, method, target, layers)
        finally:
            counter.handle.remove()
        times.append(time.perf_counter() - start)
        passes = counter.n
    return statistics.median(times), passes, saliency


def cost_rows(model: Any, reps: int, ig_sites: int) -> list[dict[str, Any]]:
    target = _first_token(model, COST_ANSWER)
    n_tokens = len(model.encode(COST_TEXT)[0])
    n_sites = len(lw.attribution.decoder_layers(model.hf_model)) + 1
    rows = []
    for method in available_methods():
        emb_s, emb_passes, _ = _timed(model, method, target, "embeddings", reps)
        row: dict[str, Any] = {
            "method": method,
            "tokens": n_tokens,
            "sites": n_sites,
            "embeddings_s": emb_s,
            "embeddings_passes": emb_passes,
        }
        if method == "integrated_gradients":
            sites = sorted({round(i * (n_sites - 1) / (ig_sites - 1)) for i in range(ig_sites)})
            some_s, some_passes, _ = _timed(model, method, target, sites, 1)
            row.update(
                all_sites_s=some_s * n_sites / len(sites),
                all_sites_passes=round(some_passes * n_sites / len(sites)),
                all_sites_measured_on=sites,
            )
        else:
            all_s, all_passes, _ = _timed(model, method, target, "all", reps)
            row.update(all_sites_s=all_s, all_sites_passes=all_passes, all_sites_measured_on=None)
        rows.append(row)
        print(row, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=1, help="repetitions of each cost call")
    parser.add_argument(
        "--ig-sites", type=int, default=2, help="sites IG's all-site cost is measured on"
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (default: %(default)s)"
    )
    parser.add_argument("--limit", type=int, default=None, help="only the first N kept prompts")
    parser.add_argument(
        "--ig-every", type=int, default=1, help="integrated gradients on every N-th prompt only"
    )
    parser.add_argument(
        "--cost-from", type=Path, default=None, help="take the cost rows from this JSON"
    )
    parser.add_argument("--only-cost", action="store_true", help="measure the cost rows only")
    parser.add_argument("--shard", default="0/1", help="K/N: measure the kept prompts K::N only")
    parser.add_argument(
        "--merge", type=Path, nargs="*", default=None, help="per-prompt rows of the shards' JSON"
    )
    _results.add_output_arguments(parser, "bench_defaults")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    environment = _results.environment()
    model = lw.load_model(str(smollm2_checkpoint()), device="cpu", dtype="float32")
    kept = kept_prompts(model)  # also in --merge mode: the count goes into the config
    print(f"{len(kept)} of {len(PROMPTS)} prompts answered correctly", flush=True)
    measured = kept[: args.limit] if args.limit else kept
    shard = tuple(int(x) for x in args.shard.split("/"))
    shard_environments = None
    if args.merge:  # shards of one run (--shard K/N), each in its own process
        shards = [json.loads(path.read_text()) for path in args.merge]
        per_prompt = sorted(
            (entry for run in shards for entry in run["per_prompt"]), key=lambda e: e["index"]
        )
        methods, shard_environments = summary_rows(per_prompt), [r["environment"] for r in shards]
    elif args.only_cost:
        methods, per_prompt = [], []
    else:
        methods, per_prompt = ranking_rows(model, measured, args.ig_every, (shard[0], shard[1]))
    if shard != (0, 1):  # a shard: per-prompt rows only, merged by --merge
        cost, cost_environment = [], None
    elif args.cost_from:  # measured by a second process of the same run (--only-cost)
        cost_run = json.loads(args.cost_from.read_text())
        cost, cost_environment = cost_run["cost"], cost_run["environment"]
    else:
        cost, cost_environment = cost_rows(model, args.reps, args.ig_sites), None
    paths = _results.write(
        "bench_defaults",
        environment=environment,
        config={
            "model": "SmolLM2-135M-Instruct (GGUF Q4_1 dequantized, float32)",
            "prompts_written": len(PROMPTS),
            "prompts_kept": len(kept),
            "prompts_measured": len(measured),
            "target": "NextToken(answer's first token), log-probability",
            "site": "emb",
            "attribute_defaults": "each method's own (IG: pad baseline, adaptive, 100 steps; "
            "occlusion: zero baseline)",
            "faithfulness": "lw.faithfulness defaults (pad deletion, 16 random orders)",
            "cost_text": COST_TEXT,
            "ig_every": args.ig_every,
            "ig_sites": args.ig_sites,
            "cost_environment": cost_environment,
            "shard_environments": shard_environments,
            "reps": args.reps,
            "device": "cpu",
        },
        figures={"methods": methods, "cost": cost, "per_prompt": per_prompt},
        out=args.out,
        results=args.results,
    )
    if shard_environments:  # the figures' run is the shards' (first shard: date, load)
        for path in paths:
            payload = json.loads(path.read_text())
            payload["environment"] = shard_environments[0]
            path.write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
