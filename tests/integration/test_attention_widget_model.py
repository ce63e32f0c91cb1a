"""AttentionWidget on real explanations: what reaches the browser is the exact pattern (up to the
documented quantization), and the user's model is not kept alive by the widget."""

from __future__ import annotations

import gc
import weakref

import numpy as np

from llmasos_widgets.widgets import AttentionWidget
from tests._wire import decode_pattern, dequantize
from tests.conftest import random_llama, word_tokenizer

TEXT = "w1 w2 w3 w4 w5 w1 w2 w3"


def test_pattern_message_carries_the_exact_pattern_within_quantization(tiny_random):
    widget = AttentionWidget(tiny_random, TEXT)
    content, buffers = widget.pattern_message(1, 3)
    received = dequantize(*decode_pattern(content, buffers))
    exact = widget.explanation.attention(1, 3)
    # per-row uint8 quantization: error <= row max / 510
    bound = exact.max(axis=1, keepdims=True) / 510 + 1e-7
    assert np.all(np.abs(received - exact) <= bound)
    widget.close()


def test_bare_transformers_model_is_collectable_after_the_widget_is_closed():
    hf_model = random_llama(seed=5)
    widget = AttentionWidget(hf_model, TEXT, tokenizer=word_tokenizer())
    alive = weakref.ref(hf_model)
    widget.close()
    del hf_model
    gc.collect()
    assert alive() is None


def test_selecting_a_head_from_python_sends_its_pattern(tiny_random, monkeypatch):
    widget = AttentionWidget(tiny_random, TEXT)
    sent = []
    monkeypatch.setattr(widget, "send", lambda content, buffers=None: sent.append(content))
    widget.selected_layer = 1
    widget.selected_heads = [2]
    assert [(m["layer"], m["head"]) for m in sent if m["type"] == "pattern"] == [(1, 2)]
    widget.close()
