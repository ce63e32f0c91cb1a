"""AttentionWidget in a real browser (headless Chromium), side by side with BertViz.

For (layers, heads, tokens) in CONFIGS (+ (32, 32, 4096) unless --quick / --no-4096):
  * bytes sent to the browser: first render (widget state as ipywidgets serializes it, JSON +
    binary buffers, + the JS/CSS bundle) and per selected head (the ``pattern`` message the
    Python widget sends: JSON + buffers), for 1 head and for a whole layer;
  * time to first render: ``render()`` called -> first frame painted with the grid
    (requestAnimationFrame after render, then a MessageChannel task, i.e. after that frame);
  * select -> pattern painted: the selection traits set and the kernel's pattern messages
    delivered (as Python pushes them) -> the frame with the decoded pattern drawn;
  * hover -> repaint, with 1 head selected and with a whole layer selected (averaged):
    HOVERS pointerover events dispatched on token spans of the token strip. Per hover:
      work    = event handler + (frame start -> widget's rAF flush -> frame painted), i.e. the
                main-thread time of the update; < 16 ms means the repaint lands in the next frame
      latency = event -> frame painted, including the idle wait for the next vsync
    median and p95 of each.
  * BertViz ``head_view`` / ``model_view`` (``html_action="return"``) on the same attention:
    HTML size (generated where it fits in memory, else estimated from sampled heads and
    said so) and time to render in Chromium (navigation start -> the SVG drawn, bounded by
    --bertviz-timeout). BertViz loads require.js / d3 / jQuery from cdnjs and does not bundle
    them: the bench checks that offline it does not render at all, and serves local copies
    (--bertviz-vendor, see below) to time its rendering. Skipped, with a message, when
    bertviz is not importable.

The widget runs from the real bundle (llmasos_widgets/static/attention.js + .css) in a page
served from 127.0.0.1 (http.server in a thread), with a small in-page fake anywidget model
(get/set/on/off/send/save_changes, ``msg:custom``) fed with the exact state and messages of
the Python ``AttentionWidget`` built on bench_widget.SyntheticExplanation.

    python bench/bench_widget_browser.py [--quick] [--no-4096] [--no-bertviz]
        [--hovers 50] [--bertviz-timeout 60] [--bertviz-vendor DIR] [--bundle DIR]

--bertviz-vendor DIR (default bench/out/vendor) is searched recursively for require.js (or
require.min.js), d3.min.js and jquery.min.js; get them from npm with
    mkdir -p bench/out/vendor && cd bench/out/vendor && \
      npm pack requirejs@2.3.6 d3@5.7.0 jquery@2.1.0 && for f in *.tgz; do tar xzf $f; done
(jQuery 2.0.0, which BertViz pins, is not on npm; 2.1.0 is the nearest). Without them the
BertViz render column says it could not render offline.
--bundle DIR: take attention.js/.css from DIR instead of llmasos_widgets/static (profiling).

Chromium: /usr/bin/chromium or $LLMW_CHROMIUM (Debian package; Playwright's own browser
download is not used). Prints a table and writes bench/out/bench_widget_browser.json;
``--results`` also writes bench/results/bench_widget_browser.json (the figures
bench/tables.py publishes). Targets at (32, 32, 2048): first render < 1 MB and < 1 s; hover
repaint work p95 < 16 ms (the JSON says met or missed for each).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import http.server
import json
import os
import pathlib
import statistics
import sys
import threading
import time
from typing import Any

import numpy as np
from ipywidgets.widgets.widget import _remove_buffers

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))  # run from a checkout without `pip install -e .`

import _results  # noqa: E402
from _tables_format import size as fmt_bytes  # noqa: E402
from bench_widget import SyntheticExplanation, first_render_bytes  # noqa: E402

from llmasos_widgets.widgets import AttentionWidget  # noqa: E402
from tests._chromium import launch_chromium  # noqa: E402  (shared with the browser tests)

CONFIGS = [(8, 8, 512), (32, 32, 512), (32, 32, 2048)]
EXTRA_CONFIGS = [(32, 32, 4096)]
TARGET_BYTES = 1_000_000
TARGET_FIRST_RENDER_MS = 1000.0
TARGET_HOVER_MS = 16.0
STATIC = HERE.parent / "llmasos_widgets" / "static"
CDN = "https://cdnjs.cloudflare.com/"

# --- in-page harness ------------------------------------------------------------------------

WIDGET_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><link rel="stylesheet" href="/attention.css">
<style>body { margin: 8px; width: 1200px; }</style></head>
<body><div id="host"></div><script type="module" src="/harness.js"></script></body></html>
"""

