"""Part (f) of bench/gpu_check.py (issue 11): T = 32k at LLaMA-2-7B shape -- explain, the
AttentionWidget's first render message and one head at view resolution: time and peak memory.

Random-init weights, bf16, captures kept on the card (``keep="gpu"``) so views compute there;
on the CPU (smoke test) ``keep="cpu"`` at a small T. Figures come only from a GPU run's JSON.
"""

from __future__ import annotations

import json
from typing import Any

import bench_scale
import torch

from llmasos_widgets.explanation import explain
from llmasos_widgets.models import as_explainable

VIEW = (512, 512)


def _message_bytes(content: dict[str, Any], buffers: list[bytes]) -> int:
    return len(json.dumps(content).encode()) + sum(len(b) for b in buffers)


def long_context(args: Any, shape: dict[str, Any]) -> dict[str, Any]:
    from bench_widget import first_render_bytes
    from transformers import LlamaConfig, LlamaForCausalLM

    from llmasos_widgets.widgets import AttentionWidget
    from llmasos_widgets.widgets._pattern_views import ViewRequest, view_message

    on_cuda = args.device.startswith("cuda")
    tokens = args.long_tokens or (32768 if on_cuda else 256)
    layers = args.layers or 32
    keep = "gpu" if on_cuda else "cpu"
    sizes = {**shape, "num_hidden_layers": layers, "max_position_embeddings": max(tokens, 4096)}
    torch.manual_seed(0)
    with torch.device(args.device):
        model = LlamaForCausalLM._from_config(LlamaConfig(**sizes), dtype=torch.bfloat16)
    model.set_attn_implementation("sdpa")
    model.eval()
    n_words = min(1000, shape["vocab_size"] - 16)  # word ids + specials inside the vocabulary
    tokenizer = bench_scale.word_tokenizer(n_words, max_length=tokens)
    explainable = as_explainable(model, tokenizer)
    text = bench_scale.sample_text(tokens, n_words)
    explained = bench_scale.measure(
        lambda: explain(explainable, text, saliency=False, keep=keep),
        args.device,
        keep_result=True,
    )
    explanation = explained.pop("result")
    whole = (0, explanation.n_tokens)

    def first_render() -> int:
        widget = AttentionWidget(explanation, selected_layer=0, selected_heads=[0])
        state = first_render_bytes(widget)["data"]
        request = ViewRequest(request_id=0, layer=0, heads=(0,), rows=whole, cols=whole, shape=VIEW)
        view = _message_bytes(*view_message(explanation, request))
        widget.close()
        return state + view

    render = bench_scale.measure(first_render, args.device, keep_result=True)
    head = bench_scale.measure(
        lambda: explanation.pooled_attention(layers - 1, 1, shape=VIEW), args.device
    )
    query = explanation.n_tokens - 1
    key = max(0, query - 20_000)
    detail = bench_scale.measure(
        lambda: explanation.pooled_attention(
            layers - 1, 1, rows=(query - 63, query + 1), cols=(key, key + 64), shape=(64, 64)
        ),
        args.device,
    )
    return {
        "layers": layers,
        "tokens": explanation.n_tokens,
        "heads": explanation.n_heads,
        "keep": keep,
        "qk_device": str(explanation.queries[0].device),
        "qk_bytes": sum(t.nbytes for t in (*explanation.queries, *explanation.keys)),
        "weight_bytes": bench_scale.weight_bytes(model),
        "summary_notes": dict(explanation.summary_notes),
        "explain": {"seconds": explained["seconds"], "peak_bytes": explained["peak_bytes"]},
        "first_render": {
            "bytes": render["result"],
            "seconds": render["seconds"],
            "peak_bytes": render["peak_bytes"],
        },
        "one_head_view": {k: head[k] for k in ("seconds", "peak_bytes")} | {"shape": list(VIEW)},
        "detail_64x64": {k: detail[k] for k in ("seconds", "peak_bytes")},
    }
