"""Cost of ``attribution_graph`` on the CPU: seconds and peak memory per graph.

Cases (T = prompt tokens, BOS included):

* ``tiny-llama``: the bundled model (3 layers, hidden 64) with random TopK transcoders of
  width 1024 (k = 16), every active feature a node (``max_features=None``);
* ``8b-width``: a random 4-layer LLaMA of Llama-3.1-8B's width (hidden 4096, 32 heads on 8
  kv heads, intermediate 14336) with a 32000-token vocabulary (the unembedding only feeds the
  logit nodes), float32, with random TopK transcoders of width 16384 (k = 64): model 4.5 GB
  and transcoders 2.1 GB, ~7 GB before the graph. Rows for all 4 x T x 64 active features
  would take hours on 2 cores, so it keeps ``max_features=256`` (circuit-tracer's
  ``max_feature_nodes``), ranked as rows come in.

Each case runs in a fresh process: build the model and transcoders, reset the resident
high-water mark (``/proc/self/clear_refs``), build one graph, report wall and CPU seconds,
the graph's own phase timings, and the peak resident memory above what was resident before
(the model's weights are not counted; the graph's arrays are).

    python bench/bench_graphs.py --results     # ~10 min on 2 cores
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from _results import add_output_arguments, environment, write  # noqa: E402


def _case(case: str, tokens: int, width: int, k: int, max_features: int | None) -> dict[str, Any]:
    batch = 64 if case == "tiny-llama" else 32
    return {"case": case, "tokens": tokens, "width": width, "k": k,
            "max_features": max_features, "batch": batch}  # fmt: skip


CASES = [
    _case("tiny-llama", 32, 1024, 16, None),
    _case("tiny-llama", 128, 1024, 16, None),
    _case("8b-width", 32, 16384, 64, 256),
    _case("8b-width", 128, 16384, 64, 256),
]
EIGHT_B = {
    "hidden_size": 4096,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "intermediate_size": 14336,
    "num_hidden_layers": 4,
    "vocab_size": 32000,
}


def _status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _model(case: str) -> Any:
    import torch

    from llmasos_widgets import load_model
    from llmasos_widgets.models import as_explainable

    if case == "tiny-llama":
        return load_model("tiny-llama", device="cpu")
    from transformers import LlamaConfig, LlamaForCausalLM

    from tests._tokenizers import WORD_SPECIALS, word_level_tokenizer

    torch.manual_seed(0)
    config = LlamaConfig(**EIGHT_B, max_position_embeddings=256, attn_implementation="sdpa")
    with torch.no_grad():
        hf_model = LlamaForCausalLM(config).eval()
    words = [f"w{i}" for i in range(EIGHT_B["vocab_size"] - len(WORD_SPECIALS))]
    return as_explainable(hf_model, word_level_tokenizer([*WORD_SPECIALS, *words]))


def _transcoders(model: Any, width: int, k: int) -> list[Any]:
    import torch

    from llmasos_widgets.features import Transcoder, TranscoderConfig

    torch.manual_seed(1)
    hidden = model.config.hidden_size
    configs = [
        TranscoderConfig(
            d_in=hidden, d_transcoder=width, d_out=hidden, layer=layer, activation="topk", k=k
        )
        for layer in range(model.config.num_hidden_layers)
    ]
    return [Transcoder(config) for config in configs]


def _prompt(model: Any, tokens: int) -> str:
    """``tokens - 1`` words (BOS makes ``tokens``): the bundled language's words, cycled, or
    random words of the 8B-width model's vocabulary."""
    import random

    vocabulary = [t for t in model.tokenizer.get_vocab() if t.strip() and not t.startswith("<")]
    rng = random.Random(0)
    return " ".join(rng.choice(sorted(vocabulary)) for _ in range(tokens - 1))


def _one_case(spec: dict[str, Any], queue: Any) -> None:
    import torch

    from llmasos_widgets.graphs import attribution_graph

    torch.set_num_threads(torch.get_num_threads())
    model = _model(spec["case"])
    transcoders = _transcoders(model, spec["width"], spec["k"])
    text = _prompt(model, spec["tokens"])
    n_tokens = int(model.encode(text).shape[1])
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    before = _status_bytes("VmRSS")
    wall, cpu = time.perf_counter(), time.process_time()
    graph = attribution_graph(
        model, transcoders, text, max_features=spec["max_features"], batch_size=spec["batch"]
    )
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    queue.put({
        **spec,
        "tokens": n_tokens,
        "hidden": model.config.hidden_size,
        "layers": model.config.num_hidden_layers,
        "wall_s": wall,
        "cpu_s": cpu,
        "phases_s": graph.metadata["seconds"],
        "active_features": graph.metadata["active_features"],
        "feature_nodes": len(graph.nodes_of("feature")),
        "nodes": graph.n_nodes,
        "logit_nodes": len(graph.nodes_of("logit")),
        "kept_nodes": int(graph.node_mask.sum()),
        "kept_edges": int(graph.edge_mask.sum()),
        "resident_before_bytes": before,
        "peak_above_before_bytes": _status_bytes("VmHWM") - before,
        "adjacency_bytes": int(graph.adjacency.nbytes),
    })  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="all", help="'all' or comma-separated case names")
    add_output_arguments(parser, "bench_graphs")
    args = parser.parse_args(argv)
    env = environment()
    context = multiprocessing.get_context("spawn")
    rows = []
    for spec in CASES:
        if args.cases != "all" and spec["case"] not in args.cases.split(","):
            continue
        queue = context.Queue()
        process = context.Process(target=_one_case, args=(spec, queue))
        process.start()
        row = queue.get()
        process.join()
        rows.append(row)
        print(
            f"{row['case']:>10} T={row['tokens']:>3}: {row['wall_s']:7.1f} s wall, "
            f"{row['cpu_s']:7.1f} s CPU, peak +{row['peak_above_before_bytes'] / 2**30:.2f} GiB, "
            f"{row['feature_nodes']}/{row['active_features']} features, {row['nodes']} nodes"
        )
    write(
        "bench_graphs",
        environment=env,
        config={"cases": CASES, "eight_b": EIGHT_B, "dtype": "float32", "device": "cpu"},
        figures={"rows": rows},
        out=args.out,
        results=args.results,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
