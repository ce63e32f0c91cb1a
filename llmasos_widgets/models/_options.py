"""What ``load_model`` passes to ``from_pretrained``, and what it refuses.

Two defaults are not negotiable through ``**kwargs``: weights load from safetensors only (a
pickled ``.bin`` can run arbitrary code when unpickled) and no code from the checkpoint's
repository runs (``trust_remote_code``). Quantized weights are refused too: see
``docs/loading.md`` for what was tried."""

from __future__ import annotations

from typing import Any

import torch

from llmasos_widgets.models._errors import UnsupportedCheckpointError

HUB_OPTIONS = (
    "revision",
    "token",
    "cache_dir",
    "force_download",
    "proxies",
    "subfolder",
    "gguf_file",
)
"""Options that locate the files: passed to the config and tokenizer loads as well."""

QUANTIZATION_OPTIONS = ("quantization_config", "load_in_4bit", "load_in_8bit")

CONVERT_TO_SAFETENSORS = (
    "Convert the checkpoint once, in an environment where you trust the file: "
    "AutoModelForCausalLM.from_pretrained(path, use_safetensors=False)"
    ".save_pretrained(out_dir) writes model.safetensors (copy the tokenizer files too, or "
    "tokenizer.save_pretrained(out_dir)); then load_model(out_dir)."
)

SUPPORTED_WEIGHTS = (
    "supported: unquantized weights in bfloat16, float16 or float32 (an 8B model in bfloat16 "
    "takes 16 GB and runs on one 24 GB GPU; use device_map='auto' to spread a larger one over "
    "several GPUs)"
)


def from_pretrained_options(
    kwargs: dict[str, Any], *, dtype: torch.dtype, local_files_only: bool
) -> dict[str, Any]:
    """``from_pretrained`` keyword arguments: the safe defaults plus the user's ``kwargs``,
    after refusing any that would turn a default off. With ``gguf_file`` the weights come from
    that file (GGUF holds tensors, not pickles), so no safetensors are asked for."""
    if "torch_dtype" in kwargs:
        raise TypeError(f"pass dtype={kwargs['torch_dtype']!r} to load_model, not torch_dtype=")
    _refuse_unsafe(kwargs)
    _refuse_quantization_options(kwargs)
    options = dict(kwargs)
    options.update(
        use_safetensors=True,
        trust_remote_code=False,
        local_files_only=local_files_only,
        dtype=dtype,
    )
    if options.get("gguf_file"):
        del options["use_safetensors"]
    return options


def hub_options(options: dict[str, Any]) -> dict[str, Any]:
    """The file-locating subset of ``options``, for ``AutoConfig`` and ``AutoTokenizer``."""
    located = {key: options[key] for key in HUB_OPTIONS if key in options}
    located.update(local_files_only=options["local_files_only"], trust_remote_code=False)
    return located


def check_not_quantized(model_or_config: Any) -> None:
    """Refuse a quantized in-memory model or a checkpoint config that declares quantization.

    A model is judged by what its parameters are (packed integers, float8 or tensor subclasses
    run quantized kernels), not by transformers' flag: a GGUF file dequantized to float32 is
    flagged "quantized with gguf" yet holds plain float tensors. A config, before any weight is
    loaded, can only be judged by what it declares.
    """
    from llmasos_widgets.models._gguf import quantized_parameters

    config = getattr(model_or_config, "config", model_or_config)
    method = _quantization_method(config)
    if hasattr(model_or_config, "named_parameters"):
        if not quantized_parameters(model_or_config):
            return
    elif method is None:
        return
    what = f"quantized with {method}" if method else "quantized"
    raise UnsupportedCheckpointError(
        f"this model is {what}; llmasos-widgets does not explain quantized models (gradients "
        f"through quantized kernels are not verified, so saliency could be silently wrong). "
        f"Load the unquantized checkpoint instead; {SUPPORTED_WEIGHTS}."
    )


def no_safetensors_error(source: str, error: OSError) -> UnsupportedCheckpointError | None:
    """The error for a checkpoint without safetensors weights, recognised from transformers'
    message (``None`` when ``error`` is about something else)."""
    if "safetensors" not in str(error):
        return None
    return UnsupportedCheckpointError(
        f"{source!r} has no safetensors weights (model.safetensors or an index of "
        "model-*.safetensors shards), and load_model does not open pickled pytorch_model.bin "
        f"files, which can run arbitrary code when loaded. {CONVERT_TO_SAFETENSORS}"
    )


def _quantization_method(config: Any) -> str | None:
    quantization = getattr(config, "quantization_config", None)
    if quantization is None:
        return None
    if isinstance(quantization, dict):
        method = quantization.get("quant_method")
    else:
        method = getattr(quantization, "quant_method", None)
    return str(getattr(method, "value", method) or "an unknown method")


def _refuse_unsafe(kwargs: dict[str, Any]) -> None:
    if kwargs.get("trust_remote_code", False) is not False:
        raise ValueError(
            "load_model does not run code from a checkpoint's repository "
            f"(trust_remote_code={kwargs['trust_remote_code']!r} was passed): that code runs "
            "with your permissions, and its attention cannot be traced exactly. Supported "
            "architectures load without it. If you have read the code and trust it, load the "
            "model yourself with transformers and pass it in: "
            "load_model(hf_model, tokenizer=tokenizer)."
        )
    if kwargs.get("use_safetensors", True) is not True:
        raise ValueError(
            "load_model reads weights only from safetensors files "
            f"(use_safetensors={kwargs['use_safetensors']!r} was passed): a pickled "
            f"pytorch_model.bin can run arbitrary code when it is opened. {CONVERT_TO_SAFETENSORS}"
        )


def _refuse_quantization_options(kwargs: dict[str, Any]) -> None:
    given = [key for key in QUANTIZATION_OPTIONS if kwargs.get(key) not in (None, False)]
    if given:
        raise UnsupportedCheckpointError(
            f"load_model does not load quantized weights ({', '.join(given)} was passed): "
            f"gradients through quantized kernels are not verified, so saliency could be "
            f"silently wrong; {SUPPORTED_WEIGHTS}."
        )
