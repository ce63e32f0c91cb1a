"""The Dask path (optional extra) gives the same activations as the local one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from llmasos_widgets.probing import activations

pytest.importorskip("distributed")

TEXTS = [" ".join(f"w{(7 * i + j) % 60}" for j in range(1 + i % 6)) for i in range(40)]
POSITIONS = [-(1 + i % 2) if i % 6 else 0 for i in range(40)]


@pytest.mark.slow  # starting the two worker processes (dask_client) takes ~20 s on 2 CPU cores
def test_two_worker_cluster_matches_local_path(tiny_random, tmp_path: Path, dask_client):
    client = dask_client
    local = activations(tiny_random, TEXTS, positions=POSITIONS, batch_size=8, progress=False)
    checkpoint = tmp_path / "model"  # for workers that load the model themselves, by path
    tiny_random.hf_model.save_pretrained(checkpoint)
    tiny_random.tokenizer.save_pretrained(checkpoint)
    in_memory = activations(tiny_random, TEXTS, positions=POSITIONS, batch_size=8, client=client)
    on_disk = activations(
        tiny_random, TEXTS, positions=POSITIONS, batch_size=8, client=client,
        out=tmp_path / "acts",
    )  # fmt: skip
    loaded_by_workers = activations(
        str(checkpoint), TEXTS, positions=POSITIONS, batch_size=8, client=client
    )
    assert len(client.scheduler_info()["workers"]) == 2
    assert sorted(p.name for p in (tmp_path / "acts").iterdir())[:2] == [
        "activations.json",
        "index.npz",
    ]
    assert len(list((tmp_path / "acts").glob("shard-*"))) == 4  # 40 texts, 2 chunks per worker
    for result in (in_memory, on_disk, loaded_by_workers):
        np.testing.assert_array_equal(result.text_index, local.text_index)
        np.testing.assert_array_equal(result.positions, local.positions)
        np.testing.assert_array_equal(result.token_ids, local.token_ids)
        for layer in local.layers:
            assert np.abs(result[layer] - local[layer]).max() <= 1e-5
