"""The GPU check of issue 12: one script, one JSON (a budget of 8 minutes on one H200).

(a) trace() overhead at LLaMA-2-7B shape, T=4096, bf16: traced / plain sdpa forward
    (target <= 1.05), repetitions interleaved as in bench/bench_trace.py;
(b) explain(text) with gradient saliency at Llama-3.1-8B shape, T=4096, bf16: time and peak
    memory above the weights (target <= 3 GB), from bench/bench_scale.py;
(c) attribute(gradient) and integrated gradients (32 steps; at the embeddings, then at every
    site while the time budget lasts) at Llama-3.1-8B shape, T=1024: time and peak memory;
(d) a small model split between ``cpu`` and ``cuda:0`` with ``device_map``: explain,
    attribute and the AttentionWidget state equal those of the model on one device;
(e) the bytes of the AttentionWidget's first state for the explanation of (b);
(f) T = 32k at LLaMA-2-7B shape (``--long-tokens``): explain with captures on the card, the
    widget's first render message and one head at view resolution (bench/_gpu_long_context.py).

Random-init weights throughout (no hub). Works on torch >= 2.4 and transformers >= 5.17;
(d) needs accelerate and (d)/(e) the widget stack (anywidget, ipywidgets: install their
wheels on a machine without them); a part that cannot run records why under ``errors`` and
the others still run. Integrated gradients at every
site in (c) runs only if less than ``--budget-s`` (300 s) has passed since the start.

    python bench/gpu_check.py                                   # on the GPU machine
    python bench/gpu_check.py --device cpu --layers 2 --tokens 64   # CPU smoke test (~30 s)

On the CPU the shapes keep their head structure at a small width (hidden 256) unless
``--full-width``; the CPU run checks the script, not the figures.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the sibling benches
sys.path.insert(1, str(HERE.parent))  # a checkout without `pip install -e .`

import bench_scale  # noqa: E402
import bench_trace  # noqa: E402
from _gpu_long_context import long_context  # noqa: E402

from llmasos_widgets.attribution import attribute  # noqa: E402
from llmasos_widgets.explanation import explain  # noqa: E402
from llmasos_widgets.models import as_explainable  # noqa: E402

# bench_trace's LLaMA-2-7B shape; the layer count is each check's own
LLAMA_2_7B: dict[str, Any] = {
    **{
        key: value
        for key, value in bench_trace.SHAPES["7b"].items()
        if key not in ("default_seq_lens", "num_hidden_layers")
    },
    "tie_word_embeddings": False,
}
# the same head structure at CPU size: (heads, kv heads, head dim) as in the real shapes
SMALL_WIDTH: dict[str, dict[str, Any]] = {
    "7b": {
        **LLAMA_2_7B,
        "hidden_size": 256,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "head_dim": 64,
        "intermediate_size": 688,
        "vocab_size": 1000,
    },
    "8b": {
        **bench_scale.LLAMA_3_8B,
        "hidden_size": 256,
        "num_attention_heads": 4,
        "num_key_value_heads": 1,
        "head_dim": 64,
        "intermediate_size": 896,
        "vocab_size": 2004,
    },
}
SPLIT_SHAPE: dict[str, Any] = {**SMALL_WIDTH["8b"], "num_hidden_layers": 4}
TRACE_TARGET = 1.05
MEMORY_TARGET = bench_scale.TARGET_BYTES


def _free(device: str) -> None:
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def _shape(name: str, args: argparse.Namespace) -> dict[str, Any]:
    full = {"7b": LLAMA_2_7B, "8b": bench_scale.LLAMA_3_8B}[name]
    return full if args.device.startswith("cuda") or args.full_width else SMALL_WIDTH[name]


def trace_overhead(args: argparse.Namespace) -> dict[str, Any]:
    """(a): plain and traced forwards interleaved; medians and minima of ``args.reps``."""
    model = bench_scale.build_model(
        args.layers or 32, bench_scale.DTYPES["bf16"], args.device, shape=_shape("7b", args)
    )
    tokens = args.tokens or 4096
    generator = torch.Generator().manual_seed(tokens)
    ids = torch.randint(0, model.config.vocab_size, (1, tokens), generator=generator)
    ids = ids.to(args.device)
    times: dict[str, list[float]] = {"plain": [], "traced": []}
    kept: dict[str, int] = {}
    for rep in range(1 + args.reps):  # the first repetition warms up
        for mode in times:
            seconds, mode_kept = bench_trace.run_once(model, mode, ids, args.device)
            kept.update(mode_kept)
            if rep > 0:
                times[mode].append(seconds)
    median = {mode: statistics.median(values) for mode, values in times.items()}
    result = {
        "layers": model.config.num_hidden_layers,
        "tokens": tokens,
        "hidden_size": model.config.hidden_size,
        "times_s": times,
        "median_s": median,
        "traced_over_plain": median["traced"] / median["plain"],
        "traced_over_plain_min": min(times["traced"]) / min(times["plain"]),
        "target": TRACE_TARGET,
        **kept,
    }
    result["meets_target"] = result["traced_over_plain"] <= TRACE_TARGET
    return result


def explain_at_scale(args: argparse.Namespace) -> tuple[dict[str, Any], Any]:
    """(b): bench_scale's steps; returns the explanation too, for (e)."""
    layers, tokens = args.layers or 32, args.tokens or 4096
    shape = _shape("8b", args)
    model = bench_scale.build_model(layers, bench_scale.DTYPES["bf16"], args.device, shape=shape)
    explainable = as_explainable(model, bench_scale.word_tokenizer())
    text = bench_scale.sample_text(tokens)
    ids = explainable.encode(text)

    def forward() -> None:
        with torch.no_grad():
            model(input_ids=ids, use_cache=False, logits_to_keep=1)

    forward()
    steps = {
        "plain forward": bench_scale.measure(forward, args.device),
        "explain, no saliency": bench_scale.measure(
            lambda: explain(explainable, text, saliency=False), args.device
        ),
        "explain + gradient saliency": bench_scale.measure(
            lambda: explain(explainable, text, saliency=True), args.device, keep_result=True
        ),
    }
    explanation = steps["explain + gradient saliency"].pop("result")
    plain = steps["plain forward"]["seconds"]
    rows = {
        name: {
            "seconds": step["seconds"],
            "over_plain_forward": step["seconds"] / plain,
            "peak_above_weights_bytes": step["peak_bytes"],
        }
        for name, step in steps.items()
    }
    peak = rows["explain + gradient saliency"]["peak_above_weights_bytes"]
    result = {
        "layers": layers,
        "tokens": tokens,
        "hidden_size": shape["hidden_size"],
        "weight_bytes": bench_scale.weight_bytes(model),
        "steps": rows,
        "qk_bytes": sum(t.nbytes for t in (*explanation.queries, *explanation.keys)),
        "qk_device": str(explanation.queries[0].device),
        "target_bytes": MEMORY_TARGET,
        "meets_target": peak <= MEMORY_TARGET,
    }
    return result, explanation


