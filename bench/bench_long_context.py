"""Kernel side of long-context attention views (issue 11): bytes and compute per view.

For T in TOKENS at LLaMA-2-7B attention shape (32 heads, head dim 128; synthetic seeded q/k
in float32 with one planted cell ~20k tokens back, tests/_long_context.py), ONE layer: a
view's cost does not depend on which layer it shows, so per-view figures need only one.

  * first view: one head's whole pattern asked at 512 x 512 (``view`` message of
    widgets/_pattern_views.py, the real wire bytes; the kernel caps it at 512 kB), cold: one
    pass gives the row normalisers and the pooled values; *again*: the same view with the
    normalisers kept (a later visit of the head);
  * zoom: a region of 1/8 x 1/8 of the pattern around the planted cell at 512 x 512, warm;
  * detail: the 64 x 64 exact cells around it (checked against the exact row);
  * layer: all 32 heads of a layer side by side at 128 x 128 each (measured where T <= 4096;
    above, 32 x one head's 128 x 128 panel, said so);
  * first render: the AttentionWidget's state (32 layers x 32 heads, tokens, summaries; as
    ipywidgets serializes it, without the JS bundle) + the first view.

Today's figures side by side: one head's whole quantized pattern (``encode_pattern``) at
T <= 4096 (at 32k a head's float32 pattern is 4 GB: arithmetic, not run), and BertViz's
(bench/results/bench_widget_browser_bertviz.json). The previous kernel's figures (two passes:
normalisers, then pooling) are carried from the last committed JSON of that kernel
(``previous``). Bytes of the widget state are counted as jupyter_client packs them (UTF-8 JSON).

    python bench/bench_long_context.py [--tokens 1024 4096 ...] [--threads N] [--results]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from _results import RESULTS, add_output_arguments, environment, write  # noqa: E402

from llmasos_widgets.widgets._base import encode_pattern  # noqa: E402
from llmasos_widgets.widgets._pattern_views import ViewRequest, view_message  # noqa: E402
from tests._long_context import planted_explanation  # noqa: E402

TOKENS = (1024, 4096, 8192, 32768)
HEADS, HEAD_DIM, LAYERS = 32, 128, 32
VIEW = (512, 512)
PANEL = (128, 128)
TARGETS = {"first_render_bytes": 1_000_000, "view_bytes": 512_000, "layer_bytes": 4_000_000}


KERNEL = "one pass (normalisers and pooled values from the same scores)"


def message_bytes(content: dict[str, Any], buffers: list[bytes]) -> int:
    return len(json.dumps(content).encode()) + sum(len(b) for b in buffers)


def previous_figures() -> dict[str, Any] | None:
    """The last committed run of the previous kernel (two passes), to show side by side."""
    path = RESULTS / "bench_long_context.json"
    if not path.exists():
        return None
    old = json.loads(path.read_text())
    if old["config"].get("kernel") == KERNEL:
        return old.get("previous")
    return {
        "kernel": "two passes (normalisers over key tiles, then pooling)",
        "date_utc": old["environment"]["date_utc"],
        "load_average_start": old["environment"]["load_average_start"],
        "torch_threads": old["config"]["torch_threads"],
        "rows": {
            str(r["tokens"]): {
                "first_view": r["first_view"],
                "zoom": r["zoom"],
                "first_render_bytes": r["first_render"]["bytes"],
            }
            for r in old["rows"]
        },
    }


def timed_view(explanation: Any, **request: Any) -> tuple[float, int, dict[str, Any], list[bytes]]:
    start = time.perf_counter()
    content, buffers = view_message(
        explanation, ViewRequest(request_id=0, layer=0, reduce="max", **request)
    )
    return time.perf_counter() - start, message_bytes(content, buffers), content, buffers


def planted_cell(n_tokens: int) -> tuple[int, int]:
    query = n_tokens - 100
    return query, max(0, query - 20_000) if n_tokens > 20_100 else n_tokens // 4


def around(center: int, span: int, n_tokens: int) -> tuple[int, int]:
    start = min(max(0, center - span // 2), n_tokens - span)
    return start, start + span


def widget_state_bytes(n_tokens: int) -> int:
    """AttentionWidget state at (32 layers, 32 heads, T) without the bundle, as sent."""
    from llmasos_widgets.widgets import AttentionWidget

    explanation = planted_explanation(n_tokens, LAYERS, HEADS, dim=16, share_layers=True)
    widget = AttentionWidget(explanation)
    try:
        return wire_state_bytes(widget)
    finally:
        widget.close()


def wire_state_bytes(widget: Any) -> int:
    """The widget's state (no bundle) as jupyter_client packs it: UTF-8 JSON + buffers."""
    from ipywidgets.widgets.widget import _remove_buffers
    from jupyter_client.session import json_packer

    state, _, buffers = _remove_buffers(widget.get_state())
    state.pop("_esm", None)
    state.pop("_css", None)
    return len(json_packer(state)) + sum(len(memoryview(b).cast("B")) for b in buffers)


