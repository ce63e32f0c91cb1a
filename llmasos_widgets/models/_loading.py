"""``load_model``: one code path for the bundled model, local checkpoints, cached hub ids and
in-memory ``transformers`` models. Defaults are safe: safetensors only, no remote code, offline."""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from llmasos_widgets.models._devices import resolve_device, resolve_dtype

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from llmasos_widgets.explain import Explanation

BUNDLED_DIR = Path(__file__).parent
BUNDLED_MODELS = {"tiny-llama": BUNDLED_DIR / "tiny-llama"}
SETTINGS_FILE = "llmasos.json"


class ModelNotFoundError(ValueError):
    """The name is neither bundled, a local directory, nor a cached hub id."""


class ExplainableModel:
    """A ``transformers`` causal LM with its tokenizer: the object every explanation takes.

    The user's model is wrapped, never copied: ``hf_model`` is the same object that was passed in.
    """

    def __init__(
        self,
        hf_model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        name: str,
        copy_tokens: list[str] | None = None,
    ) -> None:
        from llmasos_widgets.tracing import check_supported

        check_supported(hf_model)
        self.hf_model = hf_model
        self.tokenizer = tokenizer
        self.name = name
        self.copy_tokens = copy_tokens
        """Tokens the random sequence for the induction score is drawn from; ``None`` = every
        non-special token. A checkpoint sets it in ``llmasos.json`` when its training data only
        ever repeated some tokens (the bundled model copies nouns and adjectives)."""

    @property
    def config(self) -> Any:
        return self.hf_model.config

    @property
    def device(self) -> torch.device:
        """Device of the input embeddings (where token ids must go); with a ``device_map``
        the device they compute on, also when their weights are offloaded."""
        from llmasos_widgets._gather import execution_device

        return execution_device(self.hf_model.get_input_embeddings())

    @property
    def max_length(self) -> int:
        """Longest input, in tokens, that the model's positions cover."""
        limit = getattr(self.config, "max_position_embeddings", None) or 2**31
        tokenizer_limit = getattr(self.tokenizer, "model_max_length", None)
        if isinstance(tokenizer_limit, int) and 0 < tokenizer_limit < 10**9:
            limit = min(limit, tokenizer_limit)
        return int(limit)

    def encode(self, text: str, *, truncate: bool = False) -> torch.Tensor:
        """Token ids ``[1, token]`` on the model's device, after checking ``text``.

        Text longer than :attr:`max_length` tokens is an error unless ``truncate=True``, which
        keeps the first ``max_length`` tokens.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if not text.strip():
            raise ValueError("text is empty; pass at least one word to explain")
        ids = self.tokenizer(text, return_tensors="pt")["input_ids"]
        if ids.shape[1] > self.max_length:
            if not truncate:
                raise ValueError(
                    f"text is {ids.shape[1]} tokens long but {self.name} takes at most "
                    f"{self.max_length}; shorten it or pass truncate=True to keep the first "
                    f"{self.max_length} tokens"
                )
            ids = ids[:, : self.max_length]
        return ids.to(self.device)

    def tokens(self, ids: torch.Tensor) -> list[str]:
        """Token strings exactly as the tokenizer split them (no detokenization).

        Ids past the tokenizer's vocabulary (models often pad their embedding matrix) are
        shown as ``<id N>``.
        """
        flat = ids.reshape(-1).tolist()
        strings = self.tokenizer.convert_ids_to_tokens(flat)
        return [s if s is not None else f"<id {i}>" for i, s in zip(flat, strings, strict=True)]

    def explain(self, text: str, **kwargs: Any) -> Explanation:
        """Attention, head summaries, predictions, logit lens and saliency for ``text``.

        See :func:`llmasos_widgets.explain.explain` for the options.
        """
        from llmasos_widgets.explain import explain

        return explain(self, text, **kwargs)

    def __repr__(self) -> str:
        config = self.config
        return (
            f"ExplainableModel({self.name!r}, type={config.model_type}, "
            f"layers={config.num_hidden_layers}, heads={config.num_attention_heads}, "
            f"device={self.device}, dtype={self.hf_model.dtype})"
        )


def as_explainable(
    model: Any, tokenizer: PreTrainedTokenizerBase | None = None
) -> ExplainableModel:
    """Wrap an in-memory ``transformers`` model (or pass an ``ExplainableModel`` through)."""
    if isinstance(model, ExplainableModel):
        return model
    from transformers import PreTrainedModel

    if not isinstance(model, PreTrainedModel):
        raise TypeError(
            f"expected a model name, a path, an ExplainableModel or a transformers "
            f"PreTrainedModel, got {type(model).__name__}"
        )
    if tokenizer is None:
        raise TypeError(
            "a transformers model needs its tokenizer: "
            "pass tokenizer=AutoTokenizer.from_pretrained(...)"
        )
    name = getattr(model.config, "_name_or_path", "") or type(model).__name__
    return ExplainableModel(model, tokenizer, name=str(name))


def load_model(
    name_or_path_or_model: str | os.PathLike[str] | Any,
    *,
    tokenizer: PreTrainedTokenizerBase | None = None,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype = "auto",
    **kwargs: Any,
) -> ExplainableModel:
    """Load a LLaMA-family causal LM for explanation.

    ``name_or_path_or_model`` is a bundled model's name (``"tiny-llama"``), a local Hugging Face
    directory, a hub id already in the local cache, or an in-memory ``transformers`` model (then
    pass ``tokenizer=``). ``device="auto"`` picks CUDA when present, else CPU; ``dtype="auto"``
    picks float32 on CPU and bfloat16 on a GPU. An in-memory model is moved or cast only when
    ``device``/``dtype`` are given explicitly. Extra ``kwargs`` go to ``from_pretrained``.
    """
    if not isinstance(name_or_path_or_model, (str, os.PathLike)):
        explainable = as_explainable(name_or_path_or_model, tokenizer)
        if device != "auto":
            _move(explainable.hf_model, resolve_device(device))
        if dtype != "auto":
            _move(explainable.hf_model, resolve_dtype(dtype, explainable.device))
        return explainable

    source = _resolve_source(str(name_or_path_or_model))
    target_device = resolve_device(device)
    target_dtype = resolve_dtype(dtype, target_device)
    _check_config(source, kwargs)

    from transformers import AutoModelForCausalLM, AutoTokenizer

    options: dict[str, Any] = {
        "use_safetensors": True,
        "trust_remote_code": False,
        "local_files_only": True,
        "dtype": target_dtype,
    }
    options.update(kwargs)
    bundled = str(name_or_path_or_model) in BUNDLED_MODELS
    with _quiet_weight_loading() if bundled else nullcontext():
        hf_model = AutoModelForCausalLM.from_pretrained(source, **options)
    if "device_map" not in kwargs:
        _move(hf_model, target_device)
    hf_model.eval()
    if tokenizer is None:
        tokenizer = AutoTokenizer.from_pretrained(
            source, local_files_only=options["local_files_only"], trust_remote_code=False
        )
    return ExplainableModel(
        hf_model,
        tokenizer,
        name=str(name_or_path_or_model),
        copy_tokens=_checkpoint_settings(source).get("copy_tokens"),
    )


def _checkpoint_settings(source: str) -> dict[str, Any]:
    """Optional ``llmasos.json`` beside a checkpoint: explanation settings that belong to it."""
    path = Path(source) / SETTINGS_FILE
    if not path.is_file():
        return {}
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{str(path)!r} is not valid JSON: {error}") from error
    if not isinstance(settings, dict):
        raise ValueError(f"{str(path)!r} must hold a JSON object")
    return settings


@contextmanager
def _quiet_weight_loading() -> Iterator[None]:
    """No "Loading weights" bar for the bundled model, which loads in a blink; the user's own
    progress-bar setting is put back afterwards."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _move(model: Any, where: torch.device | torch.dtype) -> None:
    """``model.to(where)`` in place (typed loosely: transformers wraps ``to``)."""
    model.to(where)


