"""Patching heads' queries, keys and values, and AtP*'s fixes to attribution patching (the QK
fix, GradDrop), against exact patching and against the bundled model's copying circuit
(measured values in the docstrings; docs/interventions.md quotes them)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import llmasos_widgets as lw
from llmasos_widgets._hooks import count_hooks
from tests.conftest import random_llama, word_tokenizer
from tests.integration.test_attribution_patching import spearman
from tests.integration.test_path_patching import copy_pairs


def top(values: np.ndarray, k: int) -> set[int]:
    return set(np.argsort(-np.abs(values.ravel()), kind="stable")[:k].tolist())


@pytest.mark.slow
def test_patching_queries_keys_and_values_finds_the_copying_circuit(bundled) -> None:
    """Measured over 10 copy pairs (the word before the copy's source changed): the L1
    induction heads' keys restore 0.08-0.50 (means 0.14 / 0.26 per key head), their queries
    at most 0.01; the previous-token heads' value (L0, key/value head 1 = H2, H3) restores
    1.00, as path patching says (the information travels in what those heads copy, and is
    found through the induction heads' keys)."""
    for clean, corrupted, target in copy_pairs(10):
        maps = {
            node: lw.activation_patching(
                bundled, clean, corrupted, target=target, residual=False, head_node=node
            )
            for node in ("q", "k", "v")
        }
        assert maps["k"].head_node == "k"
        queries, keys, values = (maps[node].heads for node in ("q", "k", "v"))
        assert queries is not None and keys is not None and values is not None
        assert np.abs(queries[1]).max() <= 0.02
        assert keys[1].min() >= 0.05
        assert values[0, 2] >= 0.95
        # grouped-query attention: heads that share a key/value head share its cell
        for shared in (keys, values):
            np.testing.assert_array_equal(shared[:, 0::2], shared[:, 1::2])


def linear_after_attention() -> tuple[torch.nn.Module, object]:
    """A random 2-layer GQA model whose MLPs output 0 and whose final norm is the identity:
    after a last-layer head's softmax the target is linear in its output. Queries and keys
    are scaled up (x16) so the softmax is far from linear."""
    model = random_llama(layers=2, heads=4, kv_heads=2, seed=3)
    model.model.norm = torch.nn.Identity()
    with torch.no_grad():
        for layer in model.model.layers:
            torch.nn.init.zeros_(layer.mlp.down_proj.weight)
            layer.self_attn.q_proj.weight *= 16
            layer.self_attn.k_proj.weight *= 16
            layer.self_attn.o_proj.weight *= 10
    return model, word_tokenizer()


@pytest.mark.parametrize("node", ["q", "k"])
def test_the_qk_fix_is_exact_where_the_heads_softmax_is_the_only_nonlinearity(node) -> None:
    """Last-layer queries and keys: the QK fix recomputes the softmax exactly and the rest is
    linear, so it equals exact patching (measured error <= 5e-7 of the clean - corrupted
    difference); plain AtP linearises the softmax and misses by 0.008 (queries) and 0.10
    (keys)."""
    model, tokenizer = linear_after_attention()
    clean, corrupted, target = "w1 w2 w3 w4 w5 w6", "w1 w9 w3 w4 w5 w6", ("w7", "w8")
    kwargs = {"target": target, "tokenizer": tokenizer, "residual": False, "head_node": node}
    exact = lw.activation_patching(model, clean, corrupted, **kwargs)
    fixed = lw.attribution_patching(model, clean, corrupted, qk_fix=True, **kwargs)
    plain = lw.attribution_patching(model, clean, corrupted, **kwargs)
    assert fixed.method == "AtP (QK fix)" and fixed.head_node == node
    assert exact.heads is not None and fixed.heads is not None and plain.heads is not None
    np.testing.assert_allclose(fixed.heads[-1], exact.heads[-1], atol=1e-5)
    assert np.abs(plain.heads[-1] - exact.heads[-1]).max() > 0.005


@pytest.mark.slow
def test_the_qk_fix_ranks_the_induction_heads_keys_where_atp_misses_them(bundled) -> None:
    """Measured over 10 copy pairs, head cells vs exact patching: keys Spearman median 0.22
    (AtP) vs 1.00 (QK fix), queries 0.26 vs 0.87; the exact top-3 heads found 0.8 / 2.6 of 3
    (keys). The induction heads attend to the copy source with weight ~1: saturated, so the
    gradient through their softmax is ~0 and AtP sees nothing."""
    plain_rho, fixed_rho = [], []
    for clean, corrupted, target in copy_pairs(10):
        kwargs = {"target": target, "residual": False, "head_node": "k"}
        exact = lw.activation_patching(bundled, clean, corrupted, **kwargs).heads
        plain = lw.attribution_patching(bundled, clean, corrupted, **kwargs).heads
        fixed = lw.attribution_patching(bundled, clean, corrupted, qk_fix=True, **kwargs).heads
        assert exact is not None and plain is not None and fixed is not None
        plain_rho.append(spearman(plain, exact))
        fixed_rho.append(spearman(fixed, exact))
        # a key head of L1 (the induction heads) is the fixed estimate's top cell
        assert top(fixed[:, ::2], 1) <= {2, 3}  # [layer, key head] -> L1 KV0, L1 KV1
    assert np.median(plain_rho) <= 0.5
    assert np.median(fixed_rho) >= 0.95


def test_grad_drop_scores_follow_their_definition() -> None:
    """GradDrop averages |AtP| over runs that each drop one layer's gradient. A last-layer
    head's gradient passes through no earlier layer, so its score is |AtP| (its own layer's
    term is 0, the other L - 1 equal AtP); the final residual site is downstream of every
    layer, so its score is L / (L - 1) |AtP|."""
    model = random_llama(layers=3, heads=4, kv_heads=2, seed=2)
    tokenizer = word_tokenizer()
    clean, corrupted = "w1 w2 w3 w4 w5", "w1 w2 w9 w4 w5"
    result = lw.attribution_patching(
        model, clean, corrupted, target=("w7", "w8"), tokenizer=tokenizer, grad_drop=True
    )
    assert result.method == "AtP (GradDrop)" and result.metadata["backward_passes"] == 4
    estimate = np.abs(result.head_values - result.corrupted_value)
    drop = result.grad_drop_head_values
    assert drop is not None and np.all(drop >= 0)
    np.testing.assert_allclose(drop[-1], estimate[-1], rtol=1e-4, atol=1e-6)
    final = np.abs(result.residual_values[-1] - result.corrupted_value)
    np.testing.assert_allclose(
        result.grad_drop_residual_values[-1], 1.5 * final, rtol=1e-4, atol=1e-6
    )
    # an earlier head's score differs from |AtP| (its gradient crosses the later layers)
    assert not np.allclose(drop[0], estimate[0], rtol=1e-3)
    assert count_hooks(model) == 0


def test_verify_patches_the_top_ranked_key_heads_only(bundled, tmp_path) -> None:
    clean, corrupted, target = copy_pairs(1)[0]
    estimate = lw.attribution_patching(
        bundled, clean, corrupted, target=target, head_node="k", qk_fix=True, grad_drop=True
    )
    assert estimate.method == "AtP* (QK fix + GradDrop)"
    check = estimate.verify(k=2)
    exact = lw.activation_patching(bundled, clean, corrupted, target=target, head_node="k")
    heads = [(a, b) for kind, a, b in check.cells if kind == "head"]
    # ranked by GradDrop's score, one cell per key/value head (its first query head)
    scores = estimate.grad_drop_heads[:, ::2]
    order = np.argsort(-scores, axis=None, kind="stable")[:2]
    layers, key_heads = np.unravel_index(order, scores.shape)
    assert heads == [(int(a), 2 * int(b)) for a, b in zip(layers, key_heads, strict=True)]
    for (kind, a, b), value in zip(check.cells, check.exact, strict=True):
        expected = exact.residual[a, b] if kind == "residual" else exact.heads[a, b]
        assert value == pytest.approx(float(expected), abs=1e-5)
    widget = lw.PatchingWidget(estimate)
    assert "GradDrop's top heads" in widget.caption and "keys" in widget.head_title
    page = estimate.to_html(tmp_path / "atp_star.html").read_text(encoding="utf-8")
    assert "Estimate by AtP* (QK fix + GradDrop)" in page and "Head keys" in page
    best = float(np.nanmax(estimate.grad_drop_heads))
    assert "GradDrop's score of head keys" in page and f"{best:+.2f}" in page


def test_bad_arguments_say_what_to_do(bundled) -> None:
    clean, corrupted, target = copy_pairs(1)[0]
    with pytest.raises(ValueError, match="head_node='q' or 'k'"):
        lw.attribution_patching(bundled, clean, corrupted, target=target, qk_fix=True)
    with pytest.raises(ValueError, match="head_node must be one of"):
        lw.activation_patching(bundled, clean, corrupted, target=target, head_node="o")
    one_layer = random_llama(layers=1, heads=4, kv_heads=2, seed=0)
    with pytest.raises(ValueError, match="at least 2 layers"):
        lw.attribution_patching(
            one_layer, "w1 w2 w3", "w1 w9 w3", target=("w7", "w8"),
            tokenizer=word_tokenizer(), grad_drop=True,
        )  # fmt: skip