def run_one(n_tokens: int) -> dict[str, Any]:
    query, key = planted_cell(n_tokens)
    explanation = planted_explanation(
        n_tokens, 1, HEADS, dim=HEAD_DIM, planted=[(0, 0, query, key)]
    )
    whole = (0, n_tokens)
    first_s, first_bytes, first_content, _ = timed_view(
        explanation, heads=(0,), rows=whole, cols=whole, shape=VIEW
    )
    again_s, _, _, _ = timed_view(explanation, heads=(0,), rows=whole, cols=whole, shape=VIEW)
    span = max(64, n_tokens // 8)
    zoom_rows, zoom_cols = around(query, span, n_tokens), around(key, span, n_tokens)
    zoom_s, zoom_bytes, _, _ = timed_view(
        explanation, heads=(0,), rows=zoom_rows, cols=zoom_cols, shape=VIEW
    )
    detail_rows, detail_cols = around(query, 64, n_tokens), around(key, 64, n_tokens)
    detail_s, detail_bytes, content, _ = timed_view(
        explanation, heads=(0,), rows=detail_rows, cols=detail_cols, shape=VIEW
    )
    detail = explanation.pooled_attention(0, 0, rows=detail_rows, cols=detail_cols, shape=VIEW)
    from llmasos_widgets.tracing import attention_pattern

    q, k = explanation.queries[0], explanation.keys[0]
    row = attention_pattern(q[:1, query : query + 1], k[:1, : query + 1], explanation.specs[0])
    exact_weight = float(row[0, 0, key])
    at_cell = float(detail.values[query - detail_rows[0], key - detail_cols[0]])
    panel_s, panel_bytes, _, _ = timed_view(
        explanation, heads=(0,), rows=whole, cols=whole, shape=PANEL
    )
    layer: dict[str, Any] = {"how": "32 x one head's panel (not computed: CPU time)"}
    layer["bytes"] = HEADS * panel_bytes
    if n_tokens <= 4096:
        layer_s, layer_bytes, _, _ = timed_view(
            explanation,
            heads=tuple(range(HEADS)),
            rows=whole,
            cols=whole,
            shape=PANEL,
            combine="each",
        )
        layer = {"how": "measured", "bytes": layer_bytes, "seconds": round(layer_s, 2)}
    today: dict[str, Any] = {"float32_pattern_bytes": 4 * n_tokens * n_tokens}
    if n_tokens <= 4096:
        pattern = explanation.attention(0, 0)
        start = time.perf_counter()
        meta, buffers = encode_pattern(pattern)
        today["encode_seconds"] = round(time.perf_counter() - start, 3)
        today["head_bytes"] = message_bytes(meta, buffers)
    state = widget_state_bytes(n_tokens)
    return {
        "tokens": n_tokens,
        "planted": [query, key],
        "first_view": {"seconds": round(first_s, 3), "bytes": first_bytes,
                       "blocks": [first_content["n_rows"], first_content["n_cols"]],
                       "again_seconds": round(again_s, 3)},
        "zoom": {"rows": list(zoom_rows), "cols": list(zoom_cols), "seconds": round(zoom_s, 3),
                 "bytes": zoom_bytes},
        "detail": {"rows": list(detail_rows), "cols": list(detail_cols),
                   "exact": bool(content["exact"]),
                   "seconds": round(detail_s, 3), "bytes": detail_bytes,
                   "weight": at_cell, "exact_weight": exact_weight},
        "panel": {"shape": list(PANEL), "seconds": round(panel_s, 3), "bytes": panel_bytes},
        "layer": layer,
        "first_render": {"widget_state_bytes": state, "bytes": state + first_bytes},
        "today": today,
        "qk_bytes_per_layer": int(2 * HEADS * n_tokens * HEAD_DIM * 2),  # bf16 q + k (MHA)
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, nargs="+", default=list(TOKENS))
    parser.add_argument("--threads", type=int, help="torch threads for this run")
    add_output_arguments(parser, "bench_long_context")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    previous = previous_figures()
    env = environment()
    rows = []
    for n_tokens in args.tokens:
        row = run_one(n_tokens)
        rows.append(row)
        print(
            f"T={n_tokens:>6}: first view {row['first_view']['seconds']:7.2f} s "
            f"{row['first_view']['bytes']:>9,} B | zoom {row['zoom']['seconds']:6.2f} s "
            f"{row['zoom']['bytes']:>9,} B | detail {row['detail']['seconds']:5.2f} s "
            f"{row['detail']['bytes']:>7,} B | layer {row['layer']['bytes']:>10,} B | first "
            f"render {row['first_render']['bytes']:>9,} B | today/head "
            f"{row['today'].get('head_bytes', '-')}",
            flush=True,
        )
    bertviz = json.loads((RESULTS / "bench_widget_browser_bertviz.json").read_text())
    write(
        "bench_long_context",
        environment=env,
        out=args.out,
        results=args.results,
        config={
            "tokens": args.tokens,
            "heads": HEADS,
            "head_dim": HEAD_DIM,
            "layers_computed": 1,
            "view": list(VIEW),
            "panel": list(PANEL),
            "dtype": "float32 (CPU)",
            "data": "tests/_long_context.planted_explanation, seed 0",
            "torch_threads": torch.get_num_threads(),
            "kernel": KERNEL,
        },
        figures={
            "targets": TARGETS,
            "rows": rows,
            "previous": previous,
            "bertviz": [
                {
                    "layers": r["layers"],
                    "heads": r["heads"],
                    "tokens": r["tokens"],
                    "head_view_html_bytes": r["bertviz"]["head_view"]["html_bytes"],
                    "how": r["bertviz"]["head_view"]["html_bytes_how"],
                }
                for r in bertviz["rows"]
            ],
        },
    )


if __name__ == "__main__":
    np.set_printoptions(suppress=True)
    main()
