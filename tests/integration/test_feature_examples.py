"""feature_examples: a planted latent finds the contexts it was planted in; the disk cache
gives what memory gives, is read back, and resumes an interrupted run to the same result."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llmasos_widgets.features import FeatureExamples, SAEConfig, SparseAutoencoder, feature_examples
from llmasos_widgets.features import _examples as examples_module

BATCH = 3


def corpus() -> tuple[list[str], set[tuple[int, int]]]:
    """20 texts of random words; ``w7`` (which no other word is) planted in some of them.
    Returns the texts and the (text, token position) of every ``w7`` (position 0 = <bos>)."""
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(20, 60)]
    texts, planted = [], set()
    for index in range(20):
        row = list(rng.choice(words, size=int(rng.integers(6, 14))))
        if index % 3 == 1:
            at = int(rng.integers(0, len(row)))
            row[at] = "w7"
            planted.add((index, at + 1))
        texts.append(" ".join(row))
    return texts, planted


def planted_sae(model) -> SparseAutoencoder:
    """A ReLU SAE at site 0 whose latent 5 reads ``w7``'s embedding (fires there only)."""
    torch.manual_seed(0)
    sae = SparseAutoencoder(SAEConfig(d_in=32, d_sae=64, site=0, activation="relu"))
    embedding = model.hf_model.get_input_embeddings().weight.detach()
    (w7,) = model.tokenizer.convert_tokens_to_ids(["w7"])
    with torch.no_grad():
        sae.b_dec.zero_()
        direction = embedding[w7] / embedding[w7].norm()
        sae.W_enc[:, 5] = direction
        sae.b_enc[5] = -0.8 * embedding[w7].norm()  # other words' embeddings fall short
    return sae


def test_a_planted_latent_finds_the_contexts_it_was_planted_in(tiny_random):
    texts, planted = corpus()
    found = feature_examples(tiny_random, planted_sae(tiny_random), texts, k=10, window=2)
    examples = found.examples(5)
    assert {(e["text"], e["position"]) for e in examples} == planted
    for example in examples:
        assert example["tokens"][example["center"]] == "w7"
        assert example["values"][example["center"]] == pytest.approx(example["activation"])
    assert found.fires[5] == len(planted)
    assert found.histogram[5].sum() == len(planted)
    assert found.n_texts == len(texts)
    assert found.n_tokens == sum(len(t.split()) + 1 for t in texts)


def _same(a: FeatureExamples, b: FeatureExamples) -> None:
    for name in FeatureExamples._ARRAYS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.meta == b.meta


