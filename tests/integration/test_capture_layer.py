"""The capture layer (``tracing/_anatomy.py``) and what trace/explain/probing inherit from it:
eval mode with every module's flag restored, per-thread recording, and errors that name the
layer and the attention backend."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from llmasos_widgets._hooks import borrowed_hooks, count_hooks
from llmasos_widgets.explanation import explain
from llmasos_widgets.models import as_explainable
from llmasos_widgets.probing import activations
from llmasos_widgets.tracing import trace
from llmasos_widgets.tracing._anatomy import anatomy, eval_mode, site_label
from tests.conftest import random_llama, word_tokenizer

TEXT = "w1 w5 w7 w3 w1 w5"
OTHER = "w9 w9 w2"


def _dropout_model():
    """A model whose forward in training mode differs from eval mode (attention dropout)."""
    return random_llama(attention_dropout=0.5)


def _ids(text: str) -> torch.Tensor:
    return word_tokenizer()(text, return_tensors="pt")["input_ids"]


def _mixed_flags(hf_model: torch.nn.Module) -> list[bool]:
    hf_model.train()
    hf_model.model.layers[0].eval()  # mixed flags: model.train(was) would flatten them
    hf_model.lm_head.eval()
    return [module.training for module in hf_model.modules()]


def _traced(hf_model: torch.nn.Module, ids: torch.Tensor):
    with torch.no_grad(), trace(hf_model) as tr:
        logits = hf_model(input_ids=ids).logits
    return tr, logits


def test_dropout_changes_the_model_in_training_mode() -> None:
    """The premise of the tests below: without eval mode the forward is random."""
    hf_model, ids = _dropout_model().train(), _ids(TEXT)
    torch.manual_seed(1)
    first = hf_model(input_ids=ids).logits
    torch.manual_seed(2)
    assert not torch.equal(first, hf_model(input_ids=ids).logits)


def test_trace_in_training_mode_equals_eval_mode_and_restores_each_flag() -> None:
    hf_model, ids = _dropout_model(), _ids(TEXT)
    expected, expected_logits = _traced(hf_model, ids)
    flags = _mixed_flags(hf_model)

    torch.manual_seed(3)
    got, logits = _traced(hf_model, ids)

    assert torch.equal(logits, expected_logits)
    for layer in range(2):
        assert torch.equal(got.queries[layer], expected.queries[layer])
        assert torch.equal(got.keys[layer], expected.keys[layer])
    for site in range(3):
        assert torch.equal(got.residual[site], expected.residual[site])
    assert [module.training for module in hf_model.modules()] == flags
    assert count_hooks(hf_model) == 0


def test_explain_in_training_mode_equals_eval_mode_and_restores_each_flag() -> None:
    model = as_explainable(_dropout_model(), word_tokenizer())
    expected = explain(model, TEXT)
    flags = _mixed_flags(model.hf_model)

    torch.manual_seed(4)
    got = explain(model, TEXT)

    np.testing.assert_array_equal(got.top_probs, expected.top_probs)
    np.testing.assert_array_equal(got.lens_probs, expected.lens_probs)
    for name, summary in expected.head_summaries.items():
        np.testing.assert_array_equal(got.head_summaries[name], summary)
    assert got.saliency is not None and expected.saliency is not None
    np.testing.assert_array_equal(got.saliency.scores, expected.saliency.scores)
    assert [module.training for module in model.hf_model.modules()] == flags


def test_activations_restore_each_module_flag() -> None:
    model = as_explainable(_dropout_model(), word_tokenizer())
    expected = activations(model, [TEXT, OTHER], progress=False)
    flags = _mixed_flags(model.hf_model)

    got = activations(model, [TEXT, OTHER], progress=False)

    for site in expected.layers:
        np.testing.assert_array_equal(got[site], expected[site])
    assert [module.training for module in model.hf_model.modules()] == flags


def test_eval_mode_restores_mixed_flags_after_an_exception() -> None:
    hf_model = random_llama()
    flags = _mixed_flags(hf_model)
    with pytest.raises(KeyError), eval_mode(hf_model):
        assert not any(module.training for module in hf_model.modules())
        raise KeyError("boom")
    assert [module.training for module in hf_model.modules()] == flags


def test_another_thread_running_the_model_inside_a_trace_is_not_recorded() -> None:
    """Thread B runs the same model in the middle of thread A's traced forward (from a hook
    on A's layer 1): A's trace holds exactly A's single forward, unchanged."""
    hf_model, ids, other_ids = random_llama(), _ids(TEXT), _ids(OTHER)
    expected, expected_logits = _traced(hf_model, ids)
    _, other_expected = _traced(hf_model, other_ids)
    other_logits: list[torch.Tensor] = []
    started: list[bool] = []

    def run_other() -> None:
        with torch.no_grad():
            other_logits.append(hf_model(input_ids=other_ids).logits)

    def interleave(_module, _args) -> None:
        if not started:  # once: B's own forward passes this hook too
            started.append(True)
            worker = threading.Thread(target=run_other)
            worker.start()
            worker.join()

    with borrowed_hooks() as hooks:
        hooks.forward_pre(hf_model.model.layers[1], interleave)
        got, logits = _traced(hf_model, ids)

    assert len(other_logits) == 1 and torch.equal(other_logits[0], other_expected)
    assert len(got.forwards) == 1
    assert torch.equal(logits, expected_logits)
    for layer in range(2):
        assert torch.equal(got.queries[layer], expected.queries[layer])
    for site in range(3):
        assert torch.equal(got.residual[site], expected.residual[site])


