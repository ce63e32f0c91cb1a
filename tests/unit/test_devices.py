"""Device and dtype resolution: "auto" is predictable, impossible requests are refused."""

from __future__ import annotations

import pytest
import torch

from llmasos_widgets.models._devices import resolve_device, resolve_dtype


def test_auto_picks_cuda_only_when_present():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected


def test_cpu_is_float32_by_default():
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("bf16", torch.device("cpu")) == torch.bfloat16
    assert resolve_dtype(torch.float16, torch.device("cpu")) == torch.float16


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_without_a_gpu_says_so():
    with pytest.raises(ValueError, match="no CUDA GPU"):
        resolve_device("cuda")


@pytest.mark.parametrize("bad", ["gpu0", "tpu", ""])
def test_non_devices_are_named(bad):
    with pytest.raises(ValueError, match="device"):
        resolve_device(bad)
