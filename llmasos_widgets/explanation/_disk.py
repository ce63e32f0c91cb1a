"""Captured queries/keys kept in memory-mapped files (``explain(..., keep="disk")``).

Tensors are read-only-in-spirit views of ``np.memmap`` files (copy-on-write mode: a write
changes the process's copy, never the file), so the OS pages them in as views read them and
the host holds only what is touched. ``explain`` writes its captures into a temporary folder
removed when the Explanation is garbage-collected; ``Explanation.load(..., keep="disk")``
maps the saved safetensors file itself, without a copy.
"""

from __future__ import annotations

import json
import shutil
import struct
import tempfile
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import torch

KEEPS = ("gpu", "cpu", "disk")

# same-width integer views: numpy has no bfloat16, and bits are all a file needs
_BITS = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
_SAFETENSORS_DTYPES = {
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "F64": torch.float64,
    "I64": torch.int64,
    "I32": torch.int32,
}


def check_keep(keep: str) -> str:
    if keep not in KEEPS:
        raise ValueError(f"keep must be one of {KEEPS}, got {keep!r}")
    return keep


def map_file(
    path: Path, *, offset: int, dtype: torch.dtype, shape: tuple[int, ...]
) -> torch.Tensor:
    """A CPU tensor backed by ``path`` bytes ``offset:`` (copy-on-write mapping)."""
    width = torch.empty((), dtype=dtype).element_size()
    count = int(np.prod(shape, dtype=np.int64))
    if count == 0:
        return torch.empty(shape, dtype=dtype)
    array = np.memmap(path, dtype=_BITS[width], mode="c", offset=offset, shape=(count,))
    return torch.from_numpy(array).view(dtype).view(shape)


class DiskStore:
    """A temporary folder of memory-mapped tensors, removed with its owner."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="llmasos-qk-"))
        self._count = 0

    def keep(self, tensor: torch.Tensor) -> torch.Tensor:
        """Write ``tensor`` to a file in the folder and return the file-backed tensor."""
        path = self.folder / f"{self._count}.bin"
        self._count += 1
        host = tensor.detach().to("cpu").contiguous()
        width = host.element_size()
        host.view(-1).view(_bit_dtype(width)).numpy().tofile(path)
        return map_file(path, offset=0, dtype=host.dtype, shape=tuple(host.shape))

    def owned_by(self, owner: object) -> None:
        """Remove the folder when ``owner`` is garbage-collected (or at interpreter exit);
        mappings still open stay valid after the files are unlinked (POSIX)."""
        weakref.finalize(owner, shutil.rmtree, str(self.folder), True)


def _bit_dtype(width: int) -> torch.dtype:
    return {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[width]


def map_safetensors(path: Path, names: list[str]) -> dict[str, torch.Tensor]:
    """Tensors ``names`` of a safetensors file mapped from the file itself (no copy)."""
    with open(path, "rb") as file:
        (header_size,) = struct.unpack("<Q", file.read(8))
        header: dict[str, Any] = json.loads(file.read(header_size))
    out = {}
    for name in names:
        entry = header[name]
        begin, _end = entry["data_offsets"]
        out[name] = map_file(
            path,
            offset=8 + header_size + int(begin),
            dtype=_SAFETENSORS_DTYPES[entry["dtype"]],
            shape=tuple(int(n) for n in entry["shape"]),
        )
    return out
