"""Activation collection (``activations``) against the same forward without collection.

Both sides do the same work: the texts are tokenized in one tokenizer call, de-duplicated,
sorted longest first, cut into batches of ``batch_size``, padded the same way (with RoPE
position ids from the mask) and run through the base model (no LM head) under
``torch.inference_mode``. So ``vs base forward`` is the true overhead of collection: hooks,
gathering the probed token of every text, and copying it to numpy (or to disk).
(``activations`` stops after the deepest requested decoder layer and so skips the final norm,
one RMSNorm of the batch.)

* ``base forward``: the reference above, nothing collected;
* ``base forward + hidden states``: the same with ``output_hidden_states=True`` and the last
  token of every text, every layer, gathered to numpy -- the hand-written way to collect;
* ``activations``: ours, every residual site at the last token, in memory;
* ``activations, site 1 only``: ours, ``layers=[1]`` (the forward stops after decoder layer 0);
* ``activations to disk``: ours, every site, streamed to memory-mapped ``.npy`` files.

One process; for each model the runs are interleaved (reference, ours, reference, ours, ...)
so background load hits all alike. Two clocks, best (minimum) of ``--repeats`` runs each:
wall time, and the CPU time of this process (``time.process_time``, one torch thread). On a
shared CPU, wall times of the same call varied 3x with other jobs while CPU time varied by
under 5%, so the CPU ratio is the one to read. The JSON has every sample.

Models: the bundled tiny-llama (3 layers, hidden 64) when its checkpoint is present, and a
random-init LLaMA-shaped model (4 layers, hidden 512, 8 heads, 2 kv heads, same vocabulary).
Texts: agreement prompts of the bundled language (6-9 tokens).

    python bench/bench_probing.py --results  # 1024 texts, batch 64, best of 5, 1 thread
    python bench/bench_probing.py --quick    # 256 texts, 1 repetition (smoke run)

Prints a table and writes ``bench/out/bench_probing.json``; ``--results`` also writes
``bench/results/bench_probing.json``, from which ``bench/tables.py`` makes the tables.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _results

try:
    from llmasos_widgets import language
except ModuleNotFoundError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from llmasos_widgets import language
from llmasos_widgets.models import BUNDLED_MODELS, as_explainable, load_model
from llmasos_widgets.probing import activations

sys.path.append(str(Path(__file__).resolve().parents[1]))  # tests/_tokenizers.py

HEADER = (
    f"{'model':<22} {'method':<30} {'texts/s':>9} {'tokens/s':>10} {'ms/batch':>9} "
    f"{'vs base':>8} {'CPU ms/batch':>13} {'CPU vs base':>12}"
)
REFERENCE = "base forward"
RULE = "-" * len(HEADER)


def word_tokenizer() -> Any:
    """The bundled language's word-level tokenizer (``<bos>`` first), for the random model."""
    from tests._tokenizers import word_level_tokenizer

    return word_level_tokenizer(
        language.vocabulary(), bos=language.BOS, eos=language.EOS, pad=language.PAD,
        unk=language.UNK, max_length=128,
    )  # fmt: skip


def random_model() -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = word_tokenizer()
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=512, intermediate_size=2048,
        num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=2,
        max_position_embeddings=128, attn_implementation="sdpa",
    )  # fmt: skip
    return as_explainable(LlamaForCausalLM(config).eval(), tokenizer)


