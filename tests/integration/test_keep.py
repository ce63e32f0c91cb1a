"""explain(..., keep=...) and Explanation.load(..., keep=...): where captured q/k live."""

from __future__ import annotations

import dataclasses
import gc
from pathlib import Path

import numpy as np
import pytest
import torch

from llmasos_widgets.explanation import Explanation, explain

TEXT = "the cat sees the dog . the dogs see the cat ."


def mapped_files() -> str:
    return Path("/proc/self/maps").read_text()


def file_of(tensor: torch.Tensor) -> str | None:
    """The file whose mapping holds ``tensor``'s first byte, from /proc/self/maps."""
    address = tensor.data_ptr()
    for line in mapped_files().splitlines():
        fields = line.split()
        start, stop = (int(x, 16) for x in fields[0].split("-"))
        if start <= address < stop and len(fields) >= 6 and fields[5].startswith("/"):
            return fields[5]
    return None  # anonymous memory ([heap], unnamed mappings)


def test_disk_keeps_file_backed_queries_equal_to_cpu_and_removes_them(bundled) -> None:
    in_memory = explain(bundled, TEXT, saliency=False, keep="cpu")
    on_disk = explain(bundled, TEXT, saliency=False, keep="disk")
    for a, b in zip(
        (*in_memory.queries, *in_memory.keys), (*on_disk.queries, *on_disk.keys), strict=True
    ):
        assert a.dtype == b.dtype and torch.equal(a, b)  # bitwise
        assert file_of(a) is None
    backing = {file_of(t) for t in (*on_disk.queries, *on_disk.keys)}
    assert None not in backing and len(backing) == 2 * on_disk.n_layers
    folder = Path(next(iter(backing))).parent  # type: ignore[arg-type]
    assert folder.name.startswith("llmasos-qk-") and folder.is_dir()
    for name, values in in_memory.head_summaries.items():
        np.testing.assert_array_equal(values, on_disk.head_summaries[name])
    np.testing.assert_array_equal(
        in_memory.pooled_attention(1, 0, shape=(4, 4)).values,
        on_disk.pooled_attention(1, 0, shape=(4, 4)).values,
    )
    del on_disk
    gc.collect()
    assert not folder.exists()


def test_save_of_a_disk_explanation_is_a_normal_file_and_load_can_map_it(bundled, tmp_path):
    on_disk = explain(bundled, TEXT, saliency=False, keep="disk")
    on_disk = dataclasses.replace(on_disk, summary_notes={"entropy": "estimated from 2 of 13"})
    path = on_disk.save(tmp_path / "e.safetensors")
    loaded = Explanation.load(path, keep="cpu")
    assert all(file_of(q) is None for q in loaded.queries)  # in memory
    assert loaded.summary_notes == {"entropy": "estimated from 2 of 13"}
    mapped = Explanation.load(path, keep="disk")
    assert {file_of(q) for q in mapped.queries} == {str(path)}
    for a, b in zip((*loaded.queries, *loaded.keys), (*mapped.queries, *mapped.keys), strict=True):
        assert torch.equal(a, b)
    np.testing.assert_array_equal(loaded.attention(1, 2), mapped.attention(1, 2))


def test_keep_gpu_without_cuda_and_conflicting_arguments_say_what_to_do(bundled) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="keep='gpu' keeps queries/keys on the model's CUDA"):
        explain(bundled, TEXT, saliency=False, keep="gpu")
    with pytest.raises(ValueError, match="keep must be one of"):
        explain(bundled, TEXT, saliency=False, keep="ssd")
    with pytest.raises(TypeError, match="keep= or its older spelling offload="):
        explain(bundled, TEXT, saliency=False, keep="cpu", offload=True)
    with pytest.raises(ValueError, match="keep='gpu' needs CUDA"):
        Explanation.load("unused.safetensors", keep="gpu")


def test_offload_is_the_older_spelling_of_keep(bundled) -> None:
    old = explain(bundled, TEXT, saliency=False, offload=True)
    new = explain(bundled, TEXT, saliency=False, keep="cpu")
    assert all(torch.equal(a, b) for a, b in zip(old.queries, new.queries, strict=True))
    assert old.queries[0].device.type == "cpu"


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_keep_gpu_keeps_captures_on_the_card_and_cpu_in_host_memory() -> None:
    from llmasos_widgets import load_model

    model = load_model("tiny-llama", device="cuda")
    on_card = explain(model, TEXT, saliency=False, keep="gpu")
    in_host = explain(model, TEXT, saliency=False, keep="cpu")
    assert all(q.device.type == "cuda" for q in on_card.queries)
    assert all(q.device.type == "cpu" for q in in_host.queries)
    assert all(
        torch.equal(a.cpu(), b) for a, b in zip(on_card.queries, in_host.queries, strict=True)
    )
    view = on_card.pooled_attention(1, 0, shape=(4, 4))
    np.testing.assert_allclose(
        view.values, in_host.pooled_attention(1, 0, shape=(4, 4)).values, rtol=1e-5, atol=1e-7
    )


def test_saved_row_normalisers_make_a_loaded_first_view_one_pass(bundled, tmp_path) -> None:
    from llmasos_widgets.tracing import TileStats
    from llmasos_widgets.views import pooled_view

    explanation = explain(bundled, TEXT, saliency=False)
    # explain's exact summaries leave every row's log-sum-exp known
    assert all(bool(k.all()) for k in explanation.row_normalisers.known.values())
    loaded = Explanation.load(explanation.save(tmp_path / "e.safetensors"))
    for layer, lse in explanation.row_normalisers.lse.items():
        torch.testing.assert_close(loaded.row_normalisers.lse[layer], lse, rtol=0, atol=0)
    tiles = {}
    cold = Explanation.load(tmp_path / "e.safetensors")
    cold.row_normalisers.lse.clear()
    cold.row_normalisers.known.clear()
    for name, source in (("original", explanation), ("loaded", loaded), ("cold", cold)):
        stats = TileStats()
        view = pooled_view(source, 1, [2], shape=(5, 5), stats=stats)[0]
        tiles[name] = stats.normalised_rows
    # the loaded file's view computes no normaliser, like the original's; cold computes them
    assert tiles["loaded"] == tiles["original"] == 0 < tiles["cold"]
    np.testing.assert_allclose(
        view.values, explanation.pooled_attention(1, 2, shape=(5, 5)).values, rtol=1e-6
    )
