"""``positions=`` for steer / ablate_features on the bundled model: a causal model cannot see
later tokens, so a rewrite at position p leaves every logit before p bitwise as it was; during
cached generation positions keep counting (see features/_positions.py)."""

from __future__ import annotations

import pytest
import torch

from llmasos_widgets import ablate_features, steer
from llmasos_widgets._hooks import count_hooks
from llmasos_widgets.features import SAEConfig, SparseAutoencoder
from tests._sae_known import one_thread

TEXT = "the keys near the old cabinet are on the table"
ALPHA = 12.0  # with LATENT of the seeded SAE below, moves greedy choices (checked below)
LATENT = 6


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def sae_at():
    torch.manual_seed(0)
    return {
        site: SparseAutoencoder(SAEConfig(d_in=64, d_sae=16, site=site, k=2)) for site in (0, 2)
    }


def _logits(model, ids, block=None):
    with torch.no_grad():
        if block is None:
            return model.hf_model(input_ids=ids).logits[0]
        with block:
            return model.hf_model(input_ids=ids).logits[0]


@pytest.mark.parametrize("site", [0, 2])
def test_a_steered_position_changes_and_earlier_ones_stay_bitwise(bundled, sae_at, site):
    sae = sae_at[site]
    ids = bundled.encode(TEXT)
    n = ids.shape[1]
    plain = _logits(bundled, ids)
    for spec, at in ((4, 4), ([4], 4), (slice(4, 5), 4), ("last", n - 1), (-3, n - 3)):
        steered = _logits(bundled, ids, steer(bundled, sae, LATENT, ALPHA, positions=spec))
        assert torch.equal(steered[:at], plain[:at]), spec
        assert (steered[at] - plain[at]).abs().max() > 1e-2, spec
    everywhere = _logits(bundled, ids, steer(bundled, sae, LATENT, ALPHA))
    assert not torch.equal(everywhere[:4], plain[:4])
    # slice(2, 6, 3) is positions 2 and 5: up to 4 it is steering at 2 alone, then not
    stepped = _logits(bundled, ids, steer(bundled, sae, LATENT, ALPHA, positions=slice(2, 6, 3)))
    only_two = _logits(bundled, ids, steer(bundled, sae, LATENT, ALPHA, positions=2))
    assert torch.equal(stepped[:2], plain[:2]) and torch.equal(stepped[:5], only_two[:5])
    assert not torch.equal(stepped[5], only_two[5])


def test_feature_ablation_at_a_position(bundled, sae_at):
    """Removing every latent at position 4 removes the whole reconstruction there (a k=2 SAE
    fires on every token): logits before 4 are bitwise the same, 4 moves; the measured form
    reads a target before the ablated position and finds it unchanged."""
    sae = sae_at[2]
    hooks_before = count_hooks(bundled.hf_model)  # transformers keeps its own output hooks
    ids = bundled.encode(TEXT)
    plain = _logits(bundled, ids)
    ablated = _logits(bundled, ids, ablate_features(bundled, sae, range(16), positions=4))
    assert torch.equal(ablated[:4], plain[:4])
    assert (ablated[4] - plain[4]).abs().max() > 1e-3
    before = ablate_features(bundled, sae, list(range(16)), [TEXT], position=3, positions=4)
    assert before.values_after[0] == before.values_before[0]
    at = ablate_features(bundled, sae, list(range(16)), [TEXT], position=4, positions=4)
    assert at.values_after[0] != at.values_before[0]
    assert count_hooks(bundled.hf_model) == hooks_before


def _greedy_without_cache(model, ids, steps, block):
    """Greedy decoding that runs the whole sequence each step (no cache), inside ``block``."""
    with torch.no_grad(), block:
        for _ in range(steps):
            logits = model.hf_model(input_ids=ids, use_cache=False).logits[0, -1]
            ids = torch.cat([ids, logits.argmax().view(1, 1)], dim=1)
    return ids


def _greedy(model, ids, steps, block=None):
    with torch.no_grad():
        if block is None:
            return model.hf_model.generate(ids, max_new_tokens=steps, do_sample=False)
        with block:
            return model.hf_model.generate(ids, max_new_tokens=steps, do_sample=False)


def test_positions_during_cached_generation(bundled, sae_at):
    """``"last"`` steers the prompt's last token and each new token as it enters: cached
    generation equals recomputing the whole sequence each step with ``slice(n - 1, None)``.
    Position ``n`` (the first new token) cannot change the first new token, only later ones,
    and cached generation equals the uncached recomputation at the same position."""
    sae = sae_at[2]
    ids = bundled.encode("the keys near the old cabinet")
    n, steps = ids.shape[1], 4
    plain = _greedy(bundled, ids, steps)
    last = _greedy(bundled, ids, steps, steer(bundled, sae, LATENT, ALPHA, positions="last"))
    assert not torch.equal(last, plain)
    recomputed = _greedy_without_cache(
        bundled, ids, steps, steer(bundled, sae, LATENT, ALPHA, positions=slice(n - 1, None))
    )
    assert torch.equal(last, recomputed)
    at_n = _greedy(bundled, ids, steps, steer(bundled, sae, LATENT, ALPHA, positions=n))
    assert at_n[0, n] == plain[0, n]
    assert not torch.equal(at_n, plain)
    assert torch.equal(
        at_n,
        _greedy_without_cache(bundled, ids, steps, steer(bundled, sae, LATENT, ALPHA, positions=n)),
    )


@pytest.mark.parametrize(
    ("positions", "error", "match"),
    [
        ("first", ValueError, '"last"'),
        (1.5, TypeError, "positions must be"),
        (True, TypeError, "positions must be ints"),
        ([2, "x"], TypeError, "positions must be ints"),
        ([], ValueError, "positions is empty"),
        (slice(None, None, -1), ValueError, "step must be positive"),
        (slice(0.5, 3), TypeError, "bounds must be ints"),
    ],
)
def test_bad_positions_are_refused_before_any_forward(bundled, sae_at, positions, error, match):
    hooks_before = count_hooks(bundled.hf_model)  # transformers keeps its own output hooks
    with pytest.raises(error, match=match):
        steer(bundled, sae_at[2], 1, 1.0, positions=positions)
    with pytest.raises(error, match=match):
        ablate_features(bundled, sae_at[2], [1], positions=positions)
    assert count_hooks(bundled.hf_model) == hooks_before
