"""Memory and time of ``explain(text)`` with gradient saliency at Llama-3.1-8B shape.

Random-init weights of the Llama-3.1-8B shape (hidden 4096, MLP 14336, 32 heads, 8 kv heads,
head dim 128, vocab 128256; 32 layers on CUDA, fewer on the CPU), bf16, a text of ``--tokens``
tokens (word-level tokenizer built offline). For each step it reports the time as a multiple
of one plain forward (``model(ids, use_cache=False, logits_to_keep=1)`` under ``no_grad``) and
the peak memory *above the weights*:

* CUDA: ``torch.cuda.max_memory_allocated()`` minus the allocation before the step;
* CPU: the process's peak resident set (``VmHWM``, reset before each step through
  ``/proc/self/clear_refs``) minus its resident set before the step. glibc is told to return
  large blocks to the system at once (the script re-executes itself with
  ``MALLOC_MMAP_THRESHOLD_``), so the resident set before a step is what is live.

Target (issue 12): at 32 layers, T=4096, bf16 on CUDA, explain with gradient saliency adds
<= 3 GB. Prints a table, writes JSON to bench/out/scale.json and, with ``--results``, to
bench/results/bench_scale.json (one entry per device, layers, tokens and dtype).

    python bench/bench_scale.py --device cuda                       # the target configuration
    python bench/bench_scale.py --device cpu --layers 2 --tokens 1024
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime
import gc
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM

try:
    from llmasos_widgets.models import as_explainable
except ModuleNotFoundError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from llmasos_widgets.models import as_explainable

from llmasos_widgets.attribution import _attribute, attribute
from llmasos_widgets.explanation import explain

HERE = Path(__file__).resolve().parent
sys.path.append(str(HERE.parent))  # tests/_tokenizers.py, shared with the tests
LLAMA_3_8B: dict[str, Any] = dict(
    hidden_size=4096,
    intermediate_size=14336,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=8,
    head_dim=128,
    vocab_size=128256,
    rope_theta=500000.0,
    tie_word_embeddings=False,
)
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
TARGET_BYTES = 3 * 10**9
_MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}


def build_model(
    layers: int, dtype: torch.dtype, device: str, shape: dict[str, Any] | None = None
) -> LlamaForCausalLM:
    """A random-init LLaMA of ``shape`` (default: Llama-3.1-8B) built directly on ``device``."""
    sizes = {**(shape or LLAMA_3_8B), "num_hidden_layers": layers}
    config = LlamaConfig(**sizes, max_position_embeddings=16384)
    torch.manual_seed(0)
    with torch.device(device):  # initialise in place: no CPU copy of 16 GB first
        model = LlamaForCausalLM._from_config(config, dtype=dtype)
    model.set_attn_implementation("sdpa")
    return model.eval()


def word_tokenizer(n_words: int = 1000, max_length: int = 16384) -> Any:
    """A word-level fast tokenizer (``w0`` .. ``w{n-1}``) that prepends ``<bos>``; offline."""
    from tests._tokenizers import WORD_SPECIALS, word_level_tokenizer

    words = [f"w{i}" for i in range(n_words)]
    return word_level_tokenizer([*WORD_SPECIALS, *words], max_length=max_length)


def sample_text(n_tokens: int, n_words: int = 1000, seed: int = 0) -> str:
    """``n_tokens - 1`` random words: ``n_tokens`` tokens with ``<bos>``."""
    generator = torch.Generator().manual_seed(seed)
    words = torch.randint(0, n_words, (n_tokens - 1,), generator=generator)
    return " ".join(f"w{int(i)}" for i in words)


def _resident_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _release_host_memory() -> None:
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(fn: Callable[[], Any], device: str, *, keep_result: bool = False) -> dict[str, Any]:
    """Seconds and peak bytes above what was allocated before ``fn`` ran (``fn``'s result is
    dropped unless ``keep_result``, so it does not count against the next step)."""
    _release_host_memory()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        before = _resident_bytes("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    start = time.perf_counter()
    result = fn()
    _synchronize(device)
    if not keep_result:
        result = None
    seconds = time.perf_counter() - start
    if device.startswith("cuda"):
        peak = torch.cuda.max_memory_allocated() - before
    else:
        peak = _resident_bytes("VmHWM") - before
    return {"seconds": seconds, "peak_bytes": int(peak), "result": result}


def weight_bytes(model: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


@contextlib.contextmanager
def layer_recomputation(on: bool) -> Iterator[None]:
    """Attribution with every decoder layer recomputed in the backward, or none (a plain
    backward), whatever the size: ``attribute`` decides by estimated activation memory."""
    saved = _attribute._RECOMPUTE_ABOVE
    _attribute._RECOMPUTE_ABOVE = -1 if on else 1 << 62
    try:
        yield
    finally:
        _attribute._RECOMPUTE_ABOVE = saved


def recomputes_by_default(model: torch.nn.Module, tokens: int) -> bool:
    """Whether ``attribute`` recomputes layers for this model and length on its own."""
    estimate = _attribute._activation_bytes(model, n_rows=1, n_tokens=tokens)
    return estimate > _attribute._RECOMPUTE_ABOVE


def run(
    layers: int,
    tokens: int,
    dtype: str,
    device: str,
) -> dict[str, Any]:
    print(f"building {layers}-layer Llama-3.1-8B shape ({dtype}, {device}) ...", flush=True)
    model = build_model(layers, DTYPES[dtype], device)
    explainable = as_explainable(model, word_tokenizer())
    text = sample_text(tokens)
    ids = explainable.encode(text)
    assert ids.shape[1] == tokens, ids.shape

    def forward() -> None:
        with torch.no_grad():
            model(input_ids=ids, use_cache=False, logits_to_keep=1)

    forward()  # warm-up: kernels, allocator, lazy initialisation
    steps: dict[str, dict[str, Any]] = {}
    steps["plain forward"] = measure(forward, device)
    steps["explain, no saliency"] = measure(
        lambda: explain(explainable, text, saliency=False), device
    )
    for recompute, name in ((True, "layers recomputed"), (False, "plain backward")):
        with layer_recomputation(recompute):
            steps[f"attribute(gradient), {name}"] = measure(
                lambda: attribute(explainable, text, method="gradient"), device
            )
    steps["explain + gradient saliency"] = measure(
        lambda: explain(explainable, text, saliency=True), device, keep_result=True
    )
    explanation = steps["explain + gradient saliency"]["result"]
    for step in steps.values():
        step.pop("result")
    plain = steps["plain forward"]["seconds"]
    rows = [
        {
            "step": name,
            "seconds": step["seconds"],
            "over_plain_forward": step["seconds"] / plain,
            "peak_above_weights_bytes": step["peak_bytes"],
        }
        for name, step in steps.items()
    ]
    capture_bytes = sum(t.nbytes for t in (*explanation.queries, *explanation.keys))
    return {
        "config": {
            "shape": "Llama-3.1-8B",
            **{k: v for k, v in LLAMA_3_8B.items() if k != "num_hidden_layers"},
            "layers": layers,
            "tokens": tokens,
            "dtype": dtype,
            "device": device,
        },
        "weight_bytes": weight_bytes(model),
        "explanation_qk_bytes": capture_bytes,
        "explain_recomputes_layers": recomputes_by_default(model, tokens),
        "explanation_qk_device": str(explanation.queries[0].device),
        "peak_measure": "torch.cuda.max_memory_allocated"
        if device.startswith("cuda")
        else "VmHWM - VmRSS (clear_refs)",
        "rows": rows,
        "target_bytes": TARGET_BYTES,
    }


def environment(device: str) -> dict[str, Any]:
    info: dict[str, Any] = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name()
    return info


def print_table(result: dict[str, Any]) -> None:
    config = result["config"]
    print(
        f"\n{config['layers']} layers, T={config['tokens']}, {config['dtype']}, "
        f"{config['device']}; weights {result['weight_bytes'] / 2**30:.2f} GiB; explain's "
        f"saliency recomputes layers: {result['explain_recomputes_layers']}"
    )
    header = f"{'step':40} {'seconds':>9} {'x plain fwd':>12} {'peak above weights':>19}"
    print(header)
    print("-" * len(header))
    for row in result["rows"]:
        print(
            f"{row['step']:40} {row['seconds']:>9.2f} {row['over_plain_forward']:>12.2f} "
            f"{row['peak_above_weights_bytes'] / 2**30:>15.2f} GiB"
        )


def markdown_table(runs: list[dict[str, Any]]) -> str:
    """The committed runs as one markdown table (for bench/RESULTS.md)."""
    lines = [
        "| device | layers | T | dtype | step | seconds | × plain forward | peak above weights |",
        "|---|---:|---:|---|---|---:|---:|---:|",
    ]
    for run in runs:
        config = run["config"]
        for row in run["rows"]:
            lines.append(
                f"| {config['device']} | {config['layers']} | {config['tokens']} | "
                f"{config['dtype']} | {row['step']} | {row['seconds']:.2f} | "
                f"{row['over_plain_forward']:.2f} | "
                f"{row['peak_above_weights_bytes'] / 2**20:,.0f} MiB |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--layers", type=int, default=None, help="default: 32 (CUDA), 2 (CPU)")
    parser.add_argument("--tokens", type=int, default=None, help="default: 4096 (CUDA), 1024")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    parser.add_argument("--out", type=Path, default=HERE / "out" / "scale.json")
    parser.add_argument(
        "--results", action="store_true", help="also write bench/results/bench_scale.json"
    )
    parser.add_argument(
        "--table",
        action="store_true",
        help="print bench/results/bench_scale.json as a markdown table and exit",
    )
    args = parser.parse_args(argv)
    if args.table:
        runs = json.loads((HERE / "results" / "bench_scale.json").read_text())["runs"]
        print(markdown_table(runs))
        return {"runs": runs}
    if args.device == "cpu" and any(os.environ.get(k) != v for k, v in _MALLOC_ENV.items()):
        if argv is None:  # re-execute so glibc returns freed blocks and RSS tracks live memory
            os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **_MALLOC_ENV})
        print("warning: run as a script for exact CPU figures (glibc settings)", flush=True)
    on_cuda = args.device.startswith("cuda")
    layers = args.layers or (32 if on_cuda else 2)
    tokens = args.tokens or (4096 if on_cuda else 1024)
    info = environment(args.device)
    result = run(layers, tokens, args.dtype, args.device)
    info["load_average_end"] = environment(args.device)["load_average"]
    result = {"environment": info, **result}
    print_table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    if args.results:
        print(f"wrote {record_result(result, HERE / 'results' / 'bench_scale.json')}")
    return result


def record_result(result: dict[str, Any], path: Path) -> Path:
    """Add ``result`` to the committed runs in ``path``, replacing a run of the same config.

    The file holds every run under ``runs``; its top level repeats the run closest to the
    target configuration (CUDA first, then most layers, then most tokens), so a reader that
    wants one run finds it there.
    """
    runs = json.loads(path.read_text())["runs"] if path.exists() else []
    key = ("device", "layers", "tokens", "dtype")
    runs = [run for run in runs if any(run["config"][k] != result["config"][k] for k in key)]
    runs = sorted([*runs, result], key=lambda run: tuple(str(run["config"][k]) for k in key))
    primary = max(
        runs,
        key=lambda run: (
            str(run["config"]["device"]).startswith("cuda"),
            run["config"]["layers"],
            run["config"]["tokens"],
        ),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**primary, "runs": runs}, indent=2) + "\n")
    return path


if __name__ == "__main__":
    main()
