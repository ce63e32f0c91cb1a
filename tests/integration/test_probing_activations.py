"""activations/probe on a random-init LLaMA: exact values, padding, batching, streaming, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from llmasos_widgets._hooks import borrowed_hooks, count_hooks
from llmasos_widgets.probing import Activations, ProbeDataset, activations, probe

# Different lengths, so every batch mixes padding; one duplicate (run once, two rows).
TEXTS = [
    "w1 w2 w3 w4 w5 w6 w7",
    "w8",
    "w9 w10 w11",
    "w12 w13 w14 w15 w16",
    "w1 w2 w3 w4 w5 w6 w7",
    "w17 w18",
    "w19 w20 w21 w22 w23 w24 w25 w26 w27 w28",
]


def reference(model, text: str) -> list[torch.Tensor]:
    """Residual stream of one unpadded text from HF's own output_hidden_states."""
    with torch.no_grad():
        out = model.hf_model(model.encode(text), output_hidden_states=True)
    states = [h[0] for h in out.hidden_states]
    # HF's last hidden state is after the final norm; ours is before it (as in trace()).
    return states


def test_activations_equal_hidden_states_of_each_text_alone(tiny_random):
    acts = activations(tiny_random, TEXTS, positions="all", batch_size=3, progress=False)
    n_layers = tiny_random.hf_model.config.num_hidden_layers
    assert acts.layers == tuple(range(n_layers + 1))
    norm = tiny_random.hf_model.model.norm
    for i, text in enumerate(TEXTS):
        states = reference(tiny_random, text)
        rows = acts.text_index == i
        np.testing.assert_array_equal(acts.positions[rows], np.arange(rows.sum()))
        assert acts.token_ids[rows].tolist() == tiny_random.encode(text)[0].tolist()
        for layer in range(n_layers):
            np.testing.assert_allclose(acts[layer][rows], states[layer].numpy(), atol=1e-5)
        with torch.no_grad():
            normed = norm(torch.from_numpy(acts[n_layers][rows])).numpy()
        np.testing.assert_allclose(normed, states[n_layers].numpy(), atol=1e-5)


def test_batch_size_and_padding_side_do_not_change_activations(tiny_random):
    base = activations(tiny_random, TEXTS, batch_size=1, progress=False)
    for batch_size in (2, 7):
        for side in ("left", "right"):
            other = activations(
                tiny_random, TEXTS, batch_size=batch_size, padding_side=side, progress=False
            )
            for layer in base.layers:
                assert np.abs(base[layer] - other[layer]).max() <= 1e-5


def test_positions_forms(tiny_random):
    last = activations(tiny_random, TEXTS, layers=[1], positions="last", progress=False)
    minus_one = activations(tiny_random, TEXTS, layers=[1], positions=-1, progress=False)
    lengths = [len(t.split()) + 1 for t in TEXTS]  # + <bos>
    per_text = activations(
        tiny_random, TEXTS, layers=[1], positions=[n - 1 for n in lengths], progress=False
    )
    np.testing.assert_array_equal(last.positions, np.array(lengths) - 1)
    np.testing.assert_array_equal(last[1], minus_one[1])
    np.testing.assert_array_equal(last[1], per_text[1])
    first = activations(tiny_random, TEXTS, layers=[0], positions=0, progress=False)
    bos = tiny_random.tokenizer.bos_token_id
    assert set(first.token_ids.tolist()) == {bos}
    np.testing.assert_allclose(first[0], np.repeat(first[0][:1], len(TEXTS), axis=0))


def test_forward_stops_after_the_deepest_requested_layer(tiny_random):
    decoder = tiny_random.hf_model.model.layers
    calls = {"last": 0}

    def count(*_: object) -> None:
        calls["last"] += 1

    with borrowed_hooks() as hooks:
        hooks.forward(decoder[-1], count)
        shallow = activations(tiny_random, TEXTS, layers=[1], progress=False)
        assert calls["last"] == 0
        activations(tiny_random, TEXTS, layers="all", batch_size=4, progress=False)
        assert calls["last"] == 2  # two batches of the 6 distinct texts
    full = activations(tiny_random, TEXTS, layers="all", progress=False)
    np.testing.assert_array_equal(shallow[1], full[1])


