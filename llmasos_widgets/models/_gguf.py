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
    llama.cpp's name from ``general.file_type`` (or, without one, the most common tensor type)."""
    from collections import Counter

    import gguf

    reader = gguf.GGUFReader(os.fspath(path))
    field = reader.fields.get("general.architecture")
    architecture = bytes(field.parts[field.data[0]]).decode() if field is not None else "unknown"
    field = reader.fields.get("general.file_type")
    if field is not None:
        value = int(field.parts[field.data[0]][0])
        try:
            name = gguf.LlamaFileType(value).name
            return architecture, name.removeprefix("MOSTLY_").removeprefix("ALL_")
        except ValueError:
            pass
    counts = Counter(tensor.tensor_type.name for tensor in reader.tensors)
    return architecture, counts.most_common(1)[0][0] if counts else "unknown"


def check_gguf_file(path: str | os.PathLike[str]) -> str:
    """Refuse a GGUF file of an architecture we do not trace, before dequantizing it; return
    what an explanation's metadata says of its weights (``"dequantized from GGUF Q4_1"``)."""
    from llmasos_widgets.tracing import UnsupportedArchitectureError

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
