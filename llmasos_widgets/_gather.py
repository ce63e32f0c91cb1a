"""Per-layer results gathered onto one device before they are combined.

With a ``device_map`` (accelerate), each decoder layer runs on its own device and what it
produces -- captured q/k, residual activations, gradients, per-layer scores -- stays there:
accelerate moves only the whole model's output back to the device of its input
(``io_same_device`` on the top-level hook). Combining layers (``torch.stack``, ``torch.cat``,
arithmetic across layers) therefore goes through :func:`stack_on`, and tensors we create to
meet a layer's output are made on that output's device, never on ``model.device``.

Offloaded modules (``"cpu"``/``"disk"`` entries next to a GPU) keep their weights on the
``meta`` device between calls; :func:`execution_device` says where such a module computes.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


def gather(tensors: Iterable[torch.Tensor], device: torch.device | str) -> list[torch.Tensor]:
    """Each tensor on ``device`` (no copy for those already there), in order."""
    target = torch.device(device)
    return [tensor.to(target) for tensor in tensors]


def stack_on(
    tensors: Iterable[torch.Tensor], device: torch.device | str, *, dim: int = 0
) -> torch.Tensor:
    """``torch.stack`` of tensors that may live on different devices, on ``device``."""
    gathered = gather(tensors, device)
    if not gathered:
        raise ValueError("nothing to stack: got no tensors")
    return torch.stack(gathered, dim=dim)


def execution_device(module: torch.nn.Module) -> torch.device:
    """Where ``module`` computes: accelerate's execution device when it dispatched the module
    (its weights may then sit on ``meta``), else the device of its first parameter or buffer,
    else the CPU."""
    hook = getattr(module, "_hf_hook", None)
    # accelerate's AlignDevicesHook; a SequentialHook chains several
    for candidate in (hook, *getattr(hook, "hooks", ())):
        device = getattr(candidate, "execution_device", None)
        if device is not None:
            return torch.device(device if not isinstance(device, int) else f"cuda:{device}")
    for tensor in (*module.parameters(), *module.buffers()):
        if tensor.device.type != "meta":
            return tensor.device
    return torch.device("cpu")
