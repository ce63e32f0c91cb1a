"""Generation saliency: the batched ``[generated, site, token]`` matrix against N separate
``attribute()`` calls, and the copy known answer.

Cost: N = 32 generated tokens after a prompt, ``gradient`` at every residual site. "batched"
is ``attribute_generation`` (what ``generate()`` runs: the sequence replicated in a batch,
each row reading its own target, one forward + one backward); "separate" is one
``attribute(ids, target=NextToken(g_i), position=p_i - 1)`` per generated token. Both run in
one process, interleaved (batched, separate, batched, ...), median of ``--repeats``; the
ratio batched / separate is the figure (target ≤ 0.5). Two models: the bundled tiny LLaMA
and a random-init LLaMA-shaped model (4 layers, hidden 512, 8 heads / 2 kv heads), where the
model's arithmetic rather than Python overhead dominates.

Known answer: ``induction_peaks`` (tests/_induction_peaks.py) over held-out copy sequences --
the fraction of generated steps whose saliency row peaks on the earlier copy of the
generated token, at the embeddings (the matrix the view shows) and after L0.

    python bench/bench_generation.py --results   # 3 repetitions, 30 copy sequences
    python bench/bench_generation.py --quick     # 1 repetition, 6 copy sequences

Prints a table and writes ``bench/out/bench_generation.json``; ``--results`` also writes
``bench/results/bench_generation.json`` (``bench/_tables_generation.py`` renders it).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _results

try:
    import llmasos_widgets as lw
except ModuleNotFoundError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import llmasos_widgets as lw

from llmasos_widgets.attribution import NextToken, attribute
from llmasos_widgets.attribution._saliency_matrix import attribute_generation
from llmasos_widgets.models import as_explainable

sys.path.append(str(Path(__file__).resolve().parents[1]))  # tests/: the known-answer measure
from tests._induction_peaks import induction_peaks

N_GENERATED = 32
PROMPT_TOKENS = 32
RATIO_MAX = 0.5
COPY_LENGTH = 12
COPY_SEED = 2026
RANDOM_MODEL = dict(
    hidden_size=512,
    intermediate_size=1376,
    num_hidden_layers=4,
    num_attention_heads=8,
    num_key_value_heads=2,
    vocab_size=1024,
    max_position_embeddings=256,
)


def _random_model() -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    sys.path.append(str(Path(__file__).resolve().parents[1]))  # tests/_tokenizers.py
    from tests._tokenizers import WORD_SPECIALS, word_level_tokenizer

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**RANDOM_MODEL)).eval()
    words = [f"w{i}" for i in range(RANDOM_MODEL["vocab_size"] - len(WORD_SPECIALS))]
    tokenizer = word_level_tokenizer([*WORD_SPECIALS, *words], max_length=256)
    return as_explainable(model, tokenizer)


def _sequence(explainable: Any, seed: int) -> torch.Tensor:
    """A prompt of :data:`PROMPT_TOKENS` random tokens after ``<bos>`` and the model's own
    greedy continuation of :data:`N_GENERATED` tokens."""
    generator = torch.Generator().manual_seed(seed)
    vocab = int(explainable.config.vocab_size)
    prompt = torch.randint(4, vocab, (1, PROMPT_TOKENS), generator=generator)
    prompt = torch.cat([torch.tensor([[explainable.tokenizer.bos_token_id]]), prompt], dim=1)
    with torch.no_grad():
        out = explainable.hf_model.generate(
            prompt,
            attention_mask=torch.ones_like(prompt),
            max_new_tokens=N_GENERATED,
            min_new_tokens=N_GENERATED,
            do_sample=False,
            pad_token_id=0,
        )
    return out[0]


def _seconds(work: Callable[[], Any]) -> tuple[float, float]:
    """Wall and process CPU seconds (CPU time is less sensitive to other processes' load)."""
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu


def _cost(name: str, explainable: Any, repeats: int) -> dict[str, Any]:
    ids = _sequence(explainable, seed=1)
    prompt_length = len(ids) - N_GENERATED

    def batched() -> Any:
        return attribute_generation(explainable, ids, prompt_length, method="gradient")

    def separate() -> list[Any]:
        return [
            attribute(
                explainable,
                ids,
                target=NextToken(int(ids[position + 1])),
                position=position,
                method="gradient",
            )
            for position in range(prompt_length - 1, len(ids) - 1)
        ]

    matrix, rows = batched(), separate()  # warm-up, and the agreement of the two
    difference = max(float(abs(matrix.scores[i] - row.scores).max()) for i, row in enumerate(rows))
    times: dict[str, list[tuple[float, float]]] = {"batched": [], "separate": []}
    for _ in range(repeats):
        times["batched"].append(_seconds(batched))
        times["separate"].append(_seconds(separate))
    batched_s, separate_s = (statistics.median(t[0] for t in times[k]) for k in times)
    batched_cpu, separate_cpu = (statistics.median(t[1] for t in times[k]) for k in times)
    row = {
        "model": name,
        "n_tokens": len(ids),
        "n_generated": N_GENERATED,
        "batched_s": batched_s,
        "separate_s": separate_s,
        "ratio": batched_s / separate_s,
        "batched_cpu_s": batched_cpu,
        "separate_cpu_s": separate_cpu,
        "cpu_ratio": batched_cpu / separate_cpu,
        "max_abs_difference": difference,
        "times": times,
    }
    print(
        f"{name:>12}  T={len(ids):4d}  N={N_GENERATED}  batched {batched_s:7.3f} s  "
        f"separate {separate_s:7.3f} s  ratio {row['ratio']:.3f} "
        f"(CPU time {row['cpu_ratio']:.3f})  max |diff| {difference:.1e}"
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sequences", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="1 repetition, 6 sequences")
    _results.add_output_arguments(parser, "bench_generation")
    args = parser.parse_args()
    repeats, sequences = (1, 6) if args.quick else (args.repeats, args.sequences)
    environment = _results.environment()
    bundled = lw.load_model("tiny-llama", device="cpu")
    rows = [_cost("tiny-llama", bundled, repeats), _cost("random-512", _random_model(), repeats)]
    induction = []
    for site in (0, 1):
        peaks = induction_peaks(bundled, n=sequences, length=COPY_LENGTH, seed=COPY_SEED, site=site)
        induction.append(
            {
                "site": site,
                "rate": peaks.rate,
                "steps": peaks.steps,
                "sequences": peaks.sequences,
                "copied": peaks.copied,
            }
        )
        print(
            f"copy known answer at site {site}: {peaks.rate:.3f} of {peaks.steps} steps peak "
            f"on the earlier copy ({peaks.copied:.0%} of {peaks.sequences} sequences copied)"
        )
    _results.write(
        "bench_generation",
        environment=environment,
        config={
            "n_generated": N_GENERATED,
            "prompt_tokens": PROMPT_TOKENS,
            "method": "gradient",
            "repeats": repeats,
            "random_model": RANDOM_MODEL,
            "copy_length": COPY_LENGTH,
            "copy_seed": COPY_SEED,
            "copy_split": "test",
        },
        figures={"rows": rows, "induction": induction, "target": {"ratio_max": RATIO_MAX}},
        out=args.out,
        results=args.results,
    )


if __name__ == "__main__":
    main()
