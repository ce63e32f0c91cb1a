"""Models split with a ``device_map`` (accelerate) give the numbers of one device.

On the CPU the split is the CPU plus disk offload (accelerate's ``AlignDevicesHook`` on every
module, weights on ``meta`` between calls), which checks that our hooks coexist with
accelerate's; with a GPU the model is split between ``cpu`` and ``cuda:0``, which also checks
that per-layer results living on different devices are gathered before they are combined.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from llmasos_widgets._hooks import count_hooks
from llmasos_widgets.attribution import attribute
from llmasos_widgets.models import as_explainable
from llmasos_widgets.probing import activations, probe
from llmasos_widgets.tracing import trace
from tests.conftest import random_llama, word_tokenizer

TEXT = "w1 w5 w7 w3 w9 w2 w11 w5 w7"
PROBE_TEXTS = [
    "w1 w2 w3 w4 w5 w6 w7",
    "w8",
    "w9 w10 w11",
    "w12 w13 w14 w15 w16",
    "w17 w18",
    "w19 w20 w21 w22 w23 w24",
]
METHODS = ("gradient", "input_x_gradient", "integrated_gradients", "occlusion")
N_LAYERS = 4


def accelerate_hooks(hf_model: torch.nn.Module) -> dict[str, Any]:
    """Module name -> accelerate's hook object, for every module accelerate dispatched."""
    return {
        name: module._hf_hook
        for name, module in hf_model.named_modules()
        if getattr(module, "_hf_hook", None) is not None
    }


def layer_devices(hf_model: torch.nn.Module) -> list[str]:
    """Where each decoder layer computes (accelerate's execution device)."""
    from llmasos_widgets._gather import execution_device

    return [str(execution_device(layer)) for layer in hf_model.model.layers]


def check_trace(reference: Any, split: Any, *, atol: float) -> None:
    """q/k, residual stream, patterns and logits under ``trace`` equal the one-device ones;
    our hooks are gone afterwards and accelerate's are still in place."""
    before = accelerate_hooks(split.hf_model)
    assert before, "the split model should carry accelerate hooks"
    results = []
    for model in (reference, split):
        ids = model.encode(TEXT)
        with torch.no_grad(), trace(model.hf_model) as captured:
            logits = model.hf_model(input_ids=ids).logits
        results.append((captured, logits))
    (ref, ref_logits), (got, got_logits) = results
    _close(got_logits, ref_logits, atol)
    for layer in range(N_LAYERS):
        _close(got.queries[layer], ref.queries[layer], atol)
        _close(got.keys[layer], ref.keys[layer], atol)
        _close(got.attention(layer), ref.attention(layer), atol)
    for index in range(N_LAYERS + 1):
        _close(got.residual[index], ref.residual[index], atol)
    assert count_hooks(split.hf_model) == 0
    assert accelerate_hooks(split.hf_model) == before


def check_explain(reference: Any, split: Any, *, atol: float) -> None:
    ref = reference.explain(TEXT, saliency_method="input_x_gradient")
    got = split.explain(TEXT, saliency_method="input_x_gradient")
    assert got.tokens == ref.tokens
    for name, values in ref.head_summaries.items():
        np.testing.assert_allclose(got.head_summaries[name], values, rtol=0, atol=atol)
    np.testing.assert_array_equal(got.top_token_ids, ref.top_token_ids)
    np.testing.assert_allclose(got.top_probs, ref.top_probs, rtol=0, atol=atol)
    np.testing.assert_array_equal(got.lens_token_ids, ref.lens_token_ids)
    np.testing.assert_allclose(got.lens_probs, ref.lens_probs, rtol=0, atol=atol)
    for layer in range(N_LAYERS):
        np.testing.assert_allclose(
            got.attention(layer, 1), ref.attention(layer, 1), rtol=0, atol=atol
        )
    assert got.saliency is not None and ref.saliency is not None
    _scores_close(got.saliency.scores, ref.saliency.scores, atol)


