"""Gradient passes at real size: layers recomputed in the backward, same numbers, hooks back."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest
import torch

from llmasos_widgets.attribution import _attribute, _residual, attribute
from llmasos_widgets.attribution._residual import ResidualRunner, recomputed_in_backward

TEXT = "w1 w2 w3 w4 w5 w6 w1 w2 w3"


@pytest.mark.parametrize("method", ["gradient", "input_x_gradient"])
def test_recomputing_layers_gives_bitwise_the_same_saliency(
    tiny_random: Any, method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = attribute(tiny_random, TEXT, method=method)
    calls: list[Any] = []
    real = _residual.checkpoint

    def counting_checkpoint(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs.get("use_reentrant"))
        return real(*args, **kwargs)

    monkeypatch.setattr(_residual, "checkpoint", counting_checkpoint)
    monkeypatch.setattr(_attribute, "_RECOMPUTE_ABOVE", 0)
    recomputed = attribute(tiny_random, TEXT, method=method)
    assert calls == [False] * len(tiny_random.hf_model.model.layers)
    np.testing.assert_array_equal(recomputed.scores, plain.scores)
    layers = tiny_random.hf_model.model.layers
    assert all("forward" not in layer.__dict__ for layer in layers)


def test_recompute_restores_a_forward_someone_else_put_on_the_layer(tiny_random: Any) -> None:
    """accelerate's device_map wraps each layer's forward on the instance; it must stay."""
    layer = tiny_random.hf_model.model.layers[0]
    wrapped = functools.partial(type(layer).forward, layer)
    layer.forward = wrapped
    with recomputed_in_backward(tiny_random.hf_model.model.layers):
        assert layer.forward is not wrapped
    assert layer.forward is wrapped


def _saved_bytes(runner: ResidualRunner, sites: list[int], target: Any) -> int:
    """Bytes autograd keeps for the backward outside any checkpoint during one gradient pass."""
    total = 0

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        runner.gradients(runner.embed(), sites, target)
    return total


def test_recomputation_keeps_a_fraction_of_the_activations() -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=64,
        intermediate_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    model = LlamaForCausalLM(config).eval()
    ids = torch.arange(4, 36)[None]

    def target(logits: torch.Tensor) -> torch.Tensor:
        return logits[:, 5]

    sites = list(range(5))
    plain = _saved_bytes(ResidualRunner(model, ids), sites, target)
    recomputed = _saved_bytes(ResidualRunner(model, ids, recompute=True), sites, target)
    # what stays is the head's part (final norm on every position, the last position's logits)
    assert recomputed < plain / 8
    a = ResidualRunner(model, ids).gradients(ResidualRunner(model, ids).embed(), sites, target)
    b = ResidualRunner(model, ids, recompute=True).gradients(
        ResidualRunner(model, ids).embed(), sites, target
    )
    for site in sites:
        assert torch.equal(a[1][site], b[1][site]) and torch.equal(a[0][site], b[0][site])