def _resolve_source(name: str) -> str:
    """A directory or cached hub id to load from, or a clear error saying what to pass."""
    if name in BUNDLED_MODELS:
        return str(BUNDLED_MODELS[name])
    expanded = os.path.expanduser(name)
    if os.path.isdir(expanded):
        return expanded
    # hub ids are "org/name"; anything else with a separator is meant as a path
    looks_like_path = name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name
    if looks_like_path or os.path.exists(expanded):
        raise ModelNotFoundError(
            f"{name!r} is not a directory with a Hugging Face checkpoint "
            "(config.json, model.safetensors, tokenizer files)"
        )
    if "/" not in name:
        close = difflib.get_close_matches(name, BUNDLED_MODELS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ModelNotFoundError(
            f"unknown model name {name!r}{hint} Bundled models: {', '.join(BUNDLED_MODELS)}. "
            "For another checkpoint pass the path of its local directory, or a hub id "
            "such as 'org/name' that is in the local Hugging Face cache."
        )
    return name  # a hub id: resolved from the local cache by from_pretrained


def _check_config(source: str, kwargs: dict[str, Any]) -> None:
    """Refuse unsupported architectures (and uncached hub ids) before loading any weights."""
    from transformers import AutoConfig

    from llmasos_widgets.tracing import SUPPORTED_ARCHITECTURES, UnsupportedArchitectureError

    local_only = kwargs.get("local_files_only", True)
    try:
        config = AutoConfig.from_pretrained(
            source, local_files_only=local_only, trust_remote_code=False
        )
    except (OSError, ValueError) as error:
        if os.path.isdir(source):
            raise ModelNotFoundError(f"{source!r} has no readable config.json: {error}") from error
        raise ModelNotFoundError(
            f"hub id {source!r} is not in the local Hugging Face cache and this session is "
            f"offline. On a machine with internet run `hf download {source}` (or "
            f"`huggingface-cli download {source}`), then copy the cache or the downloaded "
            "directory here and pass its path; or pass local_files_only=False when online."
        ) from error
    if config.model_type not in SUPPORTED_ARCHITECTURES:
        raise UnsupportedArchitectureError(
            f"model type {config.model_type!r} is not supported; supported types: "
            f"{', '.join(sorted(SUPPORTED_ARCHITECTURES))}"
        )