def check_attribute(reference: Any, split: Any, *, atol: float) -> None:
    for method in METHODS:
        # 32 steps: the fewest that converge on TEXT here (16 leave |delta| ≈ 9% of the gap)
        options = {"n_steps": 32} if method == "integrated_gradients" else {}
        ref = attribute(reference, TEXT, method=method, **options)
        got = attribute(split, TEXT, method=method, **options)
        assert got.target == ref.target, method
        _scores_close(got.scores, ref.scores, atol, method)
        if ref.convergence_delta is not None:
            assert got.convergence_delta is not None
            np.testing.assert_allclose(
                got.convergence_delta, ref.convergence_delta, rtol=0, atol=max(atol, 1e-7) * 10
            )
    assert count_hooks(split.hf_model) == 0


def check_widgets(reference: Any, split: Any, *, atol: float) -> None:
    # imported here so the other checks also run where anywidget is absent (a GPU machine)
    pytest.importorskip("anywidget")
    from llmasos_widgets.widgets import AttentionWidget, SaliencyWidget

    widgets = [AttentionWidget(model, TEXT) for model in (reference, split)]
    ref, got = widgets
    assert got.tokens == ref.tokens
    for name, payload in ref.head_summaries.items():
        expected = np.frombuffer(payload["view"], dtype="<f4")
        received = np.frombuffer(got.head_summaries[name]["view"], dtype="<f4")
        np.testing.assert_allclose(received, expected, rtol=0, atol=atol)
    ref_content, ref_buffers = ref.pattern_message(N_LAYERS - 1, 2)
    got_content, got_buffers = got.pattern_message(N_LAYERS - 1, 2)
    if atol == 0:  # quantized to uint8 for the browser: equal inputs give equal bytes
        assert got_content == ref_content
        assert [bytes(b) for b in got_buffers] == [bytes(b) for b in ref_buffers]
    salient = [
        SaliencyWidget(model, TEXT, method="integrated_gradients", n_steps=32)
        for model in (reference, split)
    ]
    for widget in salient:
        widget.recompute(raise_errors=True)
    _scores_close(salient[1].saliency.scores, salient[0].saliency.scores, atol)
    for widget in (*widgets, *salient):
        widget.close()


def check_probing(reference: Any, split: Any, *, atol: float) -> None:
    acts = [
        activations(model, PROBE_TEXTS, positions="all", batch_size=4, progress=False)
        for model in (reference, split)
    ]
    for layer in acts[0].layers:
        np.testing.assert_allclose(acts[1][layer], acts[0][layer], rtol=0, atol=atol)
    rows = [(f"w{i} w{i + 1} w{i + 2}"[: 3 + i % 2 * 4], i % 2) for i in range(30, 54)]
    results = [
        probe(model, rows, layers=[0, N_LAYERS], seed=0, progress=False)
        for model in (reference, split)
    ]
    np.testing.assert_array_equal(results[1].test_accuracy, results[0].test_accuracy)
    np.testing.assert_allclose(results[1].weights, results[0].weights, rtol=0, atol=atol * 1e3)
    assert count_hooks(split.hf_model) == 0


def _close(got: torch.Tensor, expected: torch.Tensor, atol: float) -> None:
    torch.testing.assert_close(got.cpu(), expected.cpu(), rtol=0, atol=atol)


def _scores_close(got: np.ndarray, expected: np.ndarray, atol: float, what: str = "") -> None:
    scale = float(np.abs(expected).max())
    assert scale > 0, f"{what}: scores should not be all zero"
    np.testing.assert_allclose(got, expected, rtol=0, atol=atol * max(scale, 1.0), err_msg=what)


# ---- fixtures ---------------------------------------------------------------------------

# Every decoder layer's neighbours differ: 0 cpu, 1 disk, 2 cpu, 3 disk; the embeddings and
# the head are offloaded too, so their weights sit on "meta" between calls.
CPU_DISK_MAP = {
    "model.embed_tokens": "disk",
    "model.rotary_emb": "cpu",
    **{f"model.layers.{i}": ("cpu", "disk")[i % 2] for i in range(N_LAYERS)},
    "model.norm": "disk",
    "lm_head": "disk",
}