def attribution_at_scale(args: argparse.Namespace, started: float) -> dict[str, Any]:
    """(c): gradient, then integrated gradients at the embeddings and (budget permitting) at
    every site, T=1024."""
    layers = args.layers or 32
    tokens = args.attr_tokens or (1024 if args.device.startswith("cuda") else args.tokens or 64)
    model = bench_scale.build_model(
        layers, bench_scale.DTYPES["bf16"], args.device, shape=_shape("8b", args)
    )
    explainable = as_explainable(model, bench_scale.word_tokenizer())
    text = bench_scale.sample_text(tokens, seed=1)
    runs: dict[str, Callable[[], Any]] = {
        "gradient": lambda: attribute(explainable, text, method="gradient"),
        "integrated_gradients, embeddings, 32 steps": lambda: attribute(
            explainable, text, method="integrated_gradients", n_steps=32, layers="embeddings"
        ),
        "integrated_gradients, all sites, 32 steps": lambda: attribute(
            explainable, text, method="integrated_gradients", n_steps=32
        ),
    }
    attribute(explainable, text, method="gradient")  # warm-up
    result: dict[str, Any] = {"layers": layers, "tokens": tokens, "runs": {}, "skipped": []}
    for name, run in runs.items():
        if name.endswith("all sites, 32 steps") and time.perf_counter() - started > args.budget_s:
            result["skipped"].append(f"{name}: the time budget ({args.budget_s} s) was spent")
            continue
        step = bench_scale.measure(run, args.device, keep_result=True)
        saliency = step.pop("result")
        step["max_abs_convergence_delta"] = (
            None
            if saliency.convergence_delta is None
            else float(np.abs(saliency.convergence_delta).max())
        )
        result["runs"][name] = step
    return result