def test_each_thread_records_its_own_trace_of_one_model() -> None:
    hf_model = random_llama()
    texts = [TEXT, OTHER]
    expected = [_traced(hf_model, _ids(text))[0].residual[-1] for text in texts]
    both_open = threading.Barrier(2)
    got: dict[int, list[torch.Tensor]] = {}

    def run(index: int) -> None:
        with torch.no_grad(), trace(hf_model) as tr:
            both_open.wait(timeout=30)  # both traces are open before either runs the model
            hf_model(input_ids=_ids(texts[index]))
            both_open.wait(timeout=30)
        got[index] = [capture.residual[-1] for capture in tr.forwards]

    workers = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    for index in range(2):
        assert len(got[index]) == 1
        assert torch.equal(got[index][0], expected[index])
    assert count_hooks(hf_model) == 0


def test_an_attention_call_that_bypasses_the_capture_names_layer_and_backend() -> None:
    hf_model, ids = random_llama(), _ids(TEXT)
    attention = hf_model.model.layers[1].self_attn

    def bypass(hidden_states: torch.Tensor, *args, **kwargs):
        return torch.zeros_like(hidden_states), None  # never reaches the attention interface

    attention.forward = bypass
    with torch.no_grad(), trace(hf_model) as tr:
        hf_model(input_ids=ids)
    with pytest.raises(RuntimeError) as raised:
        tr.queries  # noqa: B018
    message = str(raised.value)
    assert "L1" in message and "model.layers.1.self_attn" in message
    assert "'sdpa'" in message and "qk=False" not in message
    assert len(tr.residual) == 3  # the residual stream is still there


def test_sites_are_read_and_replaced_by_name() -> None:
    hf_model, ids = random_llama(), _ids(TEXT)
    parts = anatomy(hf_model)
    assert [site_label(site) for site in range(parts.n_sites)] == ["emb", "after L0", "after L1"]
    assert parts.attention_path(1) == "model.layers.1.self_attn"
    reference, _ = _traced(hf_model, ids)
    read: dict[int, torch.Tensor] = {}
    with torch.no_grad(), borrowed_hooks() as hooks:
        for site in range(parts.n_sites):
            parts.read_site(hooks, site, lambda hidden, site=site: read.setdefault(site, hidden))
        logits = hf_model(input_ids=ids).logits
        assert torch.equal(parts.head(read[2]), logits)  # the model's own head on site L
    for site in range(parts.n_sites):
        assert torch.equal(read[site], reference.residual[site])

    with torch.no_grad(), borrowed_hooks() as hooks:
        parts.replace_site(hooks, 0, lambda hidden: hidden * 0)
        zeroed = hf_model(input_ids=ids).logits
    with torch.no_grad():
        assert torch.equal(zeroed, hf_model(inputs_embeds=read[0] * 0).logits)
    assert count_hooks(hf_model) == 0
    with pytest.raises(ValueError, match="sites 0 \\(emb\\) to 2 \\(after L1\\)"):
        parts.check_site(3)


def test_overlapping_traces_from_two_threads_keep_a_training_model_in_eval_mode() -> None:
    """A opens, B opens, A runs and closes, then B runs: B still runs in eval mode (A's exit
    must not restore the training flags while B's trace is open), and the flags come back
    when B closes."""
    hf_model, ids = _dropout_model(), _ids(TEXT)
    expected = _traced(hf_model, ids)[1]
    flags = _mixed_flags(hf_model)
    a_open, b_open, a_done = threading.Event(), threading.Event(), threading.Event()
    logits: dict[str, torch.Tensor] = {}

    def thread_a() -> None:
        with torch.no_grad(), trace(hf_model):
            a_open.set()
            b_open.wait(timeout=30)
            logits["a"] = hf_model(input_ids=ids).logits
        a_done.set()

    def thread_b() -> None:
        a_open.wait(timeout=30)
        with torch.no_grad(), trace(hf_model):
            b_open.set()
            a_done.wait(timeout=30)
            torch.manual_seed(5)
            logits["b"] = hf_model(input_ids=ids).logits

    workers = [threading.Thread(target=thread_a), threading.Thread(target=thread_b)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert torch.equal(logits["a"], expected)
    assert torch.equal(logits["b"], expected)
    assert [module.training for module in hf_model.modules()] == flags