def _sharp_llama(seed: int = 3) -> torch.nn.Module:
    # initializer_range 0.2: attention and next-token distributions are far from uniform, so
    # top-1 ids are not decided by float noise
    return random_llama(layers=N_LAYERS, seed=seed, initializer_range=0.2)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("split") / "checkpoint"
    _sharp_llama().save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def reference(checkpoint: Path) -> Any:
    from transformers import AutoModelForCausalLM

    hf_model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32)
    return as_explainable(hf_model.eval(), word_tokenizer())


@pytest.fixture(scope="module")
def cpu_disk_split(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from transformers import AutoModelForCausalLM

    hf_model = AutoModelForCausalLM.from_pretrained(
        checkpoint,
        dtype=torch.float32,
        device_map=CPU_DISK_MAP,
        offload_folder=str(tmp_path_factory.mktemp("offload")),
    )
    return as_explainable(hf_model.eval(), word_tokenizer())


# ---- CPU + disk offload -----------------------------------------------------------------


def test_the_split_is_what_accelerate_makes_of_the_device_map(cpu_disk_split) -> None:
    hf_model = cpu_disk_split.hf_model
    hooks = accelerate_hooks(hf_model)
    assert {"model.embed_tokens", "model.layers.1", "lm_head"} <= set(hooks)
    assert hf_model.model.layers[1].mlp.up_proj.weight.device.type == "meta"
    assert hf_model.model.embed_tokens.weight.device.type == "meta"
    # token ids go where the embedding computes, not to its "meta" weight
    assert cpu_disk_split.device == torch.device("cpu")


@pytest.mark.parametrize(
    "check", [check_trace, check_explain, check_attribute, check_widgets, check_probing]
)
def test_every_public_path_on_a_cpu_disk_split_equals_one_device(
    reference, cpu_disk_split, check
) -> None:
    # the same kernels run on the same device: bitwise equal
    check(reference, cpu_disk_split, atol=0.0)


def test_a_failing_traced_forward_leaves_accelerates_hooks_and_none_of_ours(
    cpu_disk_split,
) -> None:
    hf_model = cpu_disk_split.hf_model
    before = accelerate_hooks(hf_model)
    wrapped_forward = hf_model.model.layers[1].forward
    with pytest.raises(RuntimeError, match="boom"), trace(hf_model):
        hf_model(input_ids=cpu_disk_split.encode(TEXT))
        raise RuntimeError("boom")
    assert count_hooks(hf_model) == 0
    assert accelerate_hooks(hf_model) == before
    assert hf_model.model.layers[1].forward == wrapped_forward  # still accelerate's wrapper


# ---- CPU + cuda:0 -----------------------------------------------------------------------

# Decoder layers alternate between the CPU and the GPU, and the embeddings and the head sit on
# different devices: every per-layer result is on a different device from its neighbour's.
CPU_CUDA_MAP = {
    "model.embed_tokens": "cpu",
    "model.rotary_emb": "cpu",
    **{f"model.layers.{i}": ("cpu", 0)[i % 2] for i in range(N_LAYERS)},
    "model.norm": 0,
    "lm_head": 0,
}
# CUDA and CPU kernels round differently (float32 on both, TF32 off)
CUDA_ATOL = 1e-4


@pytest.fixture(scope="module")
def cpu_cuda_split(checkpoint: Path) -> Any:
    from accelerate import dispatch_model
    from transformers import AutoModelForCausalLM

    torch.backends.cuda.matmul.allow_tf32 = False
    hf_model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).eval()
    # main_device="cpu": "cpu" entries compute on the CPU (with a GPU as main device,
    # accelerate would treat them as offloaded weights computed on the GPU)
    dispatch_model(hf_model, device_map=CPU_CUDA_MAP, main_device="cpu")
    return as_explainable(hf_model, word_tokenizer())


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize(
    "check", [check_trace, check_explain, check_attribute, check_widgets, check_probing]
)
def test_every_public_path_on_a_cpu_cuda_split_equals_one_device(
    reference, cpu_cuda_split, check
) -> None:
    assert layer_devices(cpu_cuda_split.hf_model) == ["cpu", "cuda:0"] * (N_LAYERS // 2)
    check(reference, cpu_cuda_split, atol=CUDA_ATOL)
