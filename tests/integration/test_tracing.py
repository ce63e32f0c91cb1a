"""trace() on random-init LLaMA-family models, checked against HF eager attention."""

from __future__ import annotations

import gc
import inspect
import weakref
from typing import Any

import pytest
import torch
from transformers import (
    Gemma2Config,
    Gemma2ForCausalLM,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    PreTrainedModel,
    Qwen2Config,
    Qwen2ForCausalLM,
)
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, AttentionInterface

from llmasos_widgets._hooks import count_hooks
from llmasos_widgets.tracing import (
    AttentionSpec,
    UnsupportedArchitectureError,
    attention_pattern,
    check_supported,
    trace,
)

VOCAB = 97
T = 10
# larger than HF's 0.02 so patterns are peaked and softcap/window visibly change them
SHARED: dict[str, Any] = dict(
    vocab_size=VOCAB,
    hidden_size=64,
    intermediate_size=128,
    num_attention_heads=4,
    initializer_range=0.25,
)


def _build(cls: type[PreTrainedModel], config: Any) -> PreTrainedModel:
    torch.manual_seed(0)
    return cls(config).eval()


def llama_gqa(**extra: Any) -> PreTrainedModel:
    config = LlamaConfig(**SHARED, num_hidden_layers=2, num_key_value_heads=2, **extra)
    return _build(LlamaForCausalLM, config)


def llama_mha() -> PreTrainedModel:
    return _build(
        LlamaForCausalLM, LlamaConfig(**SHARED, num_hidden_layers=2, num_key_value_heads=4)
    )


def mistral_window() -> PreTrainedModel:
    config = MistralConfig(**SHARED, num_hidden_layers=2, num_key_value_heads=2, sliding_window=4)
    return _build(MistralForCausalLM, config)


def qwen2_window() -> PreTrainedModel:
    # layer 0 full attention, layers 1-2 a window of 3: per-layer masks
    config = Qwen2Config(
        **SHARED,
        num_hidden_layers=3,
        num_key_value_heads=2,
        use_sliding_window=True,
        sliding_window=3,
        max_window_layers=1,
    )
    return _build(Qwen2ForCausalLM, config)


def gemma2_softcap() -> PreTrainedModel:
    config = Gemma2Config(
        **SHARED,
        num_hidden_layers=2,
        num_key_value_heads=2,
        head_dim=16,
        query_pre_attn_scalar=16,
        attn_logit_softcapping=1.5,
        sliding_window=4,
        attn_implementation="eager",
    )
    return _build(Gemma2ForCausalLM, config)