def _split_map(n_layers: int, first: str, second: str) -> dict[str, str]:
    """Embeddings and the first half of the layers on ``first``, the rest on ``second``."""
    device_map = {"model.embed_tokens": first, "model.rotary_emb": first}
    for layer in range(n_layers):
        device_map[f"model.layers.{layer}"] = first if layer < n_layers // 2 else second
    device_map.update({"model.norm": second, "lm_head": second})
    return device_map


def _close(a: np.ndarray, b: np.ndarray, tolerance: float) -> dict[str, Any]:
    diff = float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max())
    return {"max_abs_diff": diff, "equal": diff <= tolerance}


def split_model(args: argparse.Namespace) -> dict[str, Any]:
    """(d): the same small float32 model on one device and split with ``device_map``.

    On CUDA the split is ``cpu`` + ``cuda:0``; on the CPU it is ``cpu`` + ``disk`` (accelerate
    keeps those weights on ``meta`` and loads them per call), which runs the same dispatch
    hooks without a GPU.
    """
    from transformers import LlamaForCausalLM

    on_cuda = args.device.startswith("cuda")
    second = "cuda:0" if on_cuda else "disk"
    tolerance = 1e-4
    text = bench_scale.sample_text(48, seed=2)
    tokenizer = bench_scale.word_tokenizer()
    source = bench_scale.build_model(4, torch.float32, "cpu", shape=SPLIT_SHAPE)
    results: dict[str, Any] = {"devices": ["cpu", second], "tolerance": tolerance}
    with tempfile.TemporaryDirectory() as folder, tempfile.TemporaryDirectory() as offload:
        source.save_pretrained(folder)
        single = LlamaForCausalLM.from_pretrained(folder, dtype=torch.float32)
        single = single.to("cuda:0" if on_cuda else "cpu").eval()
        split = LlamaForCausalLM.from_pretrained(
            folder,
            dtype=torch.float32,
            device_map=_split_map(4, "cpu", second),
            offload_folder=offload,
        ).eval()
        results["parameter_devices"] = sorted({str(p.device) for p in split.parameters()})
        models = {
            "single": as_explainable(single, tokenizer),
            "split": as_explainable(split, tokenizer),
        }
        explained = {name: explain(model, text, saliency=True) for name, model in models.items()}
        # the lens is read lazily through the model's head: read it while the offloaded
        # weights exist (the offload folder goes with this block)
        lens_ids = {name: e.lens_token_ids for name, e in explained.items()}
        attributed = {
            name: attribute(model, text, method="gradient") for name, model in models.items()
        }
        with bench_scale.layer_recomputation(True):  # as at real size, through the dispatch
            recomputed = attribute(models["split"], text, method="input_x_gradient")
        plain = attribute(models["single"], text, method="input_x_gradient")
    one, two = explained["single"], explained["split"]
    checks = {
        "explain_top_ids_equal": bool(np.array_equal(one.top_token_ids, two.top_token_ids)),
        "explain_lens_ids_equal": bool(np.array_equal(lens_ids["single"], lens_ids["split"])),
        "explain_top_probs": _close(one.top_probs, two.top_probs, tolerance),
        "explain_summaries": {
            name: _close(one.head_summaries[name], two.head_summaries[name], tolerance)
            for name in one.head_summaries
        },
        "explain_saliency": _close(one.saliency.scores, two.saliency.scores, tolerance),
        "attribute_gradient": _close(
            attributed["single"].scores, attributed["split"].scores, tolerance
        ),
        "attribute_input_x_gradient_layers_recomputed": _close(
            plain.scores, recomputed.scores, tolerance
        ),
    }
    try:
        from llmasos_widgets.widgets import AttentionWidget

        states = {name: _widget_state(AttentionWidget(e)) for name, e in explained.items()}
        checks["widget_state_keys_equal"] = states["single"].keys() == states["split"].keys()
        checks["widget_summaries"] = _close(
            states["single"]["summaries"], states["split"]["summaries"], tolerance
        )
    except ImportError as error:
        results["widget_error"] = f"{type(error).__name__}: {error}"
    results["checks"] = checks
    results["all_equal"] = all(_flags(checks))
    return results


