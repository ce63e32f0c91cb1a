"""AttentionWidget at long context in a real browser (headless Chromium), issue 11 targets.

At (32 layers, 32 heads, T) for T in TOKENS (default 8192), on a planted Explanation
(tests/_long_context.py; every layer shares one layer's q/k, so memory stays small -- the
cost of a view does not depend on which layer it is):

  * first render: ``render()`` -> first frame painted (grid, virtualised strip, legends), and
    its bytes (widget state as ipywidgets serializes it + the JS/CSS bundle);
  * select a head -> painted (the median over ``--selects`` heads, each one's row normalisers
    not known yet, the first kept beside it): the selection traits set; the view sends
    ``request_view``, the live Python widget answers (``AttentionWidget._handle_custom_msg``,
    through Playwright's ``expose_function``: no Jupyter, but the real Python code and the
    real bytes), the reply is decoded and painted. Reported whole, and split into the
    kernel's compute and the rest;
  * zoom -> detail painted: the zoom-in button clicked -> the new region's view painted;
  * hover work p95: HOVERS pointerover events on token spans of the strip (each token scrolled
    into view first, not timed); work = handler + the frame's update, as in
    bench_widget_browser.py;
  * bytes per message: first render, one head's view, the zoomed view, a strip row.

Today's figures (whole quantized patterns, bench/results/bench_widget_browser.json) are shown
side by side in one table. Targets (issue 11, on these CPUs): first render <= 1 s,
select <= 300 ms, zoom <= 300 ms, hover work p95 <= 8 ms, first render <= 1 MB, one view
<= 512 kB.

    python bench/bench_long_context_browser.py [--tokens 8192 ...] [--hovers 40] [--results]
"""

from __future__ import annotations

import argparse
import base64
import json
import pathlib
import sys
import threading
import time
from typing import Any

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import _results  # noqa: E402
from _tables_format import size as fmt_bytes  # noqa: E402
from bench_long_context import wire_state_bytes  # noqa: E402
from bench_widget_browser import (  # noqa: E402
    HARNESS_JS,
    WIDGET_HTML,
    Files,
    message_bytes,
    publish_state,
)

from llmasos_widgets.widgets import AttentionWidget  # noqa: E402
from tests._chromium import launch_chromium  # noqa: E402
from tests._long_context import planted_explanation  # noqa: E402

NAME = "bench_long_context_browser"
STATIC = HERE.parent / "llmasos_widgets" / "static"
TARGETS = {
    "first_render_ms": 1000.0,
    "select_head_ms": 300.0,
    "zoom_ms": 300.0,
    "hover_work_p95_ms": 8.0,
    "first_render_bytes": 1_000_000,
    "view_bytes": 512_000,
}
FIRST_HEAD = 3
"""Selects go to heads 3, 4, ... of the middle layer (head 3 holds the planted cell)."""
LATENCY_AT_TOKENS = 8192
"""Issue 11 sets select/zoom/hover latency targets at (32, 32, 8192); bytes at any T <= 32k."""
KERNEL = "one pass (normalisers and pooled values from the same scores)"


def first_render_bytes(widget: AttentionWidget) -> dict[str, int]:
    """State as jupyter_client packs it (UTF-8 JSON + buffers) plus the JS/CSS bundle."""
    state = widget.get_state()
    bundle = len(state.get("_esm", "").encode()) + len(state.get("_css", "").encode())
    data = wire_state_bytes(widget)
    return {"data": data, "bundle": bundle, "total": data + bundle}


def previous_figures() -> dict[str, Any] | None:
    """The last committed run of the previous kernel (two passes), to show side by side."""
    path = _results.RESULTS / f"{NAME}.json"
    if not path.exists():
        return None
    old = json.loads(path.read_text())
    if old["config"].get("kernel") == KERNEL:
        return old.get("previous")
    return {
        "kernel": "two passes (normalisers over key tiles, then pooling)",
        "date_utc": old["environment"]["date_utc"],
        "load_average_start": old["environment"]["load_average_start"],
        "torch_threads": old["environment"]["torch_threads"],
        "rows": old["rows"],
    }


def other_cpus(cpu: str) -> list[dict[str, Any]]:
    """The committed runs on other CPUs, carried over: each CPU's figures stay side by side
    (the targets are met on one and not the other; see bench/RESULTS.md)."""
    path = _results.RESULTS / f"{NAME}.json"
    if not path.exists():
        return []
    old = json.loads(path.read_text())
    runs = [run for run in old.get("other_cpus", []) if run["environment"]["cpu"] != cpu]
    if old["environment"]["cpu"] != cpu:
        runs.append({k: old[k] for k in ("environment", "config", "rows")})
    return runs