def base_forward(model: Any, texts: list[str], batch_size: int, hidden: bool) -> None:
    """What ``activations`` runs, without collecting: same tokenization, batches and padding."""
    tokenizer, hf_model = model.tokenizer, model.hf_model
    base = getattr(hf_model, "base_model", hf_model)
    distinct = list(dict.fromkeys(texts))
    token_ids = tokenizer(distinct)["input_ids"]
    order = sorted(range(len(token_ids)), key=lambda t: -len(token_ids[t]))
    pad_id = tokenizer.pad_token_id or 0
    left = getattr(tokenizer, "padding_side", "right") == "left"
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            batch = [token_ids[t] for t in order[start : start + batch_size]]
            width = max(len(ids) for ids in batch)
            input_ids = np.full((len(batch), width), pad_id, dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, ids in enumerate(batch):
                begin = width - len(ids) if left else 0
                input_ids[row, begin : begin + len(ids)] = ids
                mask[row, begin : begin + len(ids)] = 1
            position_ids = np.maximum(mask.cumsum(axis=1) - 1, 0)
            out = base(
                input_ids=torch.from_numpy(input_ids).to(model.device),
                attention_mask=torch.from_numpy(mask).to(model.device),
                position_ids=torch.from_numpy(position_ids).to(model.device),
                output_hidden_states=hidden,
                use_cache=False,
            )
            if hidden:  # the last real token of each text, every layer, to numpy
                last = torch.from_numpy(width - 1 if left else mask.sum(axis=1) - 1).to(
                    model.device
                )
                rows = torch.arange(len(batch), device=model.device)
                [h[rows, last].float().cpu().numpy() for h in out.hidden_states]


def time_once(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def run_model(
    name: str, model: Any, texts: list[str], batch_size: int, repeats: int
) -> list[dict[str, Any]]:
    n_tokens = sum(len(model.encode(t)[0]) for t in texts)
    with tempfile.TemporaryDirectory(prefix="bench-probing-") as scratch:
        return _run_model(name, model, texts, n_tokens, batch_size, repeats, Path(scratch))


def _run_model(
    name: str,
    model: Any,
    texts: list[str],
    n_tokens: int,
    batch_size: int,
    repeats: int,
    scratch: Path,
) -> list[dict[str, Any]]:
    counter = iter(range(10**6))
    methods: dict[str, Callable[[], object]] = {
        REFERENCE: lambda: base_forward(model, texts, batch_size, hidden=False),
        "base forward + hidden states": lambda: base_forward(model, texts, batch_size, hidden=True),
        "activations": lambda: activations(
            model, texts, batch_size=batch_size, progress=False
        ),
        "activations, site 1 only": lambda: activations(
            model, texts, layers=[1], batch_size=batch_size, progress=False
        ),
        "activations to disk": lambda: activations(
            model, texts, batch_size=batch_size, progress=False,
            out=scratch / f"run-{next(counter)}",
        ),
    }  # fmt: skip
    for fn in methods.values():  # warm-up: allocator, kernels, tokenizer caches
        fn()
    times: dict[str, list[float]] = {m: [] for m in methods}
    cpu_times: dict[str, list[float]] = {m: [] for m in methods}
    for _ in range(repeats):
        for method, fn in methods.items():
            wall, cpu = time_once(fn)
            times[method].append(wall)
            cpu_times[method].append(cpu)
    reference = min(times[REFERENCE])
    reference_cpu = min(cpu_times[REFERENCE])
    n_batches = -(-len(set(texts)) // batch_size)
    rows = []
    for method, samples in times.items():
        seconds = min(samples)
        rows.append(
            {
                "model": name,
                "method": method,
                "seconds": seconds,
                "median_seconds": statistics.median(samples),
                "cpu_seconds": min(cpu_times[method]),
                "cpu_ms_per_batch": 1000 * min(cpu_times[method]) / n_batches,
                "cpu_vs_base": min(cpu_times[method]) / reference_cpu,
                "cpu_samples": cpu_times[method],
                "texts_per_s": len(texts) / seconds,
                "tokens_per_s": n_tokens / seconds,
                "ms_per_batch": 1000 * seconds / n_batches,
                "vs_base": seconds / reference,
                "samples": samples,
            }
        )
        row = rows[-1]
        print(
            f"{name:<22} {method:<30} {row['texts_per_s']:>9.0f} {row['tokens_per_s']:>10.0f} "
            f"{row['ms_per_batch']:>9.2f} {row['vs_base']:>7.2f}x "
            f"{row['cpu_ms_per_batch']:>13.2f} {row['cpu_vs_base']:>11.2f}x",
            flush=True,
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    # One thread by default: on a shared machine two threads contend and the timings swing 2x.
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="256 texts, one repetition")
    _results.add_output_arguments(parser, "bench_probing")
    args = parser.parse_args()
    n_texts, repeats = (256, 1) if args.quick else (args.texts, args.repeats)
    torch.set_num_threads(args.threads)
    environment = _results.environment()
    texts = [ex.text for ex in language.agreement_examples(n_texts, seed=0)]

    models: list[tuple[str, Any]] = []
    if (BUNDLED_MODELS["tiny-llama"] / "model.safetensors").is_file():
        models.append(("tiny-llama (bundled)", load_model("tiny-llama", device="cpu")))
    models.append(("random 4x512", random_model()))

    print(HEADER)
    print(RULE)
    rows = []
    for name, model in models:
        rows.extend(run_model(name, model, texts, args.batch_size, repeats))
    config = {
        "threads": torch.get_num_threads(),
        "n_texts": n_texts,
        "distinct_texts": len(set(texts)),
        "batch_size": args.batch_size,
        "repeats": repeats,
        "texts": "language.agreement_examples(n_texts, seed=0)",
        "reference": REFERENCE,
        "models": [name for name, _ in models],
    }
    _results.write(
        "bench_probing",
        environment=environment,
        config=config,
        figures={"target": {"cpu_vs_base_max": 1.10}, "rows": rows},
        out=args.out,
        results=args.results and not args.quick,
    )


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
