"""The logit lens is read when a view asks (issue 20): explain() reads only the model's output
site during the forward and keeps the other sites' residual streams; a site read later is
bitwise what reading it during the forward gives (the eager computation)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from llmasos_widgets._hooks import borrowed_hooks
from llmasos_widgets.explanation import Explanation, _lens, explain
from llmasos_widgets.tracing._anatomy import anatomy

TEXT = "w1 w2 w3 w4 w5 w6 w1 w2 w3 w4"


def _eager_lens(explainable: Any, ids: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Every site read through the head during the forward, as explain() did before."""
    hf_model = explainable.hf_model
    parts = anatomy(hf_model)
    read: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def reader(site: int) -> Any:
        def read_site(hidden: torch.Tensor) -> None:
            ids_, probs, _, _ = _lens.read_top(parts, hidden[0])
            read[site] = (ids_, probs)

        return read_site

    with torch.no_grad(), borrowed_hooks() as hooks:
        for site in range(parts.n_sites):
            parts.read_site(hooks, site, reader(site))
        hf_model(input_ids=ids, use_cache=False, logits_to_keep=1)
    sites = range(parts.n_sites)
    return np.stack([read[s][0] for s in sites]), np.stack([read[s][1] for s in sites])


def _tokens(explainable: Any, ids: np.ndarray) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(explainable.tokens(torch.from_numpy(row))) for row in ids)


@pytest.fixture(params=["tiny_random", "bundled"])
def model_and_text(request: pytest.FixtureRequest) -> tuple[Any, str]:
    if request.param == "bundled":
        return request.getfixturevalue("bundled"), "the keys near the cabinet are on the table"
    return request.getfixturevalue("tiny_random"), TEXT


def test_the_lazy_lens_equals_the_eager_one_exactly(
    model_and_text: tuple[Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    model, text = model_and_text
    vocab = int(model.hf_model.config.vocab_size)
    monkeypatch.setattr(_lens, "LENS_CHUNK_BYTES", 3 * 4 * vocab)  # several chunks per site
    explanation = explain(model, text, saliency=False)
    eager_ids, eager_probs = _eager_lens(model, torch.from_numpy(explanation.token_ids)[None])
    n_sites = explanation.n_layers + 1
    # only the output site was read during the forward
    assert explanation.logit_lens.pending_sites == tuple(range(n_sites - 1))
    # one site out of order, then all
    middle = n_sites // 2
    ids, probs, _ = explanation.lens_site(middle)
    np.testing.assert_array_equal(ids, eager_ids[middle])
    np.testing.assert_array_equal(probs, eager_probs[middle])
    assert middle not in explanation.logit_lens.pending_sites  # its residual stream is dropped
    np.testing.assert_array_equal(explanation.lens_token_ids, eager_ids)
    np.testing.assert_array_equal(explanation.lens_probs, eager_probs)
    assert explanation.lens_probs.dtype == np.float32
    assert explanation.lens_token_ids.dtype == np.int64
    assert explanation.lens_tokens == _tokens(model, eager_ids)
    assert explanation.logit_lens.pending_sites == ()
    assert explanation.logit_lens.residual_bytes == 0
    # the last site is the model's output: the predictions' top-1
    np.testing.assert_array_equal(explanation.lens_token_ids[-1], explanation.top_token_ids[:, 0])
    np.testing.assert_array_equal(explanation.lens_probs[-1], explanation.top_probs[:, 0])


def test_explain_reads_the_head_once_per_chunk_of_the_output_site(tiny_random) -> None:
    parts = anatomy(tiny_random.hf_model)
    calls: list[int] = []
    real_head = type(parts).head

    def counting_head(self: Any, hidden: torch.Tensor) -> torch.Tensor:
        calls.append(int(hidden.shape[0]))
        return real_head(self, hidden)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(type(parts), "head", counting_head)
        explanation = explain(tiny_random, TEXT, saliency=False)
        assert calls == [explanation.n_tokens]  # the output site, one chunk
        explanation.lens_probs  # noqa: B018
        assert calls == [explanation.n_tokens] * (explanation.n_layers + 1)
        explanation.lens_probs  # noqa: B018  (read once)
        assert len(calls) == explanation.n_layers + 1


def test_save_load_print_report_and_widget_read_the_lazy_lens(tiny_random, tmp_path) -> None:
    from llmasos_widgets import LogitLensWidget

    lazy = explain(tiny_random, TEXT, saliency=False)
    eager_ids, eager_probs = _eager_lens(tiny_random, torch.from_numpy(lazy.token_ids)[None])
    path = lazy.save(tmp_path / "run.llmx")  # reads every site
    loaded = Explanation.load(path)
    np.testing.assert_array_equal(loaded.lens_token_ids, eager_ids)
    np.testing.assert_array_equal(loaded.lens_probs, eager_probs)
    assert loaded.lens_tokens == lazy.lens_tokens

    fresh = explain(tiny_random, TEXT, saliency=False)
    widget = LogitLensWidget(fresh)
    assert widget.lens_tokens == [list(row) for row in fresh.lens_tokens]
    np.testing.assert_array_equal(fresh.lens_probs, eager_probs)
    report = explain(tiny_random, TEXT, saliency=False).to_html(tmp_path / "r.html")
    assert "layer 0" in report.read_text(encoding="utf-8")
    assert "next token" in str(explain(tiny_random, TEXT, saliency=False))


def test_keep_disk_maps_the_residual_streams_and_reads_the_same_lens(tiny_random) -> None:
    in_memory = explain(tiny_random, TEXT, saliency=False)
    on_disk = explain(tiny_random, TEXT, saliency=False, keep="disk")
    np.testing.assert_array_equal(on_disk.lens_token_ids, in_memory.lens_token_ids)
    np.testing.assert_array_equal(on_disk.lens_probs, in_memory.lens_probs)


def test_a_head_changed_in_place_after_explain_is_refused(tiny_random) -> None:
    explanation = explain(tiny_random, TEXT, saliency=False)
    explanation.lens_site(explanation.n_layers)  # the output site was read: still fine
    parts = anatomy(tiny_random.hf_model)
    assert parts.unembedding is not None
    with torch.no_grad():
        parts.unembedding.weight.mul_(2.0)  # fine-tuned in place
    with pytest.raises(RuntimeError, match="changed since explain"):
        explanation.lens_site(0)


@pytest.mark.real_model
def test_the_lazy_lens_equals_the_eager_one_on_the_real_model(real_model) -> None:
    generator = torch.Generator().manual_seed(0)
    vocab = int(real_model.hf_model.config.vocab_size)
    ids = torch.randint(0, vocab, (1, 48), generator=generator)
    explanation = explain(real_model, ids, saliency=False)
    assert explanation.logit_lens.pending_sites == tuple(range(explanation.n_layers))
    eager_ids, eager_probs = _eager_lens(real_model, ids)
    np.testing.assert_array_equal(explanation.lens_token_ids, eager_ids)
    np.testing.assert_array_equal(explanation.lens_probs, eager_probs)
    assert explanation.lens_tokens == _tokens(real_model, eager_ids)