def _flags(checks: dict[str, Any]) -> list[bool]:
    flags: list[bool] = []
    for value in checks.values():
        if isinstance(value, bool):
            flags.append(value)
        elif "equal" in value:
            flags.append(bool(value["equal"]))
        else:
            flags.extend(_flags(value))
    return flags


def _widget_state(widget: Any) -> dict[str, Any]:
    """The widget's state with its numeric buffers flattened into one array (``summaries``)."""
    from ipywidgets.widgets.widget import _remove_buffers

    state, _, buffers = _remove_buffers(widget.get_state())
    numbers = [np.frombuffer(memoryview(b).cast("B"), np.float32) for b in buffers]
    return {
        **{k: v for k, v in state.items() if k not in ("_esm", "_css")},
        "summaries": np.concatenate(numbers) if numbers else np.zeros(0, np.float32),
    }


def widget_first_state(explanation: Any) -> dict[str, Any]:
    """(e): bytes of the AttentionWidget's first state (JSON + buffers, without the bundle)."""
    from bench_widget import first_render_bytes

    from llmasos_widgets.widgets import AttentionWidget

    widget = AttentionWidget(explanation)
    sizes = first_render_bytes(widget)
    return {
        "layers": explanation.n_layers,
        "heads": explanation.n_heads,
        "tokens": explanation.n_tokens,
        **sizes,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--layers", type=int, default=None, help="every model (default: 32)")
    parser.add_argument("--tokens", type=int, default=None, help="(a) and (b) (default: 4096)")
    parser.add_argument("--attr-tokens", type=int, default=None, help="(c) (default: 1024)")
    parser.add_argument(
        "--long-tokens", type=int, default=None, help="(f) (default: 32768; 256 on the CPU)"
    )
    parser.add_argument("--reps", type=int, default=5, help="timed repetitions in (a)")
    parser.add_argument("--budget-s", type=float, default=300.0, help="skip optional runs after")
    parser.add_argument("--full-width", action="store_true", help="real widths on the CPU too")
    parser.add_argument("--out", type=Path, default=HERE / "out" / "gpu_check.json")
    parser.add_argument(
        "--results", action="store_true", help="also write bench/results/gpu_check.json"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    report: dict[str, Any] = {
        "environment": bench_scale.environment(args.device),
        "arguments": {k: str(v) for k, v in vars(args).items()},
        "errors": {},
    }
    try:
        import accelerate

        report["environment"]["accelerate"] = accelerate.__version__
    except ImportError:
        report["environment"]["accelerate"] = None
    explanation = None

    def part(key: str, fn: Callable[[], Any]) -> Any:
        print(f"== {key}", flush=True)
        start = time.perf_counter()
        try:
            value = fn()
        except Exception as error:  # record and go on: one JSON with every part that ran
            report["errors"][key] = "".join(traceback.format_exception_only(error)).strip()
            traceback.print_exc()
            value = None
        report.setdefault("part_seconds", {})[key] = time.perf_counter() - start
        _free(args.device)  # the part's model is gone with its frame
        return value

    report["a_trace_overhead"] = part("a_trace_overhead", lambda: trace_overhead(args))
    scale = part("b_explain", lambda: explain_at_scale(args))
    if scale is not None:
        report["b_explain"], explanation = scale
    report["c_attribution"] = part("c_attribution", lambda: attribution_at_scale(args, started))
    report["d_split"] = part("d_split", lambda: split_model(args))
    if explanation is not None:
        report["e_widget"] = part("e_widget", lambda: widget_first_state(explanation))
    explanation = None  # (f) needs the memory
    _free(args.device)
    report["f_long_context"] = part(
        "f_long_context", lambda: long_context(args, _shape("7b", args))
    )
    report["total_seconds"] = time.perf_counter() - started
    outputs = [args.out] + ([HERE / "results" / "gpu_check.json"] if args.results else [])
    text = json.dumps(report, indent=2, default=str) + "\n"
    for path in outputs:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path}")
    print(json.dumps({k: report.get(k) for k in ("errors", "total_seconds")}, indent=2))
    return report


if __name__ == "__main__":
    main()
