"""Fingerprint every output of the public API on the bundled model, for a refactor's
before/after check: results must stay bitwise what they were.

    python scripts/bitwise_snapshot.py out.json            # on the old commit, then the new
    python scripts/bitwise_snapshot.py new.json --compare old.json

Each output (arrays, widget states and messages, reports, saved files' contents) is reduced to
a SHA-256 of its bytes, dtype and shape; only the public names are used, so the same script
runs on both sides of a refactor. Single-threaded, so kernels pick the same reduction order.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import re
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

TEXT = "the keys near the cabinet are on the table ."
SHORT = "the keys near the cabinet"
VERB = ("are", "is")


def _feed(h: Any, obj: Any, depth: int = 0) -> None:
    """Hash ``obj``'s value (not its identity) into ``h``."""
    if depth > 12:
        h.update(b"<deep>")
        return
    if isinstance(obj, torch.Tensor):
        obj = obj.detach().cpu()
        if obj.dtype == torch.bfloat16:
            obj = obj.view(torch.int16)
        obj = obj.numpy()
    if isinstance(obj, np.ndarray):
        h.update(f"nd{obj.dtype}{obj.shape}".encode())
        h.update(np.ascontiguousarray(obj).tobytes())
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        h.update(b"b" + bytes(obj))
    elif isinstance(obj, (str, int, float, bool, type(None), np.generic)):
        h.update(repr(obj).encode())
    elif isinstance(obj, dict):
        h.update(b"{")
        for key in sorted(obj, key=repr):
            _feed(h, key, depth + 1)
            _feed(h, obj[key], depth + 1)
        h.update(b"}")
    elif isinstance(obj, (list, tuple)):
        h.update(b"[")
        for item in obj:
            _feed(h, item, depth + 1)
        h.update(b"]")
    elif dataclasses.is_dataclass(obj):
        h.update(type(obj).__name__.encode())
        for field in dataclasses.fields(obj):
            if field.name == "causal_results" and not getattr(obj, field.name):
                continue  # added later: an explanation with none hashes as it did before
            h.update(field.name.encode())
            _feed(h, getattr(obj, field.name), depth + 1)
    elif hasattr(obj, "__dict__") and not callable(obj):
        h.update(type(obj).__name__.encode())
        _feed(h, {k: v for k, v in vars(obj).items() if not k.startswith("_")}, depth + 1)
    else:  # locks, modules, ...: the type and the repr without memory addresses
        h.update(re.sub(r"0x[0-9a-fA-F]+", "0x", repr(obj)).encode())


def digest(obj: Any) -> str:
    h = hashlib.sha256()
    _feed(h, obj)
    return h.hexdigest()


def _widget_state(widget: Any) -> dict[str, Any]:
    """The synced data; not the front-end bundle (``_esm``/``_css``), whose code may change, nor
    the ids of the layout and comm, new each run."""
    skip = ("_esm", "_css", "layout", "_model_id", "tabbable")
    return {k: v for k, v in widget.get_state().items() if k not in skip}


def _without_ids(html: str) -> str:
    """Bokeh names its document's elements with fresh UUIDs and counters on every call."""
    html = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "uuid", html)
    return re.sub(r"\bp\d{4,}\b", "pN", html)


