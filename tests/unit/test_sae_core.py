"""The SAE's arithmetic against a hand computation."""

from __future__ import annotations

import pytest
import torch

from llmasos_widgets.features import SAEConfig, SparseAutoencoder


def sae(activation: str, **config) -> SparseAutoencoder:
    model = SparseAutoencoder(SAEConfig(d_in=3, d_sae=4, site=1, activation=activation, **config))
    with torch.no_grad():
        model.W_enc.copy_(torch.tensor([[1.0, 0, 0, -0.5], [0, 1, 0, 2], [0, 0, 1, -0.5]]))
        model.b_enc.copy_(torch.tensor([0.0, -0.5, 0.1, 0]))
        model.W_dec.copy_(torch.eye(4, 3))
        model.b_dec.copy_(torch.tensor([0.5, 0, 0]))
    return model


X = torch.tensor([[2.5, 1.0, -1.0]])  # minus b_dec: [2, 1, -1]; pre = [2, 0.5, -0.9, 1.5]


def test_relu_topk_and_jumprelu_encode_as_defined() -> None:
    assert sae("relu").encode(X).tolist() == [[2.0, 0.5, 0.0, 1.5]]
    assert sae("topk", k=2).encode(X).tolist() == [[2.0, 0.0, 0.0, 1.5]]
    jump = sae("jumprelu")
    jump.threshold.copy_(torch.tensor([2.5, 0.1, 0.0, 1.0]))
    assert jump.encode(X).tolist() == [[0.0, 0.5, 0.0, 1.5]]


def test_decode_undoes_the_input_scale_and_error_is_the_rest() -> None:
    model = sae("relu", input_scale=2.0)
    features = torch.tensor([[1.0, 2.0, 0.0, 0.0]])
    assert model.decode(features).tolist() == [[0.75, 1.0, 0.0]]  # ([1, 2, 0] + b_dec) / 2
    x = torch.randn(5, 3)
    torch.testing.assert_close(model.error(x) + model(x), x)
    assert model.direction(1).tolist() == [0.0, 0.5, 0.0]


def test_bad_configs_are_refused() -> None:
    with pytest.raises(ValueError, match="k <= d_sae"):
        SAEConfig(d_in=3, d_sae=4, site=1, activation="topk", k=5)
    with pytest.raises(ValueError, match="activation must be"):
        SAEConfig(d_in=3, d_sae=4, site=1, activation="gated")
    with pytest.raises(ValueError, match="does not exist"):
        sae("relu").direction(4)