# The static harness of bench_widget_browser.py (FakeModel, firstRender, quantile), with a
# model whose `send` reaches the live Python widget and whose replies arrive as msg:custom.
LIVE_JS = HARNESS_JS.replace("window.bench = {", "window.staticBench = {") + r"""
const b64 = (s) => { const bin = atob(s); const a = new Uint8Array(bin.length); for (let i = 0; i < bin.length; i++) a[i] = bin.charCodeAt(i); return new DataView(a.buffer); };
window.trips = [];
FakeModel.prototype.send = function (content) {
  this.sent.push(content);
  const trip = { type: content.type, sent: performance.now() };
  window.trips.push(trip);
  window.kernelSend(JSON.stringify(content)).then((replies) => {
    trip.replied = performance.now();
    for (const r of JSON.parse(replies)) this.emit("msg:custom", r.content, r.buffers.map(b64));
    trip.handled = performance.now();
  });
};
const lastView = (t0) => {
  const trip = [...window.trips].reverse().find((x) => x.type === "request_view" && x.replied);
  return trip ? { asked_ms: trip.sent - t0, replied_ms: trip.replied - t0 } : null;
};

let liveModel = null, liveHost = null, liveDispose = null;
async function liveLoad(prefix) {
  await load(prefix);
  liveModel = model;
}
async function liveRender() {
  liveHost = document.createElement("div");
  document.getElementById("host").appendChild(liveHost);
  await painted();
  const t0 = performance.now();
  liveDispose = widget.render({ model: liveModel, el: liveHost });
  const t1 = await painted();
  const strip = liveHost.querySelector('[data-testid="token-strip"]');
  return { ms: t1 - t0, strip_spans: strip.querySelectorAll(".llmw-token").length };
}
const matrix = () => liveHost.querySelector('[data-testid="pattern-matrix"]');
async function untilLoaded(previous) {
  for (;;) {
    const m = matrix();
    if (m && m.dataset.loadedRequest && m.dataset.loadedRequest !== previous) break;
    await frame();
  }
  return afterPaint();
}
async function selectHead(layer, head) {
  const previous = matrix()?.dataset.loadedRequest;
  await painted();
  const t0 = performance.now();
  liveModel.set("selected_layer", layer);
  liveModel.set("selected_heads", [head]);
  const t1 = await untilLoaded(previous);
  return { ms: t1 - t0, exact: matrix().dataset.exact, rows: matrix().dataset.nRows, trip: lastView(t0) };
}
async function zoomIn() {
  const previous = matrix().dataset.loadedRequest;
  await painted();
  const t0 = performance.now();
  liveHost.querySelector('[data-testid="zoom-in"]').click();
  const t1 = await untilLoaded(previous);
  return { ms: t1 - t0, region: [matrix().dataset.rows, matrix().dataset.cols], exact: matrix().dataset.exact, trip: lastView(t0) };
}
async function hoverStrip(count) {
  const n = liveModel.get("tokens").length;
  const strip = liveHost.querySelector('[data-testid="token-strip"]');
  const work = [], spans = [];
  for (let k = 0; k < count; k++) {
    const t = 1 + Math.floor(((k * 7919) % count) * (n - 2) / count + (k % 5));
    strip.dispatchEvent(new CustomEvent("llmw-reveal", { detail: t }));
    await painted();
    const span = strip.querySelector(`[data-testid="token-${t}"]`);
    let frameStart = 0;
    requestAnimationFrame(() => { frameStart = performance.now(); });
    const t0 = performance.now();
    span.dispatchEvent(new PointerEvent("pointerover", { bubbles: true, pointerId: 1, pointerType: "mouse" }));
    const t1 = performance.now();
    await frame();
    const t2 = await afterPaint();
    if (liveModel.get("hovered_token") !== t) throw new Error(`hover ${t} not applied`);
    work.push(t1 - t0 + (t2 - frameStart));
    spans.push(strip.querySelectorAll(".llmw-token").length);
  }
  const s = [...work].sort((a, b) => a - b);
  return { median: quantile(s, 0.5), p95: quantile(s, 0.95), max: s[s.length - 1], n: count, max_spans: Math.max(...spans) };
}
window.live = { load: liveLoad, render: liveRender, selectHead, zoomIn, hoverStrip };
window.bench = window.staticBench;
"""  # noqa: E501


class Kernel:
    """The live Python widget behind the page: answers its messages, records bytes and time."""

    def __init__(self, widget: AttentionWidget) -> None:
        self.widget = widget
        self.replies: list[tuple[dict[str, Any], list[bytes]]] = []
        self.log: list[dict[str, Any]] = []
        widget.send = self._capture  # type: ignore[method-assign]

    def _capture(self, content: dict[str, Any], buffers: list[Any] | None = None) -> None:
        self.replies.append((content, [bytes(memoryview(b).cast("B")) for b in buffers or []]))

    def handle(self, text: str) -> str:
        content = json.loads(text)
        self.replies.clear()
        start = time.perf_counter()
        self.widget._handle_custom_msg(content, [])
        seconds = time.perf_counter() - start
        out = []
        for reply, buffers in self.replies:
            self.log.append(
                {
                    "request": content,
                    "kernel_ms": round(seconds * 1000, 1),
                    "bytes": message_bytes(reply, buffers),
                    "exact": reply.get("exact"),
                }
            )
            out.append(
                {"content": reply, "buffers": [base64.b64encode(b).decode() for b in buffers]}
            )
        return json.dumps(out)