def _ids(batch: int = 1, length: int = T, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(1, VOCAB, (batch, length), generator=generator)


def _left_padded() -> tuple[torch.Tensor, torch.Tensor]:
    """Two sequences, lengths T and 6, the shorter one left-padded."""
    ids = _ids(batch=2)
    mask = torch.ones_like(ids)
    mask[1, : T - 6] = 0
    ids[1, : T - 6] = 0
    return ids, mask


def _eager_attentions(model: PreTrainedModel, **inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
    model.set_attn_implementation("eager")
    with torch.no_grad():
        return model(**inputs, output_attentions=True).attentions


def _assert_matches_eager(model: PreTrainedModel, ids: torch.Tensor, mask: torch.Tensor) -> Any:
    with torch.no_grad(), trace(model) as tr:
        model(input_ids=ids, attention_mask=mask)
    eager = _eager_attentions(model, input_ids=ids, attention_mask=mask)
    assert len(eager) == tr.n_layers == len(tr.queries)
    for layer in range(tr.n_layers):
        for batch in range(ids.shape[0]):
            real = mask[batch].bool()
            rebuilt = tr.attention(layer, batch=batch)
            expected = eager[layer][batch].float()
            assert rebuilt.dtype == torch.float32
            assert rebuilt.shape == expected.shape
            torch.testing.assert_close(rebuilt[:, real], expected[:, real], atol=1e-5, rtol=0)
            assert torch.all(rebuilt[:, ~real] == 0), "padded query rows are documented as zeros"
    return tr


@pytest.mark.parametrize(
    "build", [llama_gqa, llama_mha, mistral_window, qwen2_window, gemma2_softcap]
)
def test_rebuilt_patterns_equal_eager_attention(build: Any) -> None:
    model = build()
    tr = _assert_matches_eager(model, _ids(), torch.ones(1, T, dtype=torch.long))
    assert [q.shape for q in tr.queries] == [(1, 4, T, 16)] * tr.n_layers
    assert [k.shape[1] for k in tr.keys] == [model.config.num_key_value_heads] * tr.n_layers


def test_left_padded_batch_matches_eager_on_real_rows() -> None:
    ids, mask = _left_padded()
    _assert_matches_eager(llama_gqa(), ids, mask)
    _assert_matches_eager(qwen2_window(), ids, mask)


def test_specs_follow_each_layer_config() -> None:
    model = qwen2_window()
    with torch.no_grad(), trace(model) as tr:
        model(input_ids=_ids())
    assert [s.sliding_window for s in tr.spec] == [None, 3, 3]
    assert {s.n_kv_groups for s in tr.spec} == {2}
    assert tr.spec[0].scaling == pytest.approx(16**-0.5)

    gemma = gemma2_softcap()
    with torch.no_grad(), trace(gemma) as tr:
        gemma(input_ids=_ids())
    assert [(s.softcap, s.sliding_window) for s in tr.spec] == [(1.5, 4), (1.5, None)]


def test_softcap_and_window_change_the_pattern() -> None:
    """Guards the known-answer tests above against being vacuous."""
    for build, dropped in ((gemma2_softcap, "softcap"), (mistral_window, "sliding_window")):
        model = build()
        with torch.no_grad(), trace(model) as tr:
            model(input_ids=_ids())
        q, k, spec = tr.queries[0][0], tr.keys[0][0], tr.spec[0]
        without = AttentionSpec(**{**vars(spec), dropped: None})
        gap = (attention_pattern(q, k, spec) - attention_pattern(q, k, without)).abs().max()
        assert gap > 1e-2, f"{dropped} has no visible effect on this config"


def test_logits_bitwise_equal_and_residual_stream() -> None:
    model = llama_gqa()
    ids, mask = _left_padded()
    with torch.no_grad():
        plain = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        with trace(model) as tr:
            traced = model(input_ids=ids, attention_mask=mask)
        final_norm = model.model.norm(tr.residual[-1])
    assert model.config._attn_implementation == "sdpa"
    assert torch.equal(traced.logits, plain.logits)
    assert len(tr.residual) == tr.n_layers + 1
    assert torch.equal(tr.residual[0], model.model.embed_tokens(ids))
    for index in range(tr.n_layers):
        assert torch.equal(tr.residual[index], plain.hidden_states[index])
    # HF's last hidden state is after the final norm; ours is before it
    assert torch.equal(final_norm, plain.hidden_states[-1])
    assert torch.equal(tr.forwards[0].attention_mask, mask.bool())


def _registry_state() -> tuple[dict[str, Any], dict[str, Any]]:
    return dict(ALL_ATTENTION_FUNCTIONS._local_mapping), dict(AttentionInterface._global_mapping)


def test_hooks_and_registry_given_back_after_success_and_exception() -> None:
    model = llama_gqa()
    before = _registry_state()
    with torch.no_grad(), trace(model) as tr:
        assert count_hooks(model) > 0
        assert _registry_state() != before
        model(input_ids=_ids())
    assert count_hooks(model) == 0
    assert _registry_state() == before
    assert len(tr.queries) == 2

    with pytest.raises(ZeroDivisionError), torch.no_grad(), trace(model):
        model(input_ids=_ids())
        _ = 1 / 0
    assert count_hooks(model) == 0
    assert _registry_state() == before

    with pytest.raises(IndexError), torch.no_grad(), trace(model):
        model(input_ids=torch.full((1, 3), VOCAB + 5))  # fails inside the forward
    assert count_hooks(model) == 0
    assert _registry_state() == before


def test_eager_model_registry_entry_removed_again() -> None:
    model = gemma2_softcap()
    before = _registry_state()
    with torch.no_grad(), trace(model):
        assert "eager" in ALL_ATTENTION_FUNCTIONS._local_mapping
        model(input_ids=_ids())
    assert "eager" not in ALL_ATTENTION_FUNCTIONS._local_mapping
    assert _registry_state() == before


def test_model_garbage_collectable_after_trace() -> None:
    model = llama_gqa()
    with torch.no_grad(), trace(model) as tr:
        model(input_ids=_ids())
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None
    assert tr.attention(0).shape == (4, T, T)  # captures outlive the model


def test_user_grad_state_untouched_and_gradients_flow() -> None:
    model = llama_gqa()
    model.model.layers[0].mlp.up_proj.weight.requires_grad_(False)
    preset = torch.full_like(model.lm_head.weight, 0.5)
    model.lm_head.weight.grad = preset.clone()
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    grads = {name: p.grad for name, p in model.named_parameters()}

    with trace(model) as tr:
        model(input_ids=_ids())
    assert {name: p.requires_grad for name, p in model.named_parameters()} == flags
    assert all(p.grad is grads[name] for name, p in model.named_parameters())
    assert torch.equal(model.lm_head.weight.grad, preset)
    assert not tr.queries[0].requires_grad and not tr.residual[1].requires_grad

    # saliency runs inside a trace: gradients must equal those without it
    embeds = model.model.embed_tokens(_ids()).detach()

    def input_gradient(traced: bool) -> torch.Tensor:
        leaf = embeds.clone().requires_grad_(True)
        if traced:
            with trace(model):
                model(inputs_embeds=leaf).logits[0, -1].logsumexp(-1).backward()
        else:
            model(inputs_embeds=leaf).logits[0, -1].logsumexp(-1).backward()
        assert leaf.grad is not None
        return leaf.grad

    assert torch.equal(input_gradient(traced=True), input_gradient(traced=False))


def test_other_models_pass_through_and_traces_nest() -> None:
    model, other = llama_gqa(), llama_gqa()
    ids = _ids()
    with torch.no_grad():
        other_plain = other(input_ids=ids).logits
        with trace(model) as outer:
            with trace(model, residual=False) as inner:
                model(input_ids=ids)
            other_traced = other(input_ids=ids).logits
            model(input_ids=ids)
    assert torch.equal(other_traced, other_plain)
    assert len(outer.forwards) == 2, "the other model's forward was not recorded"
    assert len(inner.forwards) == 1
    assert all(torch.equal(a, b) for a, b in zip(outer.queries, inner.queries, strict=True))
    with pytest.raises(RuntimeError, match="qk=False|residual=False"):
        _ = inner.residual


def test_out_of_order_exit_restores_registry() -> None:
    model, other = llama_gqa(), llama_gqa()
    before = _registry_state()
    first, second = trace(model), trace(other)
    tr_first = first.__enter__()
    tr_second = second.__enter__()
    first.__exit__(None, None, None)  # leaves before the trace entered after it
    with torch.no_grad():
        other(input_ids=_ids())
        model(input_ids=_ids())
    second.__exit__(None, None, None)
    assert _registry_state() == before
    assert len(tr_second.forwards) == 1 and not tr_first.forwards
    assert count_hooks(model) == count_hooks(other) == 0


def _cache_kwargs(model: torch.nn.Module, output: Any) -> dict[str, Any]:
    """The previous step's cache under this transformers version's name (5.17:
    ``past_key_values``; from about 5.20: ``cache``, the old name deprecated)."""
    if "cache" in inspect.signature(model.forward).parameters:
        return {"cache": output.cache}
    return {"past_key_values": output.past_key_values}


def test_cached_decoding_step_matches_full_sequence() -> None:
    """Each forward is recorded; a decode step's queries sit at the end of the key axis."""
    model = llama_gqa()
    ids = _ids(length=T + 1)
    with torch.no_grad(), trace(model) as tr:
        prompt = model(input_ids=ids[:, :T], use_cache=True)
        model(input_ids=ids[:, T:], **_cache_kwargs(model, prompt), use_cache=True)
    assert len(tr.forwards) == 2
    # the step stores only its new key; the key axis of its pattern is rebuilt: 0 .. T
    assert tr.forwards[1].queries[0].shape[2] == 1 and tr.forwards[1].keys[0].shape[2] == 1
    assert tr.key_positions(0, forward=1) == range(0, T + 1)
    eager = _eager_attentions(model, input_ids=ids)
    for layer in range(tr.n_layers):
        step = tr.attention(layer, forward=1)
        torch.testing.assert_close(step, eager[layer][0][:, -1:], atol=1e-5, rtol=0)


def test_head_selection_keeps_gqa_pairing() -> None:
    model = llama_gqa()
    with torch.no_grad(), trace(model) as tr:
        model(input_ids=_ids())
    everything = tr.attention(1)
    # equal up to matmul batching order; a wrong kv head would differ by ~1e-1
    torch.testing.assert_close(tr.attention(1, heads=[3, 0]), everything[[3, 0]], atol=1e-6, rtol=0)
    torch.testing.assert_close(tr.attention(1, heads=2), everything[2:3], atol=1e-6, rtol=0)
    with pytest.raises(IndexError, match="heads"):
        tr.attention(1, heads=[4])
    with pytest.raises(IndexError, match="layer"):
        tr.attention(2)


def test_unsupported_architectures_raise_clear_errors() -> None:
    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=VOCAB))
    with pytest.raises(UnsupportedArchitectureError, match="'gpt2'.*gemma2, llama, mistral, qwen2"):
        check_supported(gpt2)
    with pytest.raises(UnsupportedArchitectureError), trace(gpt2):
        pytest.fail("trace() must refuse before yielding")
    assert count_hooks(gpt2) == 0

    gemma = gemma2_softcap()
    gemma.config._attn_implementation = "sdpa"  # what a mis-loaded checkpoint would say
    with pytest.raises(UnsupportedArchitectureError, match="eager"):
        check_supported(gemma)
    with pytest.raises(TypeError, match="PreTrainedModel"):
        check_supported(torch.nn.Linear(2, 2))


def test_no_forward_gives_a_clear_error() -> None:
    model = llama_gqa()
    with trace(model) as tr:
        pass
    with pytest.raises(RuntimeError, match="no forward pass"):
        _ = tr.queries
    with (
        pytest.raises(ValueError, match="nothing to capture"),
        trace(model, qk=False, residual=False),
    ):
        pass
