"""explain() keeps nothing of size [token, vocab]: the lens and predictions are read in chunks,
and the results equal the unchunked computation (full logits, every residual kept)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from llmasos_widgets.explanation import _lens, explain, final_logits
from llmasos_widgets.tracing import trace

TEXT = "w1 w2 w3 w4 w5 w6 w1 w2 w3 w4"
TOP_K = 4


def _unchunked(explainable: Any, text: str) -> dict[str, np.ndarray]:
    """explain()'s predictions and logit lens as computed before chunking (the reference)."""
    hf_model = explainable.hf_model
    ids = explainable.encode(text)
    with torch.no_grad(), trace(hf_model) as captured:
        logits = hf_model(input_ids=ids).logits[0]
        residual = [r[0] for r in captured.residual]
        lens = [final_logits(hf_model, hidden).float().softmax(-1).max(-1) for hidden in residual]
    top = logits.float().softmax(-1).topk(TOP_K, dim=-1)
    return {
        "top_ids": top.indices.numpy(),
        "top_probs": top.values.numpy(),
        "lens_ids": torch.stack([best.indices for best in lens]).numpy(),
        "lens_probs": torch.stack([best.values for best in lens]).numpy(),
    }


@pytest.fixture(params=["tiny_random", "bundled"])
def model_and_text(request: pytest.FixtureRequest) -> tuple[Any, str]:
    if request.param == "bundled":
        return request.getfixturevalue("bundled"), "the keys to the cabinet are on the table"
    return request.getfixturevalue("tiny_random"), TEXT


def test_chunked_lens_and_predictions_equal_the_unchunked_ones(
    model_and_text: tuple[Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    model, text = model_and_text
    vocab = int(model.hf_model.config.vocab_size)
    monkeypatch.setattr(_lens, "LENS_CHUNK_BYTES", 3 * 4 * vocab)  # 3 tokens per chunk
    reference = _unchunked(model, text)
    ours = explain(model, text, saliency=False, top_k=TOP_K)
    assert ours.n_tokens > 6  # several chunks, the last one short
    np.testing.assert_array_equal(ours.top_token_ids, reference["top_ids"])
    np.testing.assert_allclose(ours.top_probs, reference["top_probs"], atol=1e-6, rtol=0)
    np.testing.assert_array_equal(ours.lens_token_ids, reference["lens_ids"])
    np.testing.assert_allclose(ours.lens_probs, reference["lens_probs"], atol=1e-6, rtol=0)


def test_the_forward_returns_one_position_of_logits_and_keeps_no_residual(tiny_random) -> None:
    hf_model = tiny_random.hf_model
    seen: list[tuple[int, ...]] = []
    handle = hf_model.register_forward_hook(
        lambda _m, _a, output: seen.append(tuple(output.logits.shape))
    )
    calls: list[Any] = []
    real_trace = trace

    def spying_trace(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return real_trace(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        from llmasos_widgets.explanation import _explain

        patch.setattr(_explain, "trace", spying_trace)
        try:
            explanation = explain(tiny_random, TEXT, saliency=False)
        finally:
            handle.remove()
    vocab = hf_model.config.vocab_size
    # the text's forward, then the induction sequence's; neither returns [token, vocab]
    assert seen[0] == (1, 1, vocab)
    assert calls[0] == {"residual": False, "offload": False}
    assert explanation.lens_token_ids.shape == (3, explanation.n_tokens)