HARNESS_JS = r"""
import widget from "/attention.js";

const frame = () => new Promise((resolve) => requestAnimationFrame(resolve));
// A task queued after the rendering steps of the current frame: the frame has been painted.
const afterPaint = () => new Promise((resolve) => {
  const ch = new MessageChannel();
  ch.port1.onmessage = () => resolve(performance.now());
  ch.port2.postMessage(0);
});
const painted = async () => { await frame(); return afterPaint(); };

function same(a, b) {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Minimal anywidget model: Backbone-style synchronous change events, msg:custom delivery. */
class FakeModel {
  constructor(state) { this.state = state; this.handlers = new Map(); this.sent = []; this.saves = 0; }
  get(key) { return this.state[key]; }
  set(key, value) {
    const old = this.state[key];
    this.state[key] = value;
    if (!same(old, value)) this.emit(`change:${key}`, value);
  }
  on(event, cb) { if (!this.handlers.has(event)) this.handlers.set(event, new Set()); this.handlers.get(event).add(cb); }
  off(event, cb) { if (cb) this.handlers.get(event)?.delete(cb); else this.handlers.delete(event); }
  emit(event, ...args) { for (const cb of [...(this.handlers.get(event) ?? [])]) cb(...args); }
  send(content, callbacks, buffers) { this.sent.push(content); }
  save_changes() { this.saves += 1; }
}

async function fetchBuffer(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: ${r.status}`);
  return new DataView(await r.arrayBuffer());
}

function putBuffers(state, paths, buffers) {
  paths.forEach((path, i) => {
    let obj = state;
    for (const key of path.slice(0, -1)) obj = obj[key];
    obj[path[path.length - 1]] = buffers[i];
  });
}

let model = null;
let dispose = null;
let host = null;

async function load(prefix) {
  const meta = await (await fetch(`${prefix}/state.json`)).json();
  const buffers = await Promise.all(meta.buffers.map(fetchBuffer));
  putBuffers(meta.state, meta.buffer_paths, buffers);
  model = new FakeModel(meta.state);
  return { n_tokens: meta.state.tokens.length };
}

/** render() -> first painted frame, cold; then `warm` more renders in fresh elements. */
async function firstRender(warm) {
  const times = [];
  let syncMs = 0;
  for (let k = 0; k <= warm; k++) {
    if (dispose) { dispose(); dispose = null; host.remove(); }
    host = document.createElement("div");
    document.getElementById("host").appendChild(host);
    await painted();
    const t0 = performance.now();
    dispose = widget.render({ model, el: host });
    const t1 = performance.now();
    const t2 = await painted();
    const grid = host.querySelector('[data-testid="head-grid"]');
    if (!grid || grid.width < 2) throw new Error("grid not painted");
    times.push(t2 - t0);
    if (k === 0) syncMs = t1 - t0;
  }
  return { cold_ms: times[0], render_sync_ms: syncMs, warm_ms: times.slice(1) };
}

/** Selection traits set (as synced from Python), then the pushed pattern messages delivered. */
async function selectAndDeliver(layer, heads, messages, expectLoaded) {
  const decoded = await Promise.all(messages.map(async (m) => [m.content, await Promise.all(m.buffers.map(fetchBuffer))]));
  const root = host.querySelector('[data-testid="attention-widget"]');
  await painted();
  const t0 = performance.now();
  model.set("selected_layer", layer);
  model.set("selected_heads", heads);
  for (const [content, buffers] of decoded) model.emit("msg:custom", content, buffers);
  while (Number(root.dataset.patternsLoaded ?? 0) < expectLoaded) await frame();
  await frame(); // the widget's flush was scheduled when the last pattern was stored
  const t1 = await afterPaint();
  const matrix = host.querySelector('[data-testid="pattern-matrix"]');
  if (!matrix) throw new Error("pattern matrix not drawn");
  return { ms: t1 - t0, matrix_heads: matrix.dataset.heads.split(",").length };
}

function quantile(sorted, q) {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i];
}

/** `count` hovers over token spans; per hover the main-thread work and the latency. */
async function hover(count) {
  const n = model.get("tokens").length;
  const strip = host.querySelector('[data-testid="token-strip"]');
  const work = [], latency = [], handler = [];
  let previous = -1;
  for (let k = 0; k < count; k++) {
    let t = 1 + Math.floor(((k * 7919) % count) * (n - 2) / count + (k % 5));
    if (t === previous || t >= n) t = (t + 1) % n;
    previous = t;
    // the strip is virtualised: scroll the token into view (not timed), then hover it
    strip.dispatchEvent(new CustomEvent("llmw-reveal", { detail: t }));
    await painted();
    const span = strip.querySelector(`[data-testid="token-${t}"]`);
    let frameStart = 0;
    requestAnimationFrame(() => { frameStart = performance.now(); }); // runs before the widget's flush
    const t0 = performance.now();
    span.dispatchEvent(new PointerEvent("pointerover", { bubbles: true, pointerId: 1, pointerType: "mouse" }));
    const t1 = performance.now();
    await frame(); // registered after the widget's rAF: runs after its flush
    const t2 = await afterPaint();
    if (model.get("hovered_token") !== t) throw new Error(`hover ${t} not applied`);
    handler.push(t1 - t0);
    work.push(t1 - t0 + (t2 - frameStart));
    latency.push(t2 - t0);
  }
  const stats = (xs) => {
    const s = [...xs].sort((a, b) => a - b);
    return { median: quantile(s, 0.5), p95: quantile(s, 0.95), max: s[s.length - 1] };
  };
  const leave = new PointerEvent("pointerleave", { bubbles: false });
  strip.dispatchEvent(leave);
  await painted();
  const raw = (xs) => xs.map((x) => Math.round(x * 10) / 10);
  return {
    work_ms: stats(work), latency_ms: stats(latency), handler_ms: stats(handler), n: count,
    samples_ms: { work: raw(work), latency: raw(latency) },
  };
}

window.bench = { load, firstRender, selectAndDeliver, hover, sent: () => model.sent };
window.benchReady = true;
"""  # noqa: E501

