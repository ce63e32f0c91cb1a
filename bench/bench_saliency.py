"""Integrated gradients: ``attribute`` against Captum's ``LayerIntegratedGradients``.

One process, one random-init LLaMA-shaped model (4 layers, hidden 512, 8 heads, 2 kv heads),
one input per sequence length; ours and Captum's runs are interleaved (ours, Captum, ours, ...)
so background load hits both alike. Both explain the same scalar, log p(token 7) after the
last position, with the same baseline (the ``<pad>`` embedding, ``<bos>`` kept) and 50
Gauss-Legendre steps, and both compute logits for the last position only
(``logits_to_keep=1``), so the comparison is about the attribution machinery.

Two tasks per length:

* ``embeddings``: IG at the input embeddings (Captum: one ``LayerIntegratedGradients`` on
  ``embed_tokens``);
* ``all sites``: IG at the embeddings and at every decoder layer's output, i.e. the full
  ``[layer, token]`` map (Captum: one ``LayerIntegratedGradients`` per layer, since it cannot
  take dependent layers in one call).

Captum runs with its default ``internal_batch_size`` (all steps in one batch); ours with its
default (batches sized to ~2 GiB of activations). Peak memory is the peak RSS increase during
a call (psutil, sampled every 2 ms after ``malloc_trim``): ``tracemalloc`` does not see
torch's CPU allocations. On CUDA it is ``torch.cuda.max_memory_allocated`` above the start.

    python bench/bench_saliency.py --results    # T = 128 and 512, 3 repetitions
    python bench/bench_saliency.py --quick      # T = 64, 1 repetition (smoke run)

Prints a table and writes ``bench/out/bench_saliency.json``; ``--results`` also writes
``bench/results/bench_saliency.json``, from which ``bench/tables.py`` makes the tables.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import statistics
import sys
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import psutil
import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _results

try:
    from llmasos_widgets.attribution import attribute
except ModuleNotFoundError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from llmasos_widgets.attribution import attribute

sys.path.append(str(Path(__file__).resolve().parents[1]))  # tests/_tokenizers.py

N_STEPS = 50
TARGET_ID = 7
CONFIG: dict[str, Any] = dict(
    vocab_size=4096,
    hidden_size=512,
    intermediate_size=1376,
    num_hidden_layers=4,
    num_attention_heads=8,
    num_key_value_heads=2,
    max_position_embeddings=1024,
)


def _tokenizer(vocab_size: int) -> PreTrainedTokenizerFast:
    from tests._tokenizers import WORD_SPECIALS, word_level_tokenizer

    words = [f"t{i}" for i in range(len(WORD_SPECIALS), vocab_size)]
    tokenizer: PreTrainedTokenizerFast = word_level_tokenizer(
        [*WORD_SPECIALS, *words], prepend_bos=False
    )
    return tokenizer


class PeakMemory:
    """Peak memory above the level at entry: CUDA allocator stats, or sampled process RSS."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak = 0

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._start = torch.cuda.memory_allocated()
            return self
        # hand freed heap back so the last run's memory does not hide this one's
        with contextlib.suppress(OSError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        self._process = psutil.Process()
        self._start = self._process.memory_info().rss
        self._max = self._start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self._max = max(self._max, self._process.memory_info().rss)

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self._start
            return
        self._stop.set()
        self._thread.join()
        self._max = max(self._max, self._process.memory_info().rss)
        self.peak = self._max - self._start


def _measure(fn: Callable[[], Any], device: torch.device) -> tuple[float, int, Any]:
    with PeakMemory(device) as memory:
        start = time.perf_counter()
        result = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    return seconds, memory.peak, result


def _captum(model: Any, ids: torch.Tensor, baseline_ids: torch.Tensor, layers: list[Any]) -> Any:
    from captum.attr import LayerIntegratedGradients

    def forward(input_ids: torch.Tensor) -> torch.Tensor:
        logits = model(input_ids=input_ids, use_cache=False, logits_to_keep=1).logits[:, -1]
        return torch.log_softmax(logits.float(), dim=-1)[:, TARGET_ID]

    rows = []
    for layer in layers:
        lig = LayerIntegratedGradients(forward, layer)
        attributions = lig.attribute(ids, baselines=baseline_ids, n_steps=N_STEPS)
        rows.append(attributions.sum(-1)[0].detach())
    return torch.stack(rows)


def _forward_backward(model: Any, ids: torch.Tensor) -> None:
    embeds = model.get_input_embeddings()(ids).detach().requires_grad_(True)
    logits = model(inputs_embeds=embeds, use_cache=False, logits_to_keep=1).logits[:, -1]
    value = torch.log_softmax(logits.float(), dim=-1)[:, TARGET_ID].sum()
    torch.autograd.grad(value, embeds)


def _compare(
    model: Any,
    tokenizer: Any,
    ids: torch.Tensor,
    layers_arg: str,
    captum_layers: list[Any],
    repeats: int,
    device: torch.device,
) -> dict[str, Any]:
    """Interleaved timings and peaks of ours and Captum's on one input and task."""
    baseline_ids = torch.full_like(ids, tokenizer.pad_token_id)
    baseline_ids[0, 0] = ids[0, 0]  # <bos> kept, as our named baselines do

    def ours() -> Any:
        return attribute(
            model,
            ids,
            tokenizer=tokenizer,
            target=TARGET_ID,
            method="integrated_gradients",
            integration="gausslegendre",  # Captum's rule: the same estimator on both sides
            baseline="pad",
            n_steps=N_STEPS,
            layers=layers_arg,
        )

    def captum() -> Any:
        return _captum(model, ids, baseline_ids, captum_layers)

    times: dict[str, list[float]] = {"ours": [], "captum": []}
    peaks: dict[str, list[int]] = {"ours": [], "captum": []}
    results: dict[str, Any] = {}
    for _ in range(repeats):
        for name, fn in (("ours", ours), ("captum", captum)):
            seconds, peak, results[name] = _measure(fn, device)
            times[name].append(seconds)
            peaks[name].append(peak)
    ours_scores = torch.from_numpy(results["ours"].scores.copy())
    ours_s, captum_s = statistics.median(times["ours"]), statistics.median(times["captum"])
    ours_mib, captum_mib = max(peaks["ours"]) / 2**20, max(peaks["captum"]) / 2**20
    return {
        "ours_s": ours_s,
        "captum_s": captum_s,
        "time_ratio": ours_s / captum_s,
        "ours_peak_mib": ours_mib,
        "captum_peak_mib": captum_mib,
        "memory_ratio": ours_mib / max(captum_mib, 1e-9),
        "max_abs_difference": float((ours_scores - results["captum"].float().cpu()).abs().max()),
        "max_abs_score": float(ours_scores.abs().max()),
        "max_convergence_delta": float(abs(results["ours"].convergence_delta).max()),
    }


def run(
    seq_lens: list[int], repeats: int, device: torch.device
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(config, one row per length and task)."""
    torch.manual_seed(0)
    config = LlamaConfig(**CONFIG)
    model = LlamaForCausalLM(config).to(device).eval()  # type: ignore[arg-type]
    model.set_attn_implementation("sdpa")
    tokenizer = _tokenizer(config.vocab_size)
    tasks = {
        "embeddings": ("embeddings", [model.model.embed_tokens]),
        "all sites": ("all", [model.model.embed_tokens, *model.model.layers]),
    }
    rows = []
    for seq_len in seq_lens:
        generator = torch.Generator().manual_seed(seq_len)
        ids = torch.randint(4, config.vocab_size, (1, seq_len), generator=generator)
        ids[0, 0] = tokenizer.bos_token_id
        ids = ids.to(device)
        _forward_backward(model, ids)  # warm-up
        fb = statistics.median(
            _measure(partial(_forward_backward, model, ids), device)[0] for _ in range(3)
        )
        for task, (layers_arg, captum_layers) in tasks.items():
            row: dict[str, Any] = {"seq_len": seq_len, "task": task, "forward_backward_s": fb}
            row |= _compare(model, tokenizer, ids, layers_arg, captum_layers, repeats, device)
            row["ig_over_forward_backward"] = row["ours_s"] / fb
            rows.append(row)
            print(_format_row(row), flush=True)
    return {
        "device": str(device),
        "model": CONFIG,
        "n_steps": N_STEPS,
        "integration": "gausslegendre",
        "baseline": "pad",
        "target_token_id": TARGET_ID,
        "repeats": repeats,
        "memory": "CUDA max_memory_allocated" if device.type == "cuda" else "peak RSS delta",
    }, rows


HEADER = (
    "| T | task | ours s | Captum s | time ratio | ours peak MiB | Captum peak MiB "
    "| memory ratio | IG / (fwd+bwd) | max abs diff |"
)
RULE = "|---|---|---|---|---|---|---|---|---|---|"


def _format_row(row: dict[str, Any]) -> str:
    return (
        f"| {row['seq_len']} | {row['task']} | {row['ours_s']:.2f} | {row['captum_s']:.2f} "
        f"| {row['time_ratio']:.2f} | {row['ours_peak_mib']:.0f} | {row['captum_peak_mib']:.0f} "
        f"| {row['memory_ratio']:.2f} | {row['ig_over_forward_backward']:.1f}x "
        f"| {row['max_abs_difference']:.1e} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seq-lens", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="T = 64, one repetition")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    _results.add_output_arguments(parser, "bench_saliency")
    args = parser.parse_args()
    seq_lens, repeats = ([64], 1) if args.quick else (args.seq_lens, args.repeats)
    device = torch.device(args.device)
    # a GPU run gets its own files, so it never replaces the CPU figures the docs quote
    name = "bench_saliency" if device.type == "cpu" else f"bench_saliency_{device.type}"
    if args.out == _results.OUT / "bench_saliency.json":
        args.out = _results.OUT / f"{name}.json"
    environment = _results.environment()
    print(HEADER)
    print(RULE)
    config, rows = run(seq_lens, repeats, device)
    _results.write(
        name,
        environment=environment,
        config=config,
        figures={"target": {"time_ratio_max": 1.0, "memory_ratio_max": 1.0}, "rows": rows},
        out=args.out,
        results=args.results and not args.quick,
    )


if __name__ == "__main__":
    main()
