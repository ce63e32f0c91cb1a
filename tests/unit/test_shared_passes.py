"""Issue 20: work shared between passes gives the values of the separate passes, bitwise.

* the attention sinks read the head summaries' own score tiles (``row_statistics``'s
  ``on_row_chunk``) instead of recomputing them: summaries, normalisers and sinks equal the
  two-pass computation (forced with ``FUSED_CELLS = 0``);
* gradient saliency resolves its target from the gradient pass's own logits instead of a
  no-grad forward first: every field of the Saliency equals the forward-first computation.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llmasos_widgets.attribution import _methods, attribute
from llmasos_widgets.explanation import _row_summaries
from llmasos_widgets.explanation._row_summaries import row_summaries
from llmasos_widgets.tracing import AttentionSpec, trace
from tests.conftest import random_llama, word_tokenizer

SPECS = (
    AttentionSpec(scaling=0.3, n_kv_groups=2),
    AttentionSpec(scaling=0.3, sliding_window=23, n_kv_groups=2),
    AttentionSpec(scaling=0.5, softcap=2.0, n_kv_groups=2),
    AttentionSpec(scaling=0.3, sliding_window=23, n_kv_groups=2),  # shares layer 1's uniform
)


def _both(monkeypatch, queries, keys, specs, **kwargs):
    calls: list[int] = []
    separate = _row_summaries.received_attention

    def counted(*args, **kw):
        calls.append(1)
        return separate(*args, **kw)

    monkeypatch.setattr(_row_summaries, "received_attention", counted)
    shared = row_summaries(queries, keys, specs, **kwargs)
    assert calls == [], "the sinks should have read the summaries' tiles"
    monkeypatch.setattr(_row_summaries, "FUSED_CELLS", 0)
    two_pass = row_summaries(queries, keys, specs, **kwargs)
    assert len(calls) == len(specs)
    return shared, two_pass


def _assert_bitwise(shared, two_pass) -> None:
    assert shared.notes == two_pass.notes
    for name, values in two_pass.summaries.items():
        np.testing.assert_array_equal(shared.summaries[name], values, strict=True)
    assert shared.sinks is not None and two_pass.sinks is not None
    for name in ("received", "uniform"):
        np.testing.assert_array_equal(
            getattr(shared.sinks, name), getattr(two_pass.sinks, name), strict=True
        )
    assert shared.normalisers.lse.keys() == two_pass.normalisers.lse.keys()
    for layer, lse in two_pass.normalisers.lse.items():
        assert torch.equal(shared.normalisers.lse[layer], lse)
        assert torch.equal(shared.normalisers.known[layer], two_pass.normalisers.known[layer])


@pytest.mark.parametrize(
    ("n_tokens", "tile_cells", "sample_rows"),
    [(97, 4 * 300, 0), (150, 4 * 64, 0), (150, 4 * 500, 40), (40, 2**22, None)],
)
def test_sinks_from_the_summary_tiles_equal_the_separate_pass(
    monkeypatch, n_tokens: int, tile_cells: int, sample_rows: int | None
) -> None:
    generator = torch.Generator().manual_seed(n_tokens)
    queries = tuple(torch.randn(4, n_tokens, 8, generator=generator) for _ in SPECS)
    keys = tuple(torch.randn(2, n_tokens, 8, generator=generator) for _ in SPECS)
    shared, two_pass = _both(
        monkeypatch, queries, keys, SPECS, tile_cells=tile_cells, sample_rows=sample_rows
    )
    _assert_bitwise(shared, two_pass)


def test_sinks_from_the_summary_tiles_equal_the_separate_pass_on_the_bundled_model(
    monkeypatch, bundled
) -> None:
    ids = bundled.tokenizer("the cat sat on the mat and the dog sat on the log " * 12)
    ids = torch.tensor([ids["input_ids"]])
    hf_model = bundled.hf_model
    with torch.no_grad(), trace(hf_model, residual=False) as captured:
        hf_model(input_ids=ids, use_cache=False, logits_to_keep=1)
    n_layers = len(captured.queries)
    queries = tuple(captured.queries[layer][0] for layer in range(n_layers))
    keys = tuple(captured.keys[layer][0] for layer in range(n_layers))
    specs = tuple(captured.spec[layer] for layer in range(n_layers))
    for tile_cells in (2**22, 4 * 900):  # one tile per chunk; several tiles and chunks
        shared, two_pass = _both(monkeypatch, queries, keys, specs, tile_cells=tile_cells)
        _assert_bitwise(shared, two_pass)
        monkeypatch.undo()


def _saliency_fields(saliency) -> dict:
    return {
        "scores": saliency.scores,
        "target": saliency.target,
        "target_token_ids": saliency.target_token_ids,
        "target_probability": saliency.target_probability,
        "f_x": saliency.f_x,
        "layers": saliency.layers,
    }


@pytest.mark.parametrize("method", ["gradient", "input_x_gradient"])
@pytest.mark.parametrize("target", [None, "w7", ("w7", "w9")])
def test_gradient_target_from_its_own_pass_equals_a_forward_first(
    monkeypatch, method: str, target
) -> None:
    model, tokenizer = random_llama(seed=3), word_tokenizer()
    text = "w1 w5 w9 w2 w7 w3 w3 w8 w1 w4"
    own = attribute(model, text, tokenizer=tokenizer, method=method, target=target)
    monkeypatch.setattr(_methods.METHODS[method], "target_in_own_pass", False)
    first = attribute(model, text, tokenizer=tokenizer, method=method, target=target)
    for name, value in _saliency_fields(first).items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(_saliency_fields(own)[name], value, strict=True)
        else:
            assert _saliency_fields(own)[name] == value, name


def test_explain_default_gradient_saliency_equals_a_forward_first(monkeypatch, bundled) -> None:
    from llmasos_widgets import explain

    text = "the cat sat on the mat and the dog sat on the log " * 8  # > 64 tokens: gradient
    own = explain(bundled, text).saliency
    assert own is not None and own.method == "gradient"
    monkeypatch.setattr(_methods.METHODS["gradient"], "target_in_own_pass", False)
    first = explain(bundled, text).saliency
    assert first is not None
    for name, value in _saliency_fields(first).items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(_saliency_fields(own)[name], value, strict=True)
        else:
            assert _saliency_fields(own)[name] == value, name
