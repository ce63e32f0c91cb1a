"""Which architectures tracing understands, and the error for the rest: the one check that
``load_model`` (on a checkpoint's config, before loading weights), ``ExplainableModel`` and
``trace`` share."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

# model_type -> why tracing is exact for it (each is covered by tests/integration/test_tracing.py)
SUPPORTED_ARCHITECTURES: Mapping[str, str] = MappingProxyType(
    {
        "llama": "LLaMA 1-3, incl. grouped-query attention",
        "mistral": "Mistral, incl. its sliding window",
        "qwen2": "Qwen2, incl. per-layer sliding windows",
        "gemma2": "Gemma 2, soft-capped logits (needs the eager or flex_attention backend)",
    }
)

# Gemma 2 soft-caps attention logits, which sdpa and most flash kernels cannot do
_SOFTCAP_BACKENDS = ("eager", "flex_attention")


class UnsupportedArchitectureError(ValueError):
    """The model is not one whose attention tracing reconstructs exactly."""


def check_model_type(model_type: str) -> None:
    """Raise :class:`UnsupportedArchitectureError` unless ``model_type`` (a config's
    ``model_type``) is one of :data:`SUPPORTED_ARCHITECTURES`."""
    if model_type not in SUPPORTED_ARCHITECTURES:
        supported = ", ".join(sorted(SUPPORTED_ARCHITECTURES))
        raise UnsupportedArchitectureError(
            f"model_type {model_type!r} is not supported; supported model types: {supported}"
        )


def check_supported(model: Any) -> None:
    """Raise unless ``model`` is a transformers model of a supported architecture.

    Raises:
        TypeError: ``model`` is not a transformers ``PreTrainedModel`` (has no ``config``).
        UnsupportedArchitectureError: its ``config.model_type`` is not supported, or its
            attention backend cannot compute what the architecture needs.
    """
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    if not isinstance(model_type, str):
        raise TypeError(
            f"expected a transformers PreTrainedModel, got {type(model).__name__}; "
            "pass the Hugging Face model (e.g. ExplainableModel.hf_model)"
        )
    check_model_type(model_type)
    backend = getattr(config, "_attn_implementation", None)
    if model_type == "gemma2" and backend not in _SOFTCAP_BACKENDS:
        raise UnsupportedArchitectureError(
            f"Gemma 2 soft-caps attention logits, which the {backend!r} backend does not; "
            "load it with attn_implementation='eager' (or call model.set_attn_implementation("
            "'eager'))"
        )
