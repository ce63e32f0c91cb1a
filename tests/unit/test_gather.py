"""Gathering per-layer tensors that live on different devices, and where a module computes.

A second real device is absent on a CPU machine; ``meta`` is a device torch keeps apart from
``cpu`` just as it keeps ``cuda:0`` apart from ``cuda:1`` (stacking across them fails the
same way), so it stands in for "another device" here.
"""

from __future__ import annotations

import pytest
import torch

from llmasos_widgets._gather import execution_device, gather, stack_on


def test_stacking_across_devices_fails_without_gathering() -> None:
    with pytest.raises(RuntimeError, match="device"):
        torch.stack([torch.ones(3), torch.ones(3, device="meta")])


def test_stack_on_moves_every_tensor_to_one_device_first() -> None:
    stacked = stack_on([torch.ones(3), torch.ones(3, device="meta")], "meta")
    assert stacked.device.type == "meta"
    assert stacked.shape == (2, 3)


def test_stack_on_keeps_values_and_order() -> None:
    rows = [torch.full((2,), float(i)) for i in range(4)]
    torch.testing.assert_close(stack_on(rows, "cpu", dim=1), torch.arange(4.0).expand(2, 4))


def test_gather_does_not_copy_what_is_already_there() -> None:
    tensor = torch.ones(3)
    (same,) = gather([tensor], torch.device("cpu"))
    assert same is tensor


def test_stack_on_nothing_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no tensors"):
        stack_on([], "cpu")


class _AlignHook:
    """What execution_device reads from accelerate's AlignDevicesHook."""

    def __init__(self, device: object) -> None:
        self.execution_device = device


class _SequentialHook:
    def __init__(self, *hooks: object) -> None:
        self.hooks = hooks


@pytest.mark.parametrize(
    ("hook", "expected"),
    [
        (_AlignHook(torch.device("cuda", 1)), torch.device("cuda", 1)),
        (_AlignHook(0), torch.device("cuda", 0)),  # accelerate accepts GPU indices
        (_AlignHook("cpu"), torch.device("cpu")),
        (_SequentialHook(object(), _AlignHook("cuda:2")), torch.device("cuda", 2)),
    ],
)
def test_a_dispatched_module_computes_on_its_hooks_execution_device(hook, expected) -> None:
    module = torch.nn.Linear(2, 2, device="meta")  # offloaded: weights on meta
    module._hf_hook = hook
    assert execution_device(module) == expected


def test_a_plain_module_computes_where_its_weights_are() -> None:
    assert execution_device(torch.nn.Linear(2, 2)) == torch.device("cpu")
    assert execution_device(torch.nn.ReLU()) == torch.device("cpu")  # no weights at all


def test_accelerates_real_offload_hook_is_read() -> None:
    from accelerate import cpu_offload

    module = torch.nn.Sequential(torch.nn.Linear(2, 2))
    cpu_offload(module, execution_device=torch.device("cpu"))
    assert module[0].weight.device.type == "meta"
    assert execution_device(module[0]) == torch.device("cpu")