def outputs() -> dict[str, Callable[[], Any]]:
    import llmasos_widgets as lw

    torch.manual_seed(0)
    model = lw.load_model("tiny-llama")
    tmp = Path(tempfile.mkdtemp())
    cache: dict[str, Any] = {}

    def exp() -> Any:
        if "exp" not in cache:
            cache["exp"] = model.explain(TEXT)
        return cache["exp"]

    def attention_widget() -> Any:
        if "aw" not in cache:
            cache["aw"] = lw.AttentionWidget(exp())
        return cache["aw"]

    def views(long: bool = False) -> list[Any]:
        explanation = model.explain(" ".join([TEXT] * 10), saliency=False) if long else exp()
        widget, n = lw.AttentionWidget(explanation), explanation.n_tokens
        replies = []
        for request_id, (layer, heads, rows, cols, shape, reduce, combine) in enumerate([
            (0, [0], (0, n), (0, n), (n, n), "max", "mean"),
            (1, [0, 1, 2, 3], (0, n), (0, n), (4, 5), "max", "mean"),
            (1, [1, 2], (2, n), (0, n - 1), (3, 3), "sum", "each"),
            (0, list(range(explanation.n_heads)), (n - 1, n), (0, n), (1, n), "max", "mean"),
            (1, [3], (n // 3, n), (0, n // 2), (7, 9), "max", "mean"),
        ]):  # fmt: skip
            replies.append(widget.view_message({
                "type": "request_view", "request_id": request_id, "layer": layer,
                "heads": heads, "rows": list(rows), "cols": list(cols), "shape": list(shape),
                "reduce": reduce, "combine": combine,
            }))  # fmt: skip
        if long:
            asked = [([n - 1], [], "from"), ([2, n // 2], [n - 3], "to")]
            replies.append([widget.flow_values(*request) for request in asked])
        return replies

    def every_head(read: Callable[[int, int], Any], explanation: Any = None) -> list[Any]:
        explanation = explanation or exp()
        layers, heads = range(explanation.n_layers), range(explanation.n_heads)
        return [read(layer, head) for layer in layers for head in heads]

    def report() -> str:
        return Path(exp().to_html(tmp / "report.html")).read_text(encoding="utf-8")

    def saved() -> Any:
        loaded = lw.Explanation.load(exp().save(tmp / "run.llmx"))
        return every_head(loaded.attention, loaded), loaded.saliency

    def patching() -> Any:
        clean, corrupted = "the keys near the cabinet", "the key near the cabinets"
        return lw.activation_patching(model, clean, corrupted, target=VERB)

    def probe() -> Any:
        rows = [
            (f"the {noun} near the {other} {verb}", verb)
            for noun, other in [("key", "cabinets"), ("keys", "cabinet"), ("dog", "cats"),
                                ("dogs", "cat"), ("book", "tables"), ("books", "table"),
                                ("cup", "boxes"), ("cups", "box")]
            for verb in ["is", "are"]
        ]  # fmt: skip
        return lw.probe(model, rows, progress=False, max_iter=50)

    def probe_html() -> str:
        return _without_ids(Path(probe().to_html(tmp / "probe.html")).read_text(encoding="utf-8"))

    def flows() -> list[Any]:
        asked = [([3], [], "from"), ([5], [2], "to"), ([1, 4], [], "to")]
        return [attention_widget().flow_values(*request) for request in asked]

    def chat() -> Any:
        model.tokenizer.chat_template = "{% for m in messages %}{{ m['content'] }} {% endfor %}"
        return model.explain(messages=[{"role": "user", "content": SHORT}])

    items: dict[str, Callable[[], Any]] = {
        "explain": exp,
        "explain.attention": lambda: every_head(exp().attention),
        "explain.layer_attention": lambda: [
            exp().layer_attention(i) for i in range(exp().n_layers)
        ],
        "explain.pooled": lambda: [
            exp().pooled_attention(1, 2, shape=(3, 4)),
            exp().pooled_attention(0, 1, rows=(2, 9), cols=(0, 7), shape=(2, 2)),
        ],
        "explain.pooled_layer": lambda: exp().pooled_layer_attention(1, shape=(5, 5)),
        "explain.top_heads": lambda: [exp().top_heads(s) for s in sorted(exp().head_summaries)],
        "explain.sinks": lambda: exp().find_attention_sinks(),
        "explain.lens": lambda: [exp().lens_site(s) for s in range(exp().n_layers + 1)],
        "explain.report": report,
        "explain.saved": saved,
        "explain.repr": lambda: repr(exp()),
        "attention_widget.state": lambda: _widget_state(attention_widget()),
        "attention_widget.pattern": lambda: every_head(attention_widget().pattern_message),
        "attention_widget.views": views,
        "attention_widget.views_long": lambda: views(long=True),
        "attention_widget.flow": flows,
        "qk_breakdown": lambda: lw.qk_breakdown(exp(), 1, 2, 8, 3),
        "saliency_widget.state": lambda: _widget_state(
            lw.SaliencyWidget(model, SHORT, target=VERB)
        ),
        "logit_lens_widget.state": lambda: _widget_state(lw.LogitLensWidget(exp())),
        "generate": lambda: lw.generate(model, SHORT, max_new_tokens=4),
        "chat": chat,
        "ablate": lambda: lw.ablate_heads(model, TEXT, [(0, 1), (1, 2)], target=VERB, position=5),
        "ablate.mean": lambda: lw.ablate_heads(
            model, [TEXT, SHORT], [(1, 0)], mode="mean", reference=[SHORT, TEXT]
        ),
        "patching": patching,
        "patching_widget.state": lambda: _widget_state(lw.PatchingWidget(patching())),
        "activations": lambda: lw.activations(model, [TEXT, SHORT], progress=False),
        "probe": probe,
        "probe.html": probe_html,
        "probe_widget.state": lambda: _widget_state(lw.ProbeWidget(probe())),
        "compare": lambda: lw.compare(model, model, SHORT, target=VERB),
        "compare_faithfulness": lambda: lw.compare_faithfulness(model, SHORT, target=VERB),
    }
    for method in ("gradient", "input_x_gradient", "integrated_gradients", "occlusion"):

        def attribute(method: str = method, **options: Any) -> Any:
            return lw.attribute(model, SHORT, target=VERB, method=method, progress=False, **options)

        items[f"attribute.{method}"] = lambda a=attribute: a(layers="all")
        items[f"explain.{method}"] = lambda m=method: model.explain(
            SHORT, saliency_method=m, target="are"
        )
        items[f"faithfulness.{method}"] = lambda a=attribute: lw.faithfulness(
            model, a(), n_random=4
        )
    return items


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--compare", type=Path, help="an earlier snapshot to compare with")
    args = parser.parse_args()
    if os.environ.get("PYTHONHASHSEED") != "0":  # set order is part of some outputs
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable, *sys.argv])
    torch.set_num_threads(1)
    result: dict[str, str] = {}
    for name, make in outputs().items():
        try:
            result[name] = digest(make())
        except Exception as error:  # recorded, so a missing name shows as a difference
            result[name] = f"ERROR {type(error).__name__}: {error}"
            traceback.print_exc()
        print(f"{name:32s} {result[name][:70]}", flush=True)
    args.out.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    if args.compare is None:
        return 0
    before = json.loads(args.compare.read_text())
    changed = sorted(k for k in before.keys() | result.keys() if before.get(k) != result.get(k))
    for name in changed:
        print(f"DIFFERS {name}: {before.get(name, '-')[:40]} -> {result.get(name, '-')[:40]}")
    print(f"{len(before) - len(changed)} of {len(before)} outputs bitwise equal")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
