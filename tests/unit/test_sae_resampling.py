"""Dead-latent resampling (``train_sae(resample_every=...)``) on a hand-built SAE whose only
badly reconstructed row is known, so where the dead latents go is known."""

from __future__ import annotations

import math

import torch

from llmasos_widgets.features import SAEConfig, SparseAutoencoder
from llmasos_widgets.features._training import _RESAMPLED_ENCODER_NORM, _Trainer


def _hand_built() -> SparseAutoencoder:
    """Latents 0-3 are the axes of R^4 (k = 1, no bias): a row along one axis is rebuilt
    exactly, ``e0 + e1`` loses half of itself. Latents 4-5 never win a top-1."""
    sae = SparseAutoencoder(SAEConfig(d_in=4, d_sae=6, site=1, k=1))
    with torch.no_grad():
        sae.W_dec.zero_()
        sae.W_dec[:4] = torch.eye(4)
        sae.W_dec[4:, 3] = 1.0
        sae.W_enc.copy_(sae.W_dec.T)
        sae.W_enc[:, 4:] *= -1
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    return sae


def test_dead_latents_are_pointed_at_the_high_loss_row():
    sae = _hand_built()
    x = torch.tensor([[2.0, 0, 0, 0], [0, 3.0, 0, 0], [1.0, 1.0, 0, 0], [0, 0, 0, 1.5]])
    trainer = _Trainer(sae, lr=0.0, aux_k=2, aux_coefficient=0.0, window=10, seed=0)
    for parameter in sae.parameters():  # Adam's state as after some steps
        trainer.optimizer.state[parameter] = {
            "step": torch.tensor(3.0),
            "exp_avg": torch.ones_like(parameter),
            "exp_avg_sq": torch.ones_like(parameter),
        }
    trainer.since_fired[4:] = 100  # latents 4 and 5 silent for 100 tokens: dead
    trainer.tokens = 100
    live_before = {n: p.detach().clone() for n, p in sae.named_parameters()}

    assert trainer.resample(x) == 2
    direction = torch.tensor([1.0, 1.0, 0, 0]) / math.sqrt(2)  # the only row with any loss
    for latent in (4, 5):
        torch.testing.assert_close(sae.W_dec[latent], direction)
        # live encoder columns have norm 1
        torch.testing.assert_close(sae.W_enc[:, latent], _RESAMPLED_ENCODER_NORM * direction)
        assert sae.b_enc[latent] == 0
    for name, parameter in sae.named_parameters():
        live = parameter[:, :4] if name == "W_enc" else parameter[:4]
        before = live_before[name][:, :4] if name == "W_enc" else live_before[name][:4]
        assert torch.equal(live, before), name
    state = trainer.optimizer.state
    for moment in ("exp_avg", "exp_avg_sq"):
        assert (state[sae.W_dec][moment][4:] == 0).all() and (
            state[sae.W_dec][moment][:4] == 1
        ).all()
        assert (state[sae.W_enc][moment][:, 4:] == 0).all()
        assert (state[sae.W_enc][moment][:, :4] == 1).all()
        assert (state[sae.b_enc][moment][4:] == 0).all() and (state[sae.b_dec][moment] == 1).all()
    assert trainer.dead()[4:].all()  # still dead until they fire
    # it reads e0 + e1 at a fifth of a live latent's gain: too little to win its top-1 yet
    with torch.no_grad():
        pre = sae.pre_activations(x[2:3])[0]
    torch.testing.assert_close(pre[4], torch.tensor(_RESAMPLED_ENCODER_NORM * math.sqrt(2)))
    assert pre[4] < pre[:2].max()


def test_nothing_is_resampled_without_dead_latents_or_loss():
    sae = _hand_built()
    trainer = _Trainer(sae, lr=0.0, aux_k=2, aux_coefficient=0.0, window=10, seed=0)
    trainer.tokens = 100
    assert trainer.resample(torch.tensor([[1.0, 1.0, 0, 0]])) == 0  # none dead
    trainer.since_fired[4:] = 100
    assert trainer.resample(torch.tensor([[2.0, 0, 0, 0]])) == 0  # rebuilt exactly: no loss
    assert torch.equal(sae.W_dec[4:], _hand_built().W_dec[4:])
