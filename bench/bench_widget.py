"""Bytes the AttentionWidget sends to the browser, measured from the real widget.

For (layers, heads, tokens) in CONFIGS, with a synthetic Explanation-like object (no model):
  * first render: the widget state as ipywidgets serializes it (JSON + binary buffers), with
    and without the JS/CSS bundle (sent once per widget);
  * per selected head: the ``pattern`` message (JSON + buffers) for synthetic patterns that
    look like attention (sink on the first token, previous-token and a few sharp keys), and
    for a worst case of diffuse random attention;
  * encode time per head (quantize + pack + deflate). (The kernel's hover flow is computed
    from q/k, which these stand-ins lack: bench_long_context_browser.py times hovers.)
Prints a table and writes bench/out/bench_widget.json; ``--results`` also writes
bench/results/bench_widget.json (the figures bench/tables.py publishes). Target: first
render < 1 MB at (32, 32, 2048).

    python bench/bench_widget.py --results [--quick]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time
from typing import Any

import numpy as np
from ipywidgets.widgets.widget import _remove_buffers

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import _results

try:
    from llmasos_widgets.widgets import AttentionWidget
    from llmasos_widgets.widgets._base import encode_pattern
except ModuleNotFoundError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
    from llmasos_widgets.widgets import AttentionWidget
    from llmasos_widgets.widgets._base import encode_pattern

CONFIGS = [(8, 8, 512), (32, 32, 512), (32, 32, 2048)]
FIRST_RENDER_TARGET = 1_000_000


class SyntheticExplanation:
    """Explanation-shaped data; ``style`` picks how attention-like the patterns are."""

    def __init__(self, n_layers: int, n_heads: int, n_tokens: int, style: str = "typical"):
        self.tokens = ["<bos>", *(f"▁w{i % 997}" for i in range(1, n_tokens))]
        self.token_ids = np.arange(n_tokens, dtype=np.int64)
        self.n_layers, self.n_heads, self.style = n_layers, n_heads, style
        rng = np.random.default_rng(0)
        self.head_summaries = {
            name: rng.random((n_layers, n_heads), dtype=np.float32)
            for name in ("entropy", "previous_token", "first_token", "induction")
        }

    def attention(self, layer: int, head: int) -> np.ndarray:
        n = len(self.tokens)
        rng = np.random.default_rng(layer * 1000 + head)
        if self.style == "diffuse":
            scores = rng.normal(scale=1.0, size=(n, n)).astype(np.float32)
        else:
            scores = rng.normal(scale=1.0, size=(n, n)).astype(np.float32) - 4.0
            scores[:, 0] += 6.0  # attention sink
            rows = np.arange(1, n)
            scores[rows, rows - 1] += 5.0  # previous token
            sharp = rng.integers(0, np.arange(1, n + 1))  # one content key per query
            scores[np.arange(n), sharp] += 6.0
        scores[np.triu_indices(n, k=1)] = -np.inf
        scores -= scores.max(axis=1, keepdims=True)
        weights = np.exp(scores)
        return weights / weights.sum(axis=1, keepdims=True)


def first_render_bytes(widget: AttentionWidget) -> dict[str, int]:
    state, _, buffers = _remove_buffers(widget.get_state())
    bundle = len(state.pop("_esm", "").encode()) + len(state.pop("_css", "").encode())
    data = len(json.dumps(state).encode()) + sum(len(memoryview(b).cast("B")) for b in buffers)
    return {"data": data, "bundle": bundle, "total": data + bundle}


def pattern_bytes(widget: AttentionWidget, heads: list[int]) -> tuple[float, float]:
    sizes, seconds = [], []
    for head in heads:
        content, buffers = widget.pattern_message(0, head)
        sizes.append(len(json.dumps(content).encode()) + sum(len(b) for b in buffers))
        pattern = widget.explanation.attention(0, head)
        start = time.perf_counter()  # quantize + pack + deflate only, not the synthetic data
        encode_pattern(pattern)
        seconds.append(time.perf_counter() - start)
    return float(np.mean(sizes)), float(np.mean(seconds))


def run(configs: list[tuple[int, int, int]], heads_per_config: int) -> list[dict[str, Any]]:
    rows = []
    for n_layers, n_heads, n_tokens in configs:
        typical = AttentionWidget(SyntheticExplanation(n_layers, n_heads, n_tokens))
        diffuse = AttentionWidget(SyntheticExplanation(n_layers, n_heads, n_tokens, "diffuse"))
        heads = list(range(heads_per_config))
        typical_bytes, typical_s = pattern_bytes(typical, heads)
        diffuse_bytes, _ = pattern_bytes(diffuse, heads[:1])
        first = first_render_bytes(typical)
        rows.append(
            {
                "layers": n_layers,
                "heads": n_heads,
                "tokens": n_tokens,
                "first_render_bytes": first["total"],
                "first_render_data_bytes": first["data"],
                "bundle_bytes": first["bundle"],
                "pattern_dense_float32_bytes": 4 * n_tokens * n_tokens,
                "pattern_bytes_typical": round(typical_bytes),
                "pattern_bytes_diffuse": round(diffuse_bytes),
                "pattern_encode_seconds": round(typical_s, 4),
                "first_render_under_target": first["total"] < FIRST_RENDER_TARGET,
            }
        )
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    header = (
        f"{'L,H,T':>14} {'first render':>13} {'(data)':>10} {'head: typical':>14} "
        f"{'diffuse':>10} {'dense f32':>11} {'encode s':>9}"
    )
    print(header)
    for r in rows:
        print(
            f"{r['layers']:>4},{r['heads']:>3},{r['tokens']:>5} {r['first_render_bytes']:>13,} "
            f"{r['first_render_data_bytes']:>10,} {r['pattern_bytes_typical']:>14,} "
            f"{r['pattern_bytes_diffuse']:>10,} {r['pattern_dense_float32_bytes']:>11,} "
            f"{r['pattern_encode_seconds']:>9.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smallest config, one head")
    _results.add_output_arguments(parser, "bench_widget")
    args = parser.parse_args()
    environment = _results.environment()
    configs = CONFIGS[:1] if args.quick else CONFIGS
    heads = 1 if args.quick else 3
    rows = run(configs, heads_per_config=heads)
    print_table(rows)
    _results.write(
        "bench_widget",
        environment=environment,
        config={
            "configs": configs,
            "heads_per_config": heads,
            "patterns": "bench_widget.SyntheticExplanation (typical; diffuse = random scores)",
        },
        figures={"target": {"first_render_bytes_max": FIRST_RENDER_TARGET}, "rows": rows},
        out=args.out,
        results=args.results and not args.quick,
    )
    big = [r for r in rows if (r["layers"], r["heads"], r["tokens"]) == (32, 32, 2048)]
    if big and not big[0]["first_render_under_target"]:
        raise SystemExit(f"first render at (32, 32, 2048) is {big[0]['first_render_bytes']:,} B")


if __name__ == "__main__":
    main()