def _counting(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = examples_module._encode_site

    def counted(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(examples_module, "_encode_site", counted)
    return calls


def test_the_disk_cache_equals_memory_and_is_read_back(tiny_random, tmp_path, monkeypatch):
    texts, _ = corpus()
    sae = planted_sae(tiny_random)
    options = {"k": 4, "window": 3, "batch_size": BATCH, "progress": False}
    in_memory = feature_examples(tiny_random, sae, texts, **options)
    calls = _counting(monkeypatch)
    cached = feature_examples(tiny_random, sae, texts, cache_dir=tmp_path, **options)
    assert len(calls) == 7  # ceil(20 / 3) batches
    _same(in_memory, cached)
    again = feature_examples(tiny_random, sae, iter(texts), cache_dir=tmp_path, **options)
    assert len(calls) == 7  # nothing recomputed
    _same(in_memory, again)
    other = texts[::-1]  # other texts, same cache folder: computed afresh
    _same(
        feature_examples(tiny_random, sae, other, cache_dir=tmp_path, **options),
        feature_examples(tiny_random, sae, other, **options),
    )


def test_an_interrupted_run_resumes_to_the_same_result(tiny_random, tmp_path, monkeypatch):
    texts, _ = corpus()
    sae = planted_sae(tiny_random)
    options = {"k": 4, "window": 3, "batch_size": BATCH, "progress": False}

    def interrupted():
        yield from texts[: 3 * BATCH + 1]
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        feature_examples(tiny_random, sae, interrupted(), cache_dir=tmp_path, **options)
    from llmasos_widgets._hooks import count_hooks

    assert count_hooks(tiny_random.hf_model) == 0  # also the forwards stopped at the site
    calls = _counting(monkeypatch)
    resumed = feature_examples(tiny_random, sae, texts, cache_dir=tmp_path, **options)
    assert len(calls) == 7 - 3  # the three finished batches came from the cache
    _same(resumed, feature_examples(tiny_random, sae, texts, **options))


def test_save_load_and_rows_of_a_dataset(tiny_random, tmp_path):
    texts, planted = corpus()
    rows = [{"text": t, "id": i} for i, t in enumerate(texts)]
    found = feature_examples(tiny_random, planted_sae(tiny_random), rows, k=10, progress=False)
    _same(found, FeatureExamples.load(found.save(tmp_path / "ex.npz")))
    assert {(e["text"], e["position"]) for e in found.examples(5)} == planted


def test_bad_arguments_are_clear(tiny_random):
    sae = planted_sae(tiny_random)
    with pytest.raises(ValueError, match="k must be at least 1"):
        feature_examples(tiny_random, sae, ["w1"], k=0)
    with pytest.raises(TypeError, match="'text' string"):
        feature_examples(tiny_random, sae, [3], progress=False)
    wide = SparseAutoencoder(SAEConfig(d_in=64, d_sae=8, site=0, activation="relu"))
    with pytest.raises(ValueError, match="d_in"):
        feature_examples(tiny_random, wide, ["w1"])


def test_docstring_corpus_yields_long_texts_in_a_fixed_order():
    from llmasos_widgets.features import docstring_corpus

    first = list(docstring_corpus(("json",), min_chars=100, limit=5))
    assert len(first) == 5 and all(len(t) >= 100 for t in first)
    assert first == list(docstring_corpus(("json",), min_chars=100, limit=5))
    assert list(docstring_corpus(("no_such_package_here",))) == []


def test_a_progress_bar_counts_the_texts_also_those_read_from_the_cache(
    tiny_random, tmp_path, bars
):
    texts, _ = corpus()
    sae = planted_sae(tiny_random)
    feature_examples(tiny_random, sae, texts, batch_size=BATCH, cache_dir=tmp_path)
    feature_examples(tiny_random, sae, texts, batch_size=BATCH, cache_dir=tmp_path)
    assert [(bar.total, bar.n, bar.closed) for bar in bars] == [(20, 20, True)] * 2
    assert bars[0].updates == [3, 6, 9, 12, 15, 18, 20]
    assert bars[1].updates == [20]  # one step: every batch was in the cache
    assert "feature examples" in bars[0].desc


@pytest.mark.parametrize(("site", "batch_sizes"), [(0, (3, 20)), (2, (7, 20))])
def test_the_same_top_k_at_any_batch_size(tiny_random, site, batch_sizes):
    """The word corpus repeats words, so the same token in the same context recurs: tied
    activations that the batch's shape moves by float32 ulps (7e-9 measured). The kept
    contexts are the same at every batch size, values within that noise."""
    texts, _ = corpus()
    torch.manual_seed(0)
    sae = SparseAutoencoder(SAEConfig(d_in=32, d_sae=64, site=site, k=4))
    runs = [
        feature_examples(tiny_random, sae, texts, k=5, window=2, batch_size=b, progress=False)
        for b in batch_sizes
    ]
    first = runs[0]
    assert (first.text_index >= 0).sum() > 100  # most latents keep 5 contexts: a real ranking
    for other in runs[1:]:
        for name in ("text_index", "position", "context_ids", "histogram", "fires"):
            np.testing.assert_array_equal(getattr(first, name), getattr(other, name), name)
        np.testing.assert_allclose(first.values, other.values, rtol=0, atol=1e-6)
        np.testing.assert_allclose(first.context_values, other.context_values, rtol=0, atol=1e-6)
