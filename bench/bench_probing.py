"""Activation collection (``activations``) against a plain batched forward of the same texts.

One process; for each model the runs are interleaved (plain, ours, plain, ours, ...) so
background load hits both alike. Two clocks, best (minimum) of ``--repeats`` runs each:
wall time, and the CPU time of this process (``time.process_time``, one torch thread). On a
shared CPU, wall times of the same call varied 3x with other people's jobs (preemption:
hundreds of involuntary context switches per call) and even flipped which method looked
faster; CPU time varied by under 5%, so its ratio is the one to read. The JSON has every
sample.

* ``plain forward``: ``tokenizer(batch, padding=True)`` then ``hf_model(**batch, use_cache=False)``
  on the texts
  in their order, ``batch_size`` texts at a time, under ``torch.inference_mode`` -- the least a
  user must run to see the activations at all;
* ``plain + hidden states``: the same with ``output_hidden_states=True`` and the last token of
  every text gathered to numpy, i.e. the hand-written way to collect activations;
* ``activations``: ours, every residual layer at the last token, in memory;
* ``activations layer 1``: ours, residual layer 1 only (the forward stops after layer 1);
* ``activations to disk``: ours, every layer, streamed to memory-mapped ``.npy`` files.

Models: the bundled tiny-llama (3 layers, hidden 64) when its checkpoint is present, and a
random-init LLaMA-shaped model (4 layers, hidden 512, 8 heads, 2 kv heads, same vocabulary).
Texts: agreement prompts of the bundled language (6-9 tokens).

    python bench/bench_probing.py            # 1024 texts, batch 64, best of 5, 1 thread
    python bench/bench_probing.py --quick    # 256 texts, 1 repetition (smoke run)

Prints a table, writes ``bench/out/probing.json`` and appends a "Probing" section to
``bench/RESULTS.md`` (``--no-results`` to skip).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers

try:
    from llmasos_widgets import language
except ModuleNotFoundError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from llmasos_widgets import language
from llmasos_widgets.models import BUNDLED_MODELS, as_explainable, load_model
from llmasos_widgets.probing import activations

HEADER = (
    f"{'model':<22} {'method':<24} {'texts/s':>9} {'tokens/s':>10} {'ms/batch':>9} "
    f"{'vs plain':>9} {'CPU ms/batch':>13} {'CPU vs plain':>13}"
)
RULE = "-" * len(HEADER)


def word_tokenizer() -> Any:
    """The bundled language's word-level tokenizer (``<bos>`` first), for the random model."""
    from tokenizers import Tokenizer, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {word: i for i, word in enumerate(language.vocabulary())}
    backend = Tokenizer(WordLevel(vocab=vocab, unk_token=language.UNK))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.post_processor = processors.TemplateProcessing(
        single=f"{language.BOS} $A", special_tokens=[(language.BOS, vocab[language.BOS])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=language.BOS, pad_token=language.PAD,
        unk_token=language.UNK, eos_token=language.EOS, model_max_length=128,
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


def plain_forward(model: Any, texts: list[str], batch_size: int, hidden: bool) -> None:
    tokenizer, hf_model = model.tokenizer, model.hf_model
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(
                texts[start : start + batch_size], padding=True, return_tensors="pt"
            ).to(model.device)
            out = hf_model(**batch, output_hidden_states=hidden, use_cache=False)
            if hidden:  # the last real token of each text, every layer, to numpy
                last = batch["attention_mask"].sum(dim=1) - 1
                rows = torch.arange(len(last))
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
        "plain forward": lambda: plain_forward(model, texts, batch_size, hidden=False),
        "plain + hidden states": lambda: plain_forward(model, texts, batch_size, hidden=True),
        "activations": lambda: activations(
            model, texts, batch_size=batch_size, progress=False
        ),
        "activations layer 1": lambda: activations(
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
    plain = min(times["plain forward"])
    plain_cpu = min(cpu_times["plain forward"])
    n_batches = -(-len(texts) // batch_size)
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
                "cpu_vs_plain": min(cpu_times[method]) / plain_cpu,
                "cpu_samples": cpu_times[method],
                "texts_per_s": len(texts) / seconds,
                "tokens_per_s": n_tokens / seconds,
                "ms_per_batch": 1000 * seconds / n_batches,
                "vs_plain": seconds / plain,
                "samples": samples,
            }
        )
        row = rows[-1]
        print(
            f"{name:<22} {method:<24} {row['texts_per_s']:>9.0f} {row['tokens_per_s']:>10.0f} "
            f"{row['ms_per_batch']:>9.2f} {row['vs_plain']:>8.2f}x "
            f"{row['cpu_ms_per_batch']:>13.2f} {row['cpu_vs_plain']:>12.2f}x",
            flush=True,
        )
    return rows


def results_section(result: dict[str, Any]) -> str:
    lines = [
        "",
        "## Probing",
        "",
        f"`python bench/bench_probing.py` ({result['date']}, {result['machine']}, "
        f"torch {result['torch']}, transformers {result['transformers']}): "
        f"{result['n_texts']} agreement prompts, batch size "
        f"{result['batch_size']}, best of {result['repeats']} interleaved runs. `vs plain` = "
        "time / time of a plain batched forward of the same texts (lower is better); CPU = "
        "this process's CPU time, the robust figure on a shared machine (wall times swung 3x).",
        "",
        "| model | method | texts/s | tokens/s | ms/batch | vs plain "
        "| CPU ms/batch | CPU vs plain |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['model']} | {row['method']} | {row['texts_per_s']:.0f} | "
            f"{row['tokens_per_s']:.0f} | {row['ms_per_batch']:.2f} | {row['vs_plain']:.2f}x | "
            f"{row['cpu_ms_per_batch']:.2f} | {row['cpu_vs_plain']:.2f}x |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    # One thread by default: on a shared machine two threads contend and the timings swing 2x.
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="256 texts, one repetition")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out" / "probing.json")
    parser.add_argument("--no-results", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()
    n_texts, repeats = (256, 1) if args.quick else (args.texts, args.repeats)
    torch.set_num_threads(args.threads)
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
    result = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} CPU threads",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "threads": torch.get_num_threads(),
        "n_texts": n_texts,
        "batch_size": args.batch_size,
        "repeats": repeats,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    if not args.no_results and not args.quick:
        results = Path(__file__).parent / "RESULTS.md"
        with results.open("a", encoding="utf-8") as handle:  # one append, our section only
            handle.write(results_section(result))
        print(f"appended the Probing section to {results}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