# A BertViz page is "rendered" when its SVG exists: its requirejs callback draws everything in
# one task, so the first frame that sees the SVG is the frame after the whole drawing.
BERTVIZ_PROBE = """
(() => {
  const check = () => {
    if (document.querySelector('[id^="bertviz-"] #vis svg')) {
      const ch = new MessageChannel();
      ch.port1.onmessage = () => { window.__bvDone = performance.now(); };
      ch.port2.postMessage(0);
      return;
    }
    requestAnimationFrame(check);
  };
  requestAnimationFrame(check);
  window.addEventListener("error", (e) => { window.__bvError = String(e.message); });
})();
"""


# --- loopback static server ------------------------------------------------------------------


class Files(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.files: dict[str, tuple[bytes, str]] = {}

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def put(self, path: str, data: bytes | str, ctype: str = "application/octet-stream") -> str:
        self.files[path] = (data.encode() if isinstance(data, str) else bytes(data), ctype)
        return path

    def drop(self, prefix: str) -> None:
        for key in [k for k in self.files if k.startswith(prefix)]:
            del self.files[key]


class Handler(http.server.BaseHTTPRequestHandler):
    server: Files

    def do_GET(self) -> None:
        entry = self.server.files.get(self.path.split("?")[0])
        if entry is None:
            self.send_error(404)
            return
        data, ctype = entry
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


# --- the Python widget's bytes --------------------------------------------------------------


def message_bytes(content: dict[str, Any], buffers: list[Any]) -> int:
    return len(json.dumps(content).encode()) + sum(len(memoryview(b).cast("B")) for b in buffers)


def capture_sends(widget: AttentionWidget) -> list[tuple[dict[str, Any], list[bytes]]]:
    """Record what the widget sends (its custom messages) instead of sending it."""
    sent: list[tuple[dict[str, Any], list[bytes]]] = []

    def send(content: dict[str, Any], buffers: list[Any] | None = None) -> None:
        sent.append((content, [bytes(memoryview(b).cast("B")) for b in buffers or []]))

    widget.send = send  # type: ignore[method-assign]
    return sent


def publish_state(server: Files, prefix: str, widget: AttentionWidget) -> None:
    state, paths, buffers = _remove_buffers(widget.get_state())
    state.pop("_esm", None)
    state.pop("_css", None)
    urls = []
    for i, buf in enumerate(buffers):
        urls.append(server.put(f"{prefix}/buf{i}.bin", memoryview(buf).cast("B").tobytes()))
    meta = {"state": state, "buffer_paths": paths, "buffers": urls}
    server.put(f"{prefix}/state.json", json.dumps(meta), "application/json")


def publish_messages(
    server: Files, prefix: str, sent: list[tuple[dict[str, Any], list[bytes]]]
) -> list[dict[str, Any]]:
    out = []
    for content, buffers in sent:
        name = f"{prefix}/msg_{content['layer']}_{content['head']}"
        urls = [server.put(f"{name}_{i}.bin", b) for i, b in enumerate(buffers)]
        out.append({"content": content, "buffers": urls})
    return out


# --- BertViz -----------------------------------------------------------------------------------


def bertviz_available() -> tuple[bool, str]:
    try:
        import bertviz  # noqa: F401
        import torch  # noqa: F401
    except ImportError as err:
        return (
            False,
            f"bertviz not importable ({err}); pip install bertviz to get the BertViz column",
        )
    return True, ""


def bertviz_html(view: str, attention: list[Any], tokens: list[str]) -> str:
    from bertviz import head_view, model_view

    fn = head_view if view == "head_view" else model_view
    return fn(attention, tokens, html_action="return").data


def attention_tensors(expl: SyntheticExplanation, layers: int, heads: int) -> list[Any]:
    import torch

    return [
        torch.from_numpy(np.stack([expl.attention(layer, h) for h in range(heads)]))[None]
        for layer in range(layers)
    ]


def head_json_chars(pattern: np.ndarray) -> int:
    """Characters one [T, T] head takes in BertViz's JSON (``tensor.tolist()`` -> json.dumps)."""
    import torch

    return len(
        json.dumps(torch.from_numpy(np.ascontiguousarray(pattern, dtype=np.float32)).tolist())
    )


def sample_head_chars(
    expl: SyntheticExplanation, layers: int, heads: int, samples: int
) -> list[tuple[int, int, int]]:
    """(layer, head, JSON chars) for `samples` random heads."""
    rng = np.random.default_rng(1)
    picks = [(int(rng.integers(layers)), int(rng.integers(heads))) for _ in range(samples)]
    return [(layer, h, head_json_chars(expl.attention(layer, h))) for layer, h in picks]


def bertviz_size_estimate(
    view: str,
    expl: SyntheticExplanation,
    layers: int,
    heads: int,
    sampled: list[tuple[int, int, int]],
) -> int:
    """HTML size from sampled heads' exact JSON size (mean) + the exact page around it.

    The page around the attention is taken from a real 1-layer/1-head page with the same
    tokens; nesting brackets/separators and the layer/head index lists are added exactly,
    once per copy of the params in the page.
    """
    import bertviz
    import torch

    # BertViz substitutes its params for every "PYTHON_PARAMS" in its JS template, including
    # the one in the comment "// HACK: PYTHON_PARAMS is a template marker ...": the whole
    # attention JSON is in the page twice.
    template = pathlib.Path(bertviz.__file__).parent / f"{view}.js"
    copies = template.read_text().count("PYTHON_PARAMS")
    l0, h0, chars0 = sampled[0]
    page1 = bertviz_html(
        view, [torch.from_numpy(expl.attention(l0, h0))[None, None]], list(expl.tokens)
    )
    attn1 = chars0 + 4  # "[[" + head + "]]"
    mean = statistics.fmean(c for _, _, c in sampled)
    attn = layers * heads * mean + 2 + 2 * layers + 2 * layers * (heads - 1) + 2 * (layers - 1)
    extra = len(json.dumps(list(range(layers)))) - len("[0]")
    if view == "model_view":
        extra += len(json.dumps(list(range(heads)))) - len("[0]")
    return round(len(page1.encode()) + copies * (attn - attn1 + extra))


def vendor_files(vendor: pathlib.Path) -> dict[str, pathlib.Path]:
    found: dict[str, pathlib.Path] = {}
    if not vendor.is_dir():
        return found
    wanted = {
        "require.min.js": ("require.min.js", "require.js"),
        "d3.min.js": ("d3.min.js",),
        "jquery.min.js": ("jquery.min.js",),
    }
    for key, names in wanted.items():
        for name in names:
            hits = sorted(vendor.rglob(name))
            if hits:
                found[key] = hits[0]
                break
    return found


def bertviz_render(
    browser: Any, url: str, vendor: dict[str, pathlib.Path], timeout_s: float
) -> dict[str, Any]:
    """Open a BertViz page; CDN requests served from `vendor` or refused (offline)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    cdn_requests: list[str] = []

    def cdn(route: Any) -> None:
        name = route.request.url.rsplit("/", 1)[-1]
        cdn_requests.append(route.request.url)
        path = vendor.get(name)
        if path is None:
            route.abort("internetdisconnected")
        else:
            route.fulfill(body=path.read_bytes(), content_type="text/javascript")

    page.route(f"{CDN}**", cdn)
    page.add_init_script(BERTVIZ_PROBE)
    result: dict[str, Any] = {"rendered": False}
    start = time.perf_counter()
    # A renderer busy parsing/drawing hundreds of MB does not answer the protocol, so
    # Playwright's own timeouts (and context.close()) can block for many minutes while it
    # grows to GBs: past the deadline, kill this bench's renderer processes.
    watchdog = threading.Timer(timeout_s + 20.0, kill_own_renderers)
    watchdog.daemon = True
    watchdog.start()
    try:
        page.goto(url, wait_until="commit", timeout=timeout_s * 1000)
        remaining = max(1.0, timeout_s - (time.perf_counter() - start))
        try:
            page.wait_for_function(
                "() => window.__bvDone !== undefined || window.__bvError !== undefined",
                timeout=remaining * 1000,
            )
        except PlaywrightTimeout:
            result["error"] = f"did not render within {timeout_s:.0f} s"
        else:
            state = page.evaluate(
                "() => ({done: window.__bvDone ?? null, err: window.__bvError ?? null,"
                " nav: performance.getEntriesByType('navigation')[0]?.toJSON() ?? null})"
            )
            if state["done"] is not None:
                nav = state["nav"] or {}
                result.update(
                    rendered=True,
                    render_ms=round(state["done"], 1),
                    after_download_ms=round(state["done"] - nav.get("responseEnd", 0.0), 1),
                    svg_elements=page.evaluate(
                        "() => document.querySelectorAll('#vis svg *').length"
                    ),
                )
            else:
                result["error"] = (errors or [state["err"]])[0][:200]
    except Exception as err:
        result["error"] = f"{type(err).__name__}: {str(err).splitlines()[0][:160]}"
        if time.perf_counter() - start >= timeout_s:
            result["error"] = f"did not render within {timeout_s:.0f} s ({result['error']})"
    with contextlib.suppress(Exception):
        context.close()
    watchdog.cancel()
    if not result["rendered"] and time.perf_counter() - start > timeout_s + 20.0:
        result["error"] = (
            f"did not render within {timeout_s:.0f} s; renderer killed by the watchdog after "
            f"{time.perf_counter() - start:.0f} s ({result.get('error', '')[:120]})"
        )
    result["wall_s"] = round(time.perf_counter() - start, 1)
    result["cdn_requests"] = len(cdn_requests)
    return result


def kill_own_renderers() -> None:
    """SIGKILL the Chromium renderer processes descended from this Python process."""
    import signal

    parents: dict[int, int] = {}
    cmdlines: dict[int, str] = {}
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            cmdlines[int(entry.name)] = (entry / "cmdline").read_bytes().decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
    me = os.getpid()
    for pid, cmd in cmdlines.items():
        if "--type=renderer" not in cmd:
            continue
        ancestor = parents.get(pid)
        while ancestor and ancestor != me:
            ancestor = parents.get(ancestor)
        if ancestor == me:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


# --- one configuration -------------------------------------------------------------------------


def run_widget(page: Any, server: Files, cfg: tuple[int, int, int], hovers: int) -> dict[str, Any]:
    n_layers, n_heads, n_tokens = cfg
    prefix = f"/c/{n_layers}_{n_heads}_{n_tokens}"
    t_build = time.perf_counter()
    widget = AttentionWidget(SyntheticExplanation(n_layers, n_heads, n_tokens))
    # whole patterns at every T: this bench measures that path (bench_long_context_browser.py
    # measures the level-of-detail views that replace it above 512 tokens)
    widget.set_trait("full_pattern_limit", n_tokens)
    sent = capture_sends(widget)
    first = first_render_bytes(widget)
    publish_state(server, prefix, widget)
    layer = n_layers // 2
    widget.selected_layer = layer
    widget.selected_heads = [0]
    one = publish_messages(server, prefix, list(sent))
    sent.clear()
    widget.selected_heads = list(range(n_heads))
    rest = publish_messages(server, prefix, list(sent))
    one_bytes = sum(
        message_bytes(m["content"], [server.files[u][0] for u in m["buffers"]]) for m in one
    )
    layer_bytes = one_bytes + sum(
        message_bytes(m["content"], [server.files[u][0] for u in m["buffers"]]) for m in rest
    )
    kernel_s = time.perf_counter() - t_build
    widget.close()

    page.goto(f"{server.base}/widget.html")
    page.wait_for_function("window.benchReady === true")
    page.evaluate("p => bench.load(p)", prefix)
    render = page.evaluate("w => bench.firstRender(w)", 4)
    sel1 = page.evaluate(
        "([l, h, m, e]) => bench.selectAndDeliver(l, h, m, e)", [layer, [0], one, 1]
    )
    hover1 = page.evaluate("n => bench.hover(n)", hovers)
    sel_layer = page.evaluate(
        "([l, h, m, e]) => bench.selectAndDeliver(l, h, m, e)",
        [layer, list(range(n_heads)), rest, n_heads],
    )
    hover_layer = page.evaluate("n => bench.hover(n)", hovers)
    browser_sent = page.evaluate("() => bench.sent().map(m => m.type)")
    server.drop(prefix)
    return {
        "layers": n_layers,
        "heads": n_heads,
        "tokens": n_tokens,
        "first_render_bytes": first["total"],
        "first_render_data_bytes": first["data"],
        "bundle_bytes": first["bundle"],
        "head_bytes": one_bytes,
        "layer_bytes": layer_bytes,
        "first_render_ms": round(render["cold_ms"], 1),
        "first_render_sync_ms": round(render["render_sync_ms"], 1),
        "first_render_warm_ms": round(statistics.median(render["warm_ms"]), 1),
        "select_head_ms": round(sel1["ms"], 1),
        "select_layer_ms": round(sel_layer["ms"], 1),
        "hover_1_head": hover1,
        "hover_layer": hover_layer,
        "browser_messages": sorted(set(browser_sent)),
        "python_seconds": round(kernel_s, 1),
    }


def run_bertviz(
    browser: Any,
    server: Files,
    cfg: tuple[int, int, int],
    vendor: dict[str, pathlib.Path],
    args: Any,
) -> dict[str, Any]:
    n_layers, n_heads, n_tokens = cfg
    expl = SyntheticExplanation(n_layers, n_heads, n_tokens)
    floats = n_layers * n_heads * n_tokens * n_tokens
    out: dict[str, Any] = {}
    # tolist() + json.dumps need ~70 B per float in Python: generate only what fits easily.
    generate = floats * 70 <= args.bertviz_max_gb * 1e9
    samples = 4 if n_tokens <= 2048 else 2
    sampled = sample_head_chars(expl, n_layers, n_heads, samples)
    for view in ("head_view", "model_view"):
        row: dict[str, Any] = {}
        if generate:
            attention = attention_tensors(expl, n_layers, n_heads)
            start = time.perf_counter()
            html = bertviz_html(view, attention, list(expl.tokens)).encode()
            row["generate_s"] = round(time.perf_counter() - start, 1)
            del attention
            row["html_bytes"] = len(html)
            row["html_bytes_how"] = "generated"
            if view == "head_view" and args.bertviz_validate:
                est = bertviz_size_estimate(view, expl, n_layers, n_heads, sampled)
                row["estimate_check"] = {"estimate": est, "error": round(est / len(html) - 1, 4)}
            path = server.put(f"/bv/{view}.html", html, "text/html; charset=utf-8")
            del html
            gc.collect()
            if vendor_complete(vendor):
                row["render"] = bertviz_render(
                    browser, server.base + path, vendor, args.bertviz_timeout
                )
            else:
                row["render"] = {
                    "rendered": False,
                    "error": "not attempted: no local require.js/d3/jQuery (offline)",
                }
            server.drop("/bv/")
        else:
            row["html_bytes"] = bertviz_size_estimate(view, expl, n_layers, n_heads, sampled)
            row["html_bytes_how"] = (
                f"estimated from {samples} sampled heads (too large to generate)"
            )
            row["render"] = {
                "rendered": False,
                "error": "not attempted: page larger than V8's max string length (2^29-24 chars)"
                if row["html_bytes"] > (1 << 29)
                else "not attempted: too large to generate here",
            }
        out[view] = row
        gc.collect()
    return out


def vendor_complete(vendor: dict[str, pathlib.Path]) -> bool:
    return all(k in vendor for k in ("require.min.js", "d3.min.js", "jquery.min.js"))


def bertviz_offline_check(browser: Any, server: Files, timeout_s: float) -> dict[str, Any]:
    """A tiny BertViz head_view page with the CDN unreachable (no local copies)."""
    expl = SyntheticExplanation(2, 2, 16)
    html = bertviz_html("head_view", attention_tensors(expl, 2, 2), list(expl.tokens))
    path = server.put("/bv/offline.html", html, "text/html; charset=utf-8")
    result = bertviz_render(browser, server.base + path, {}, timeout_s)
    server.drop("/bv/")
    return result


# --- report ------------------------------------------------------------------------------------


def fmt_render(r: dict[str, Any] | None) -> str:
    if not r:
        return "-"
    if r.get("rendered"):
        return f"{r['render_ms'] / 1000:.1f} s"
    return "no: " + r.get("error", "?")


def print_table(rows: list[dict[str, Any]], bertviz_note: str) -> None:
    print(
        "\nAttentionWidget in headless Chromium"
        " (work = main-thread ms per hover; lat = to painted frame)"
    )
    print(
        f"{'L,H,T':>13} {'1st render':>10} {'(data)':>8} {'1 head':>8} {'layer':>8} "
        f"{'1st ms':>7} {'warm':>6} {'sel 1h':>7} {'sel L':>7} "
        f"{'hov 1h med/p95':>15} {'lat 1h':>7} {'hov L med/p95':>14} {'lat L':>7}"
    )
    for r in rows:
        h1, hl = r["hover_1_head"], r["hover_layer"]
        cfg = f"{r['layers']:>4},{r['heads']:>3},{r['tokens']:>5}"
        sizes = (
            f"{fmt_bytes(r['first_render_bytes']):>10} "
            f"{fmt_bytes(r['first_render_data_bytes']):>8} {fmt_bytes(r['head_bytes']):>8} "
            f"{fmt_bytes(r['layer_bytes']):>8}"
        )
        times = (
            f"{r['first_render_ms']:>7.0f} {r['first_render_warm_ms']:>6.0f} "
            f"{r['select_head_ms']:>7.0f} {r['select_layer_ms']:>7.0f}"
        )
        hov1 = f"{h1['work_ms']['median']:>7.1f}/{h1['work_ms']['p95']:<6.1f}"
        hovl = f"{hl['work_ms']['median']:>6.1f}/{hl['work_ms']['p95']:<6.1f}"
        lat = (h1["latency_ms"]["median"], hl["latency_ms"]["median"])
        print(f"{cfg} {sizes} {times} {hov1} {lat[0]:>7.1f} {hovl} {lat[1]:>7.1f}")
    print("\nBertViz on the same attention")
    if bertviz_note:
        print(f"  {bertviz_note}")
    for r in rows:
        bv = r.get("bertviz")
        if not bv:
            continue
        for view in ("head_view", "model_view"):
            v = bv[view]
            how = "" if v["html_bytes_how"] == "generated" else " (estimated)"
            cfg = f"{r['layers']:>3},{r['heads']:>3},{r['tokens']:>5}"
            size = f"HTML {fmt_bytes(v['html_bytes']):>9}{how:<12}"
            print(f"  {cfg} {view:<10} {size} render: {fmt_render(v.get('render'))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="(8, 8, 512) only, 10 hovers")
    parser.add_argument("--no-4096", action="store_true", help="skip the (32, 32, 4096) extra")
    parser.add_argument("--no-bertviz", action="store_true")
    parser.add_argument("--hovers", type=int, default=50)
    parser.add_argument("--bertviz-timeout", type=float, default=60.0)
    parser.add_argument(
        "--bertviz-max-gb", type=float, default=2.0, help="largest Python-side BertViz generation"
    )
    parser.add_argument("--no-bertviz-validate", dest="bertviz_validate", action="store_false")
    parser.add_argument("--bertviz-vendor", type=pathlib.Path, default=HERE / "out" / "vendor")
    parser.add_argument("--bundle", type=pathlib.Path, default=STATIC)
    _results.add_output_arguments(parser, "bench_widget_browser")
    args = parser.parse_args()
    environment = _results.environment()
    configs = CONFIGS[:1] if args.quick else CONFIGS + ([] if args.no_4096 else EXTRA_CONFIGS)
    hovers = 10 if args.quick else args.hovers

    from playwright.sync_api import sync_playwright

    server = Files()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.put("/widget.html", WIDGET_HTML, "text/html; charset=utf-8")
    server.put("/harness.js", HARNESS_JS, "text/javascript")
    server.put("/attention.js", (args.bundle / "attention.js").read_bytes(), "text/javascript")
    server.put("/attention.css", (args.bundle / "attention.css").read_bytes(), "text/css")

    bv_ok, bv_note = (False, "skipped (--no-bertviz)") if args.no_bertviz else bertviz_available()
    vendor = vendor_files(args.bertviz_vendor) if bv_ok else {}
    rows: list[dict[str, Any]] = []
    offline: dict[str, Any] | None = None
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        chromium_version = browser.version
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.on("pageerror", lambda e: print(f"page error: {e}", file=sys.stderr))
        for cfg in configs:
            print(f"widget {cfg} ...", flush=True)
            rows.append(run_widget(page, server, cfg, hovers))
        context.close()
        if bv_ok:
            offline = bertviz_offline_check(browser, server, 30.0)
            offline_text = (
                "rendered"
                if offline.get("rendered")
                else f"did not render ({offline.get('error')})"
            )
            bv_note = f"offline (CDN unreachable, no local copies): {offline_text}; " + (
                f"renders below use local require.js/d3/jQuery from {args.bertviz_vendor}"
                if vendor_complete(vendor)
                else "no local copies found, so BertViz renders are not attempted"
            )
            for row in rows:
                cfg = (row["layers"], row["heads"], row["tokens"])
                print(f"bertviz {cfg} ...", flush=True)
                bbrowser = launch_chromium(pw)
                try:
                    row["bertviz"] = run_bertviz(bbrowser, server, cfg, vendor, args)
                finally:
                    with contextlib.suppress(Exception):
                        bbrowser.close()
        browser.close()
    server.shutdown()

    print_table(rows, bv_note)
    big = next((r for r in rows if (r["layers"], r["heads"], r["tokens"]) == (32, 32, 2048)), None)
    verdict = None
    if big:
        verdict = {
            "first_render_bytes_ok": big["first_render_bytes"] < TARGET_BYTES,
            "first_render_ms_ok": big["first_render_ms"] < TARGET_FIRST_RENDER_MS,
            "hover_1_head_ok": big["hover_1_head"]["work_ms"]["p95"] < TARGET_HOVER_MS,
            "hover_layer_ok": big["hover_layer"]["work_ms"]["p95"] < TARGET_HOVER_MS,
        }
        print(f"\ntargets at (32, 32, 2048): {verdict}")
    _results.write(
        "bench_widget_browser",
        environment={**environment, "chromium": chromium_version},
        config={
            "configs": configs,
            "hovers": hovers,
            "bundle": str(args.bundle),
            "bertviz": not args.no_bertviz,
            "bertviz_timeout_s": args.bertviz_timeout,
        },
        figures={
            "targets": {
                "first_render_bytes": TARGET_BYTES,
                "first_render_ms": TARGET_FIRST_RENDER_MS,
                "hover_work_p95_ms": TARGET_HOVER_MS,
            },
            "bertviz_note": bv_note,
            "bertviz_offline": offline,
            "bertviz_vendor": {k: str(v) for k, v in vendor.items()},
            "verdict_32_32_2048": verdict,
            "rows": rows,
        },
        out=args.out,
        results=args.results and not args.quick,
    )


if __name__ == "__main__":
    main()