def test_no_hooks_left_and_training_mode_restored(tiny_random):
    model = tiny_random.hf_model
    model.train()
    activations(tiny_random, TEXTS[:2], progress=False)
    assert count_hooks(model) == 0 and model.training
    with pytest.raises(ValueError, match="outside text"):
        activations(tiny_random, TEXTS[:2], positions=[0, 5], progress=False)
    boom = RuntimeError("stop")

    def fail(*_: object) -> None:
        raise boom

    model.eval()
    with borrowed_hooks() as hooks:
        hooks.forward(model.model.layers[0], fail)
        with pytest.raises(RuntimeError, match="stop"):
            activations(tiny_random, TEXTS[:2], progress=False)
    assert count_hooks(model) == 0 and not model.training


def test_streaming_to_disk_matches_memory(tiny_random, tmp_path: Path):
    memory = activations(tiny_random, TEXTS, positions="all", batch_size=2, progress=False)
    disk = activations(
        tiny_random, TEXTS, positions="all", batch_size=2, out=tmp_path / "acts", progress=False
    )
    assert disk.path == tmp_path / "acts"
    reopened = Activations.open(tmp_path / "acts")
    for layer in memory.layers:
        assert isinstance(disk[layer], np.memmap)  # read lazily
        np.testing.assert_array_equal(memory[layer], disk[layer])
        np.testing.assert_array_equal(memory[layer], reopened[layer])
    np.testing.assert_array_equal(memory.token_ids, reopened.token_ids)
    with pytest.raises(FileExistsError, match="not empty"):
        activations(tiny_random, TEXTS, out=tmp_path / "acts", progress=False)


def test_bad_input_errors_say_what_to_do(tiny_random):
    with pytest.raises(ValueError, match="unknown layer 9"):
        activations(tiny_random, TEXTS, layers=[9], progress=False)
    with pytest.raises(ValueError, match="one position per text"):
        activations(tiny_random, TEXTS, positions=[1, 2], progress=False)
    with pytest.raises(ValueError, match="texts is empty"):
        activations(tiny_random, [], progress=False)
    with pytest.raises(ValueError, match="is empty; pass at least one word"):
        activations(tiny_random, ["w1", "  "], progress=False)
    with pytest.raises(ValueError, match="at most 64"):
        activations(tiny_random, [" ".join(["w1"] * 70)], progress=False)
    with pytest.raises(TypeError, match="wrap a single text"):
        activations(tiny_random, "w1 w2", progress=False)
    with pytest.raises(KeyError, match="was not collected"):
        activations(tiny_random, TEXTS, layers=[0], progress=False)[1]
    data = ProbeDataset(texts=("w1 w2", "w3 w4"), labels=(0, 1), positions=(1, 9))
    with pytest.raises(ValueError, match="outside text 1"):
        probe(tiny_random, data, progress=False)
    with pytest.raises(ValueError, match="already has a position"):
        probe(tiny_random, data, positions="last", progress=False)
    with pytest.raises(ValueError, match="one position per label"):
        probe(tiny_random, [("w1 w2", 0), ("w3", 1)], positions="all", progress=False)


def test_probe_on_a_token_identity_task_has_no_selectivity(tiny_random):
    """Known answer: label = parity of the word at the probed position, 20 word types. At the
    embeddings (layer 0) the label is a function of the token alone and 20 points in 32-d are
    linearly separable in any labelling: the probe is perfect, and so is the control task
    (also a function of the token), so selectivity is exactly 0."""
    rng = np.random.default_rng(0)
    words = rng.integers(0, 20, size=(160, 3))
    rows = [(" ".join(f"w{w}" for w in ws), int(ws[-1] % 2)) for ws in words]
    result = probe(tiny_random, rows, layers=[0], seed=0, l2=1e-4, progress=False)
    assert result.train_accuracy[0] == 1.0 and result.test_accuracy[0] == 1.0
    assert result.control_accuracy is not None and result.control_accuracy[0] == 1.0
    again = probe(tiny_random, rows, layers=[0], seed=0, l2=1e-4, progress=False)
    np.testing.assert_array_equal(result.weights, again.weights)
    other = probe(tiny_random, rows, layers=[0], seed=1, l2=1e-4, control=False, progress=False)
    assert not np.array_equal(result.weights, other.weights)  # another split
    assert result.metadata["n_layers"] == 2
