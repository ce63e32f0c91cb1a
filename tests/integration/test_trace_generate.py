"""trace() around generate(): each decode step stores only its new keys, patterns stay exact."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import torch
from transformers import (
    DynamicCache,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    PreTrainedModel,
)

from llmasos_widgets.tracing import trace

# transformers renamed `past_key_values` to `cache` in 5.2x
CACHE = (
    "cache"
    if "cache" in inspect.signature(LlamaForCausalLM.forward).parameters
    else ("past_key_values")
)
VOCAB = 97
PROMPT = 6
NEW_TOKENS = 10
SHARED: dict[str, Any] = dict(
    vocab_size=VOCAB,
    hidden_size=64,
    intermediate_size=128,
    num_attention_heads=4,
    num_key_value_heads=2,
    num_hidden_layers=2,
    initializer_range=0.25,
)


def llama() -> PreTrainedModel:
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(**SHARED)).eval()


def mistral_window(window: int = 4) -> PreTrainedModel:
    torch.manual_seed(0)
    return MistralForCausalLM(MistralConfig(**SHARED, sliding_window=window)).eval()


def _ids(length: int, batch: int = 1, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(1, VOCAB, (batch, length), generator=generator)


def _generate(model: PreTrainedModel, ids: torch.Tensor) -> tuple[Any, Any]:
    with torch.no_grad(), trace(model) as tr:
        out = model.generate(
            ids,
            max_new_tokens=NEW_TOKENS,
            min_new_tokens=NEW_TOKENS,
            do_sample=False,
            pad_token_id=0,
            return_dict_in_generate=True,
        )
    return tr, out


def _one_forward(model: PreTrainedModel, ids: torch.Tensor) -> Any:
    with torch.no_grad(), trace(model) as full:
        model(input_ids=ids, use_cache=False)
    return full


@pytest.mark.parametrize("build", [llama, mistral_window])
def test_each_decode_step_equals_rows_of_one_forward(build: Any) -> None:
    model = build()
    tr, out = _generate(model, _ids(PROMPT))
    sequence = out.sequences
    assert sequence.shape[1] == PROMPT + NEW_TOKENS
    # the prompt, then one forward per generated token but the last
    assert len(tr.forwards) == NEW_TOKENS
    full = _one_forward(model, sequence[:, :-1])
    for step, capture in enumerate(tr.forwards):
        expected_queries = (
            range(0, PROMPT) if step == 0 else range(PROMPT + step - 1, PROMPT + step)
        )
        assert capture.query_positions == expected_queries
        for layer in range(tr.n_layers):
            assert tr.key_positions(layer, forward=step) == range(0, expected_queries.stop)
            pattern = tr.attention(layer, forward=step)
            rows = full.attention(layer)[:, expected_queries.start : expected_queries.stop]
            torch.testing.assert_close(
                pattern, rows[:, :, : expected_queries.stop], atol=1e-5, rtol=0
            )


def test_sliding_window_cache_holds_only_the_window_yet_steps_map_to_positions() -> None:
    window = 4
    model = mistral_window(window)
    tr, out = _generate(model, _ids(PROMPT))
    cache = out.past_key_values
    assert type(cache.layers[0]).__name__ == "DynamicSlidingWindowLayer"
    assert cache.layers[0].keys.shape[2] == window - 1  # the model itself kept only the window
    last = len(tr.forwards) - 1
    pattern = tr.attention(1, forward=last)
    position = PROMPT + NEW_TOKENS - 2
    assert pattern.shape[-1] == position + 1
    seen = torch.nonzero(pattern[0, 0] > 0).flatten().tolist()
    assert seen == list(range(position - window + 1, position + 1))


@pytest.mark.parametrize("build", [llama, mistral_window])
def test_captured_keys_grow_linearly_with_steps(build: Any) -> None:
    model = build()
    tr, _ = _generate(model, _ids(PROMPT))
    config = model.config
    per_position = config.num_key_value_heads * (config.hidden_size // config.num_attention_heads)
    stored = sum(k.numel() for capture in tr.forwards for k in capture.keys)
    anchors = sum(a.numel() for capture in tr.forwards for a in capture.anchor_by_layer.values())
    n_steps = NEW_TOKENS - 1
    layers = config.num_hidden_layers
    # every position's key once, plus one anchor key per decode step to check the chain
    assert stored == layers * per_position * (PROMPT + n_steps)
    assert anchors == layers * per_position * n_steps
    cloned_cache = layers * per_position * sum(PROMPT + s for s in range(n_steps + 1))
    assert stored + anchors < cloned_cache / 3  # what cloning each step's whole cache kept


def test_prefill_outside_the_trace_keeps_the_visible_window() -> None:
    """A step continuing a cache the trace did not see stores what the model saw, once."""
    window = 4
    model = mistral_window(window)
    ids = _ids(PROMPT + 3)
    cache = DynamicCache(config=model.config)
    with torch.no_grad():
        model(input_ids=ids[:, :PROMPT], **{CACHE: cache}, use_cache=True)
        with trace(model) as tr:
            for position in range(PROMPT, PROMPT + 3):
                model(input_ids=ids[:, position : position + 1], **{CACHE: cache})
    full = _one_forward(model, ids)
    first = tr.forwards[0]
    # the model attended to the window - 1 cached keys and the new one
    assert first.key_positions[0] == range(PROMPT - window + 1, PROMPT + 1)
    for step in range(3):
        position = PROMPT + step
        keys = tr.key_positions(0, forward=step)
        assert keys == range(PROMPT - window + 1, position + 1)
        pattern = tr.attention(0, forward=step)
        expected = full.attention(0)[:, position : position + 1, keys.start : keys.stop]
        torch.testing.assert_close(pattern, expected, atol=1e-5, rtol=0)


def test_reordered_cache_is_refused_with_a_clear_error() -> None:
    """Beam search reorders the cache between steps; per-step keys cannot follow it."""
    model = llama()
    ids = _ids(PROMPT + 2, batch=2)
    cache = DynamicCache(config=model.config)
    with torch.no_grad(), trace(model) as tr:
        model(input_ids=ids[:, :PROMPT], **{CACHE: cache}, use_cache=True)
        model(input_ids=ids[:, PROMPT : PROMPT + 1], **{CACHE: cache})
        cache.reorder_cache(torch.tensor([1, 0]))
        model(input_ids=ids[:, PROMPT + 1 : PROMPT + 2], **{CACHE: cache})
    assert tr.attention(1, forward=1).shape == (4, 1, PROMPT + 1)
    with pytest.raises(RuntimeError, match="no longer held the keys"):
        tr.attention(1, forward=2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_offloaded_captures_live_in_pinned_host_memory_and_match() -> None:
    model = llama().to("cuda")
    ids = _ids(PROMPT).to("cuda")
    with torch.no_grad(), trace(model, offload=True) as tr:
        model(input_ids=ids)
    with torch.no_grad(), trace(model) as on_device:
        model(input_ids=ids)
    assert all(q.device.type == "cpu" and q.is_pinned() for q in tr.queries)
    assert all(r.device.type == "cpu" for r in tr.residual)
    for layer in range(tr.n_layers):
        torch.testing.assert_close(tr.keys[layer], on_device.keys[layer].cpu(), atol=0, rtol=0)
        torch.testing.assert_close(
            tr.attention(layer), on_device.attention(layer).cpu(), atol=1e-5, rtol=0
        )


def test_a_cropped_cache_starts_a_new_chain_and_stays_exact() -> None:
    """Assisted decoding verifies several candidates, then crops the cache to those accepted."""
    model = llama()
    ids = _ids(PROMPT + 4)
    cache = DynamicCache(config=model.config)
    with torch.no_grad(), trace(model) as tr:
        model(input_ids=ids[:, :PROMPT], **{CACHE: cache}, use_cache=True)
        candidates = _ids(3, seed=7)
        model(input_ids=candidates, **{CACHE: cache})  # positions PROMPT .. PROMPT + 2
        cache.crop(-2)  # one candidate accepted: drop the other two
        model(input_ids=ids[:, PROMPT + 1 : PROMPT + 2], **{CACHE: cache})
    accepted = torch.cat([ids[:, :PROMPT], candidates[:, :1], ids[:, PROMPT + 1 : PROMPT + 2]], 1)
    full = _one_forward(model, accepted)
    last = tr.forwards[2]
    assert last.query_positions == range(PROMPT + 1, PROMPT + 2)
    # it did not continue the candidates' forward: it kept the keys the model saw, once
    assert last.key_positions[0] == range(0, PROMPT + 2)
    for layer in range(tr.n_layers):
        pattern = tr.attention(layer, forward=2)
        expected = full.attention(layer)[:, PROMPT + 1 : PROMPT + 2]
        torch.testing.assert_close(pattern, expected, atol=1e-5, rtol=0)
