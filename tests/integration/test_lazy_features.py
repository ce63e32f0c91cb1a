"""explain(saes=...) encodes on first read: the record equals, bitwise, the SAE encoding its
site inside the forward's hook (the eager path), encodes exactly once, saves the same file,
and refuses once the SAE changed before the first read."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import safetensors.torch
import torch

from llmasos_widgets._hooks import borrowed_hooks
from llmasos_widgets.explanation import explain
from llmasos_widgets.features import LatentCodes, SAEConfig, SparseAutoencoder
from llmasos_widgets.features._capture import SiteFeatures, encode_rows
from llmasos_widgets.tracing import anatomy

TEXT = "w1 w2 w3 w4 w5 w6 w1 w2 w3 w4"


def random_sae(site: int, *, k: int | None = 8, seed: int = 0) -> SparseAutoencoder:
    torch.manual_seed(seed)
    activation = "topk" if k else "relu"
    config = SAEConfig(d_in=32, d_sae=128, site=site, activation=activation, k=k)
    sae = SparseAutoencoder(config)
    with torch.no_grad():
        sae.b_enc.normal_(0, 0.1)
    return sae


def eager_arrays(model, ids: np.ndarray, sae: SparseAutoencoder) -> dict[str, np.ndarray]:
    """The eager path: the SAE encodes its site inside the forward's hook."""
    max_latents = SiteFeatures("eager", sae, 256).max_latents
    out: dict[str, np.ndarray] = {}
    with torch.no_grad(), borrowed_hooks() as hooks:
        anatomy(model.hf_model).read_site(
            hooks, sae.site, lambda hidden: out.update(encode_rows(sae, hidden[0], max_latents))
        )
        model.hf_model(input_ids=torch.from_numpy(ids)[None], use_cache=False)
    return out


def count_encodes(sae: SparseAutoencoder) -> list[int]:
    """Counts calls of ``pre_activations`` (every encode path starts there)."""
    calls = [0]
    pre = sae.pre_activations

    def counted(x):
        calls[0] += 1
        return pre(x)

    sae.pre_activations = counted  # an instance attribute: encode() calls it too
    return calls


@pytest.mark.parametrize(("site", "k"), [(1, 8), (2, None)])
def test_the_lazy_record_equals_the_eager_one_bitwise_and_encodes_once(tiny_random, site, k):
    sae = random_sae(site, k=k)
    encodes = count_encodes(sae)
    explanation = explain(tiny_random, TEXT, saliency=False, saes=[sae], progress=False)
    record = explanation.feature()
    assert encodes[0] == 0 and record.codes.pending  # explain did not encode
    assert record.n_tokens == explanation.n_tokens  # known without encoding
    assert encodes[0] == 0
    want = eager_arrays(tiny_random, explanation.token_ids, sae)
    encodes[0] = 0
    for name, array in want.items():
        got = getattr(record, name)
        assert got.dtype == array.dtype and got.shape == array.shape, name
        assert got.tobytes() == array.tobytes(), name  # bitwise
    assert want["latents"].size and (want["indptr"][1:] > 0).all()  # something to compare
    record.to_arrays(), record.dense(), record.top(3)
    assert encodes[0] == 1  # the first read encoded, once


def test_saving_encodes_and_writes_the_file_of_the_eager_record(tiny_random, tmp_path):
    sae = random_sae(1)
    lazy = explain(tiny_random, TEXT, saliency=False, saes=[sae], progress=False)
    assert lazy.feature().codes.pending
    saved = lazy.save(tmp_path / "lazy.llmx").read_bytes()
    record = lazy.feature()
    assert not record.codes.pending and not record.effects.pending
    # the same explanation holding the arrays the hook computed (the eager path)
    arrays = eager_arrays(tiny_random, lazy.token_ids, sae)
    codes = LatentCodes(n_tokens=record.n_tokens, arrays=arrays)
    eager = dataclasses.replace(lazy, features=(dataclasses.replace(record, codes=codes),))
    assert eager.feature().codes is codes
    # the feature part of the files (the rest holds views' caches filled as they are read)
    assert features_in(saved) == features_in(eager.save(tmp_path / "eager.llmx").read_bytes())


def features_in(file: bytes) -> tuple[dict[str, tuple[str, bytes]], str]:
    """The ``features.*`` tensors' dtypes and bytes, and the header's features record."""
    tensors = safetensors.torch.load(file)
    # safetensors: an 8-byte little-endian length, then the JSON table with our metadata
    table = json.loads(file[8 : 8 + int.from_bytes(file[:8], "little")])
    header = json.loads(table["__metadata__"]["header"])
    kept = {n: (str(t.dtype), t.numpy().tobytes()) for n, t in tensors.items()}
    assert any(n.startswith("features.0.") for n in kept)
    return {n: v for n, v in kept.items() if n.startswith("features.")}, json.dumps(
        header["features"]
    )


def test_a_changed_sae_is_refused_before_the_first_read_and_ignored_after(tiny_random):
    sae = random_sae(1)
    # three records of the same SAE from one forward
    first, second, third = explain(
        tiny_random, TEXT, saliency=False, saes=[sae, sae, sae], progress=False
    ).features
    values = first.values.copy()  # read before the change: kept
    with torch.no_grad():
        sae.W_enc.mul_(2)  # trained in place after explain
    with pytest.raises(RuntimeError, match="SAE changed since explain"):
        _ = second.latents
    np.testing.assert_array_equal(first.values, values)
    with torch.no_grad():
        sae.W_enc.div_(2)  # the same numbers again, but it was changed: still refused
    with pytest.raises(RuntimeError, match="explain the text again"):
        _ = second.dense()
    sae.config = dataclasses.replace(sae.config, k=4)  # a new config, weights untouched
    with pytest.raises(RuntimeError, match="SAE changed since explain"):
        _ = third.indptr
