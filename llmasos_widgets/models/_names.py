"""Names ``load_model`` understands besides paths: bundled models and short names for the
common LLaMA-family checkpoints on the Hugging Face hub."""

from __future__ import annotations

import difflib
from pathlib import Path

from llmasos_widgets.models._errors import ModelNotFoundError

BUNDLED_DIR = Path(__file__).parent
BUNDLED_MODELS = {"tiny-llama": BUNDLED_DIR / "tiny-llama"}

SHORT_NAMES = {
    "llama-7b": "huggyllama/llama-7b",  # the original LLaMA-1 7B, converted to transformers
    "llama-2-7b": "meta-llama/Llama-2-7b-hf",
    "llama-2-7b-chat": "meta-llama/Llama-2-7b-chat-hf",
    "llama-3.1-8b": "meta-llama/Llama-3.1-8B",
    "llama-3.1-8b-instruct": "meta-llama/Llama-3.1-8B-Instruct",
    "mistral-7b": "mistralai/Mistral-7B-v0.1",
    "mistral-7b-instruct": "mistralai/Mistral-7B-Instruct-v0.3",
    "qwen2.5-7b": "Qwen/Qwen2.5-7B",
    "qwen2.5-7b-instruct": "Qwen/Qwen2.5-7B-Instruct",
}
"""Short name -> hub id. Short names match case-insensitively (``Llama-3.1-8B`` works too).
The ``-chat`` / ``-instruct`` names are chat models: explain them with ``messages=[...]``, which
applies their chat template (docs/chat.md)."""


def short_name_hub_id(name: str) -> str | None:
    """The hub id a short name stands for, or ``None`` when ``name`` is not a short name."""
    return SHORT_NAMES.get(name.lower())


def unknown_name_error(name: str) -> ModelNotFoundError:
    """The error for a name that is not bundled, not a short name and not ``org/name``."""
    known = [*BUNDLED_MODELS, *SHORT_NAMES]
    close = difflib.get_close_matches(name.lower(), known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    shorts = ", ".join(f"{short} ({hub_id})" for short, hub_id in SHORT_NAMES.items())
    return ModelNotFoundError(
        f"unknown model name {name!r}{hint} Bundled models: {', '.join(BUNDLED_MODELS)}. "
        f"Short names for hub checkpoints: {shorts}. For another checkpoint pass the path of "
        "its local directory or a hub id such as 'org/name' (downloaded when online)."
    )
