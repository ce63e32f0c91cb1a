"""GGUF files (llama.cpp's format): loaded through transformers, which dequantizes every tensor
to an ordinary float tensor, so the model that results is explained like any other.

transformers still marks such a model as "quantized with gguf" (``hf_quantizer``,
``config.quantization_config``) although nothing in it runs a quantized kernel. Whether a model
is quantized is decided here by what its parameters are (:func:`quantized_parameters`), not by
that flag; a dequantized GGUF model has the flag taken off so it saves and copies like any
other, and remembers where its weights came from (:func:`gguf_weights_note`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from llmasos_widgets.models._support import UnsupportedArchitectureError

GGUF_SUFFIX = ".gguf"

GGUF_ARCHITECTURES = ("llama", "mistral", "qwen2", "gemma2")
"""GGUF architectures that transformers dequantizes and tracing supports."""

FLOAT_DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.float64)
"""Parameter dtypes that are ordinary weights (float8 is a quantization format)."""

# buffers by which quantized linear layers (GPTQ/AWQ/Marlin kernels) hold packed weights
_PACKED_BUFFER_NAMES = ("qweight", "qzeros", "scales", "g_idx", "SCB", "weight_format")


def is_gguf_path(name: str) -> bool:
    """Whether ``name`` names a GGUF file (by its suffix)."""
    return name.lower().endswith(GGUF_SUFFIX)


def split_gguf_path(path: str) -> tuple[str, str]:
    """``(directory, file name)`` of a GGUF file, as ``from_pretrained(dir, gguf_file=...)``
    takes them."""
    expanded = Path(os.path.expanduser(path))
    return str(expanded.parent), expanded.name


def gguf_header(path: str | os.PathLike[str]) -> tuple[str, str]:
    """``(architecture, quantization)`` of a GGUF file: ``("llama", "Q4_1")``. The type is
    llama.cpp's name from ``general.file_type`` (or, without one, the most common tensor type).

    The metadata is read by :func:`_metadata_scalars` (a tenth of a second), not
    ``gguf.GGUFReader``, which builds an object per vocabulary entry (25 s for SmolLM2's
    49,152 tokens on a busy 2-core machine); the reader is the fallback for what that skips.
    """
    import gguf

    scalars = _metadata_scalars(path)
    if scalars is None:  # big-endian or nested arrays: let gguf read it
        reader = gguf.GGUFReader(os.fspath(path))
        scalars = {}
        for key in ("general.architecture", "general.file_type"):
            field = reader.fields.get(key)
            if field is not None:
                value = field.parts[field.data[0]]
                scalars[key] = bytes(value).decode() if key.endswith("ure") else int(value[0])
    architecture = str(scalars.get("general.architecture", "unknown"))
    file_type = scalars.get("general.file_type")
    if isinstance(file_type, int):
        try:
            name = gguf.LlamaFileType(file_type).name
            return architecture, name.removeprefix("MOSTLY_").removeprefix("ALL_")
        except ValueError:
            pass
    from collections import Counter

    reader = gguf.GGUFReader(os.fspath(path))
    counts = Counter(tensor.tensor_type.name for tensor in reader.tensors)
    return architecture, counts.most_common(1)[0][0] if counts else "unknown"


# GGUF metadata value types: 0-7, 10-12 fixed-size scalars, 8 string, 9 array
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?"}
_SCALARS.update({10: "Q", 11: "q", 12: "d"})
_STRING, _ARRAY = 8, 9


def _metadata_scalars(path: str | os.PathLike[str]) -> dict[str, object] | None:
    """The key/value metadata of a little-endian GGUF file, arrays skipped (``None`` for a file
    this does not read: big-endian, or arrays of arrays). Raises ``ValueError`` for a file that
    is not GGUF at all."""
    import struct

    with open(path, "rb") as file:

        def read(form: str) -> tuple[Any, ...]:
            size = struct.calcsize("<" + form)
            data = file.read(size)
            if len(data) != size:
                raise ValueError(f"{os.fspath(path)!r} is a truncated GGUF file")
            return struct.unpack("<" + form, data)

        def string() -> bytes:
            (length,) = read("Q")
            return file.read(length)

        if file.read(4) != b"GGUF":
            raise ValueError(
                f"{os.fspath(path)!r} is not a GGUF file (it does not start with b'GGUF')"
            )
        version, _tensors, count = read("IQQ")
        if version > 0xFFFF:  # byte-swapped: a big-endian file
            return None
        scalars: dict[str, object] = {}
        for _ in range(count):
            key = string().decode("utf-8", "replace")
            (kind,) = read("I")
            if kind == _STRING:
                scalars[key] = string().decode("utf-8", "replace")
            elif kind in _SCALARS:
                (scalars[key],) = read(_SCALARS[kind])
            elif kind == _ARRAY:
                item, length = read("IQ")
                if item == _STRING:
                    for _ in range(length):
                        file.seek(read("Q")[0], 1)
                elif item in _SCALARS:
                    file.seek(struct.calcsize("<" + _SCALARS[item]) * length, 1)
                else:
                    return None
            else:
                return None
        return scalars


def check_gguf_file(path: str | os.PathLike[str]) -> str:
    """Refuse a GGUF file of an architecture we do not trace, before dequantizing it; return
    what an explanation's metadata says of its weights (``"dequantized from GGUF Q4_1"``)."""
    architecture, quantization = gguf_header(path)
    if architecture not in GGUF_ARCHITECTURES:
        raise UnsupportedArchitectureError(
            f"the GGUF file's architecture is {architecture!r}; GGUF files of these "
            f"architectures load: {', '.join(GGUF_ARCHITECTURES)}"
        )
    return f"dequantized from GGUF {quantization}"


def quantized_parameters(model: Any) -> list[str]:
    """Names of the parameters and buffers that hold quantized (packed, integer or tensor-
    subclass) data: empty for a model whose weights are all ordinary float tensors."""
    found: list[str] = []
    named = getattr(model, "named_parameters", None)
    if named is None:
        return found
    for name, parameter in named():
        plain = type(parameter) in (torch.nn.Parameter, torch.Tensor)
        if not plain or parameter.dtype not in FLOAT_DTYPES:
            found.append(name)
    for name, _buffer in model.named_buffers():
        if name.rsplit(".", 1)[-1] in _PACKED_BUFFER_NAMES:
            found.append(name)
    return found


def drop_dequantized_flag(model: Any) -> None:
    """Take transformers' "quantized with gguf" marks off a model whose GGUF tensors were all
    dequantized to float (checked first): it then saves, copies and casts like any model."""
    left = quantized_parameters(model)
    if left:
        from llmasos_widgets.models._errors import UnsupportedCheckpointError

        raise UnsupportedCheckpointError(
            f"the GGUF file was not fully dequantized ({', '.join(left[:3])} hold quantized "
            "data); llmasos-widgets explains only float weights"
        )
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def require_gguf_package() -> None:
    """transformers reads GGUF with the ``gguf`` package: say how to get it."""
    try:
        import gguf  # noqa: F401
    except ImportError as error:
        raise ImportError("loading a GGUF file needs the gguf package: pip install gguf") from error