def run(
    page: Any,
    server: Files,
    kernels: dict[str, Kernel],
    n_tokens: int,
    hovers: int,
    selects: int,
) -> dict[str, Any]:
    n_layers = n_heads = 32
    explanation = planted_explanation(
        n_tokens, n_layers, n_heads, planted=[(0, 3, n_tokens - 100, 50)], share_layers=True
    )
    widget = AttentionWidget(explanation)
    kernel = Kernel(widget)
    kernels["current"] = kernel
    first = first_render_bytes(widget)
    prefix = f"/lc/{n_tokens}"
    publish_state(server, prefix, widget)
    page.goto(f"{server.base}/live.html")
    page.wait_for_function("window.live !== undefined")
    page.evaluate("p => live.load(p)", prefix)
    render = page.evaluate("() => live.render()")
    # each select is another head, whose row normalisers are not known yet (the cold path a
    # click takes after explain's sampled summaries); one sample is at the mercy of the
    # machine's noise, so the figure is the median and the first is kept beside it
    picks = []
    for head in range(FIRST_HEAD, FIRST_HEAD + selects):
        select = page.evaluate("([l, h]) => live.selectHead(l, h)", [n_layers // 2, head])
        picks.append((select, kernel.log[-1]))
    select, select_log = sorted(picks, key=lambda pick: pick[0]["ms"])[len(picks) // 2]
    select_bytes = select_log["bytes"]
    zoom = page.evaluate("() => live.zoomIn()")
    zoom_kernel = kernel.log[-1]["kernel_ms"]
    zoom_bytes = kernel.log[-1]["bytes"]
    hover = page.evaluate("n => live.hoverStrip(n)", hovers)
    # a strip row (hover colors above full_pattern_limit): one token's exact attention row
    kernel.handle(
        json.dumps(
            {
                "type": "request_view",
                "request_id": 10**6,
                "layer": n_layers // 2,
                "heads": [3],
                "rows": [n_tokens // 2, n_tokens // 2 + 1],
                "cols": [0, n_tokens],
                "shape": [1, n_tokens],
            }
        )
    )
    rows = [e for e in kernel.log if e["request"].get("shape", [0])[0] == 1]
    widget.close()
    server.drop(prefix)
    return {
        "layers": n_layers,
        "heads": n_heads,
        "tokens": n_tokens,
        "first_render_bytes": first["total"],
        "first_render_ms": round(render["ms"], 1),
        "strip_spans_at_first_render": render["strip_spans"],
        "select_head_ms": round(select["ms"], 1),
        "select_kernel_ms": select_log["kernel_ms"],
        "select_samples": [
            {"head": h, "ms": round(pick["ms"], 1), "kernel_ms": log["kernel_ms"]}
            for h, (pick, log) in enumerate(picks, start=FIRST_HEAD)
        ],
        # when the view was asked and its reply reached the page, ms after the click
        "select_trip_ms": select["trip"],
        "view_bytes": select_bytes,
        "view_blocks": int(select["rows"]),
        "zoom_ms": round(zoom["ms"], 1),
        "zoom_kernel_ms": zoom_kernel,
        "zoom_trip_ms": zoom["trip"],
        "zoom_bytes": zoom_bytes,
        "zoom_region": zoom["region"],
        "hover_work_ms": {k: round(hover[k], 1) for k in ("median", "p95", "max")},
        "hover_n": hover["n"],
        "strip_spans_max": hover["max_spans"],
        "strip_row_bytes": rows[0]["bytes"] if rows else None,
        "strip_row_kernel_ms": rows[0]["kernel_ms"] if rows else None,
    }


def today() -> list[dict[str, Any]]:
    """Today's figures (whole patterns) from the committed widget browser bench."""
    path = _results.RESULTS / "bench_widget_browser.json"
    if not path.exists():
        return []
    rows = json.loads(path.read_text())["rows"]
    return [
        {
            "source": "whole patterns (bench_widget_browser.json)",
            "layers": r["layers"],
            "heads": r["heads"],
            "tokens": r["tokens"],
            "first_render_bytes": r["first_render_bytes"],
            "first_render_ms": r["first_render_ms"],
            "select_head_ms": r["select_head_ms"],
            "view_bytes": r["head_bytes"],
            "hover_work_ms": {
                k: round(r["hover_1_head"]["work_ms"][k], 1) for k in ("median", "p95")
            },
        }
        for r in rows
        if r["layers"] == 32 and r["tokens"] >= 2048
    ]


def verdict(row: dict[str, Any]) -> dict[str, str]:
    values = {
        "first_render_ms": row["first_render_ms"],
        "select_head_ms": row["select_head_ms"],
        "zoom_ms": row["zoom_ms"],
        "hover_work_p95_ms": row["hover_work_ms"]["p95"],
        "first_render_bytes": row["first_render_bytes"],
        "view_bytes": max(row["view_bytes"], row["zoom_bytes"]),
    }
    out = {k: "met" if values[k] <= TARGETS[k] else "missed" for k in TARGETS}
    if row["tokens"] > LATENCY_AT_TOKENS:  # the issue sets latency targets at T = 8192
        out = {k: v for k, v in out.items() if k.endswith("bytes") or k == "first_render_ms"}
    return out


def print_table(rows: list[dict[str, Any]], before: list[dict[str, Any]]) -> None:
    head = f"{'path':<22}{'L,H,T':>14}{'1st MB':>8}{'1st ms':>8}{'select':>9}{'kernel':>8}"
    head += f"{'zoom':>8}{'view':>9}{'hover p95':>10}"
    print(head)
    for r in before:
        cfg = f"{r['layers']},{r['heads']},{r['tokens']}"
        print(
            f"{'whole patterns':<22}{cfg:>14}"
            f"{r['first_render_bytes'] / 1e6:>8.2f}{r['first_render_ms']:>8.0f}"
            f"{r['select_head_ms']:>9.0f}{'':>8}{'-':>8}{fmt_bytes(r['view_bytes']):>9}"
            f"{r['hover_work_ms']['p95']:>10.1f}"
        )
    for r in rows:
        cfg = f"{r['layers']},{r['heads']},{r['tokens']}"
        print(
            f"{'level of detail':<22}{cfg:>14}"
            f"{r['first_render_bytes'] / 1e6:>8.2f}{r['first_render_ms']:>8.0f}"
            f"{r['select_head_ms']:>9.0f}{r['select_kernel_ms']:>8.0f}{r['zoom_ms']:>8.0f}"
            f"{fmt_bytes(r['view_bytes']):>9}{r['hover_work_ms']['p95']:>10.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, nargs="+", default=[8192])
    parser.add_argument("--hovers", type=int, default=40)
    parser.add_argument(
        "--selects", type=int, default=7,
        help="heads selected one after the other (each cold); the median is the figure",
    )  # fmt: skip
    parser.add_argument(
        "--threads", type=int, nargs="+", default=[0],
        help="torch thread counts to run with, one after the other (0: torch's default)",
    )  # fmt: skip
    _results.add_output_arguments(parser, NAME)
    args = parser.parse_args()
    import torch
    from playwright.sync_api import sync_playwright

    default_threads = torch.get_num_threads()
    previous = previous_figures()

    env = _results.environment()
    server = Files()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.put("/live.html", WIDGET_HTML.replace("/harness.js", "/live.js"), "text/html")
    server.put("/live.js", LIVE_JS, "text/javascript")
    server.put("/attention.js", (STATIC / "attention.js").read_bytes(), "text/javascript")
    server.put("/attention.css", (STATIC / "attention.css").read_bytes(), "text/css")
    rows = []
    kernels: dict[str, Kernel] = {}
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
        page.on("pageerror", lambda e: print(f"page error: {e}", file=sys.stderr))
        page.expose_function("kernelSend", lambda text: kernels["current"].handle(text))
        for threads in args.threads:
            torch.set_num_threads(threads or default_threads)
            for n_tokens in args.tokens:
                print(f"(32, 32, {n_tokens}), {torch.get_num_threads()} threads ...", flush=True)
                row = run(page, server, kernels, n_tokens, args.hovers, args.selects)
                rows.append({**row, "torch_threads": torch.get_num_threads()})
        torch.set_num_threads(default_threads)
        browser.close()
    server.shutdown()
    before = today()
    print_table(rows, before)
    for r in rows:
        r["verdict"] = verdict(r)
        print(f"T={r['tokens']}: {r['verdict']}")
    _results.write(
        NAME,
        environment=env,
        config={
            "tokens": args.tokens,
            "hovers": args.hovers,
            "selects": args.selects,
            "kernel": KERNEL,
            "torch_threads": [t or default_threads for t in args.threads],
        },
        figures={
            "targets": TARGETS,
            "rows": rows,
            "today": before,
            "previous": previous,
            "other_cpus": other_cpus(env["cpu"]),
        },
        out=args.out,
        results=args.results,
    )


if __name__ == "__main__":
    main()
