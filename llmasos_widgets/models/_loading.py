"""``load_model``: one code path for the bundled model, short names, local checkpoints, hub ids
and in-memory ``transformers`` models. Hub ids download like ``transformers`` unless offline.
Defaults are safe and not overridable through ``**kwargs``: safetensors only, no remote code."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from llmasos_widgets.models._analyses import analysis
from llmasos_widgets.models._devices import resolve_device, resolve_dtype
from llmasos_widgets.models._errors import ModelNotFoundError
from llmasos_widgets.models._gguf import (
    check_gguf_file,
    drop_dequantized_flag,
    is_gguf_path,
    require_gguf_package,
    split_gguf_path,
)
from llmasos_widgets.models._hub import (
    hub_errors,
    hub_offline,
    no_safetensors_conversion,
    offline_message,
)
from llmasos_widgets.models._names import BUNDLED_MODELS, short_name_hub_id, unknown_name_error
from llmasos_widgets.models._options import (
    check_not_quantized,
    from_pretrained_options,
    hub_options,
    no_safetensors_error,
)
from llmasos_widgets.models._support import check_model_type, check_supported

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from llmasos_widgets.explanation import Explanation

SETTINGS_FILE = "llmasos.json"


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
        weights_note: str | None = None,
    ) -> None:
        check_supported(hf_model)
        check_not_quantized(hf_model)
        self.hf_model = hf_model
        self.tokenizer = tokenizer
        self.name = name
        self.copy_tokens = copy_tokens
        """Tokens the random sequence for the induction score is drawn from; ``None`` = every
        non-special token. A checkpoint sets it in ``llmasos.json`` when its training data only
        ever repeated some tokens (the bundled model copies nouns and adjectives)."""
        self.weights_note = weights_note
        """Where the weights came from when that changes what they are (``"dequantized from
        GGUF Q4_1"``); explanations carry it in their metadata as ``"weights"``."""

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

    def explain(
        self,
        text: str | None = None,
        *,
        messages: list[dict[str, str]] | None = None,
        **kwargs: Any,
    ) -> Explanation:
        """Attention, head summaries, predictions, logit lens and saliency for ``text``, or
        for a conversation ``messages=[{"role": ..., "content": ...}, ...]`` of a chat model.

        See :func:`llmasos_widgets.explanation.explain` for the options.
        """
        return analysis("explain")(self, text, messages=messages, **kwargs)

    def generate(
        self,
        prompt: str | None = None,
        max_new_tokens: int = 20,
        *,
        messages: list[dict[str, str]] | None = None,
        saliency_method: str | None = "gradient",
        top_k: int = 5,
        **generate_kwargs: Any,
    ) -> Explanation:
        """Generate after ``prompt`` (greedy unless ``do_sample=True``) and explain prompt +
        completion; ``messages=[...]`` instead of ``prompt``: a chat model writes the assistant
        turn. See :func:`llmasos_widgets.explanation.generate` for the options."""
        return analysis("generate")(
            self,
            prompt,
            max_new_tokens,
            messages=messages,
            saliency_method=saliency_method,
            top_k=top_k,
            **generate_kwargs,
        )

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

    ``name_or_path_or_model`` is a bundled model's name (``"tiny-llama"``), a short name
    (``"llama-3.1-8b"``, see ``SHORT_NAMES``), a local Hugging Face directory, a GGUF file
    (``"path/model.gguf"``, or a directory or hub id with ``gguf_file=``: dequantized to float
    by transformers, which needs the ``gguf`` package), a hub id
    (``"org/name"``: downloaded into the Hugging Face cache unless ``HF_HUB_OFFLINE=1`` or
    ``local_files_only=True``), or an in-memory ``transformers`` model (then pass
    ``tokenizer=``). ``device="auto"`` picks CUDA when present, else CPU; ``dtype="auto"`` picks
    float32 on CPU and bfloat16 on a GPU. An in-memory model is moved or cast only when
    ``device``/``dtype`` are given explicitly. Extra ``kwargs`` go to ``from_pretrained``
    (``device_map="auto"`` places the layers instead of ``device``); ``trust_remote_code=True``,
    ``use_safetensors=False`` and quantization options are refused (docs/loading.md says why).
    """
    if not isinstance(name_or_path_or_model, (str, os.PathLike)):
        if kwargs:
            raise TypeError(
                f"options for from_pretrained ({', '.join(sorted(kwargs))}) do not apply to an "
                "in-memory model; pass a name or a path to load with them"
            )
        explainable = as_explainable(name_or_path_or_model, tokenizer)
        if device != "auto":
            _move(explainable.hf_model, resolve_device(device))
        if dtype != "auto":
            _move(explainable.hf_model, resolve_dtype(dtype, explainable.device))
        return explainable

    name = os.fspath(name_or_path_or_model)
    if is_gguf_path(name) and "gguf_file" not in kwargs:
        if not os.path.isfile(os.path.expanduser(name)):
            raise ModelNotFoundError(f"{name!r} is not a GGUF file")
        directory, kwargs["gguf_file"] = split_gguf_path(name)
        source, is_hub_id = directory, False
    else:
        source, is_hub_id = _resolve_source(name)
    if "device_map" in kwargs and device != "auto":
        raise ValueError(
            f"pass device={device!r} or device_map={kwargs['device_map']!r}, not both: "
            "device_map places each layer itself"
        )
    target_device = resolve_device(device)
    if "device_map" in kwargs:
        target_device = _device_map_device(kwargs["device_map"])
    target_dtype = resolve_dtype(dtype, target_device)
    offline = hub_offline() or bool(kwargs.get("local_files_only", False))
    options = from_pretrained_options(
        kwargs, dtype=target_dtype, local_files_only=offline if is_hub_id else True
    )
    located = hub_options(options)

    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_file = options.get("gguf_file")
    weights_note = None
    try:
        with hub_errors(source, offline=offline) if is_hub_id else nullcontext():
            if gguf_file:  # the header names the architecture: no second parse of the file
                weights_note = _check_gguf(source, located)
            else:
                _check_config(source, located)
            quiet = _quiet_weight_loading() if name in BUNDLED_MODELS else nullcontext()
            with quiet, no_safetensors_conversion():
                hf_model = AutoModelForCausalLM.from_pretrained(source, **options)
            if tokenizer is None:
                tokenizer = AutoTokenizer.from_pretrained(source, **located)
    except OSError as error:  # what the hub errors left: a checkpoint without safetensors?
        if is_hub_id and offline:  # only part of the repo is cached (an interrupted download)
            raise ModelNotFoundError(offline_message(source)) from error
        refusal = no_safetensors_error(name, error)
        if refusal is None:
            raise
        raise refusal from error
    if gguf_file:
        drop_dequantized_flag(hf_model)
    if "device_map" not in kwargs:
        _move(hf_model, target_device)
    hf_model.eval()
    settings = _checkpoint_settings(source) if not is_hub_id else {}
    return ExplainableModel(
        hf_model,
        tokenizer,
        name=name,
        copy_tokens=settings.get("copy_tokens"),
        weights_note=weights_note,
    )


def _check_gguf(source: str, located: dict[str, Any]) -> str:
    """Check a GGUF file's architecture before it is dequantized (a hub id downloads it
    first); return its weights note."""
    require_gguf_package()
    gguf_file = located["gguf_file"]
    if os.path.isdir(source):
        path = os.path.join(source, gguf_file)
        if not os.path.isfile(path):
            raise ModelNotFoundError(f"{source!r} has no GGUF file {gguf_file!r}")
    else:
        from transformers.utils import cached_file

        options = {k: v for k, v in located.items() if k not in ("gguf_file", "trust_remote_code")}
        cached = cached_file(source, gguf_file, **options)
        if cached is None:
            raise ModelNotFoundError(f"{source!r} has no GGUF file {gguf_file!r}")
        path = cached
    return check_gguf_file(path)


def _device_map_device(device_map: Any) -> torch.device:
    """The device whose dtype ``dtype="auto"`` follows under ``device_map``: the named device
    for a single-device map, else CUDA when present (accelerate fills GPUs first)."""
    placements = ("auto", "balanced", "balanced_low_0", "sequential")
    if isinstance(device_map, (str, torch.device)) and str(device_map) not in placements:
        return resolve_device(device_map)
    return resolve_device("auto")


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


def _resolve_source(name: str) -> tuple[str, bool]:
    """``(source, is_hub_id)``: a directory or a hub id to load from, or a clear error saying
    what to pass. A local directory wins over a short name of the same spelling."""
    if name in BUNDLED_MODELS:
        return str(BUNDLED_MODELS[name]), False
    expanded = os.path.expanduser(name)
    if os.path.isdir(expanded):
        return expanded, False
    hub_id = short_name_hub_id(name)
    if hub_id is not None:
        return hub_id, True
    # hub ids are "org/name"; anything else with a separator is meant as a path
    looks_like_path = name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name
    if looks_like_path or os.path.exists(expanded):
        raise ModelNotFoundError(
            f"{name!r} is not a directory with a Hugging Face checkpoint "
            "(config.json, model.safetensors, tokenizer files)"
        )
    if "/" not in name:
        raise unknown_name_error(name)
    return name, True


def _check_config(source: str, located: dict[str, Any]) -> None:
    """Refuse unsupported architectures and quantized checkpoints before loading any weights
    (for a hub id this downloads config.json only). Not for GGUF files: ``_check_gguf`` reads
    the architecture from the header, and transformers' config of a GGUF file parses all its
    metadata, vocabulary included, which ``from_pretrained`` does again (one parse: 9 s of a
    52 s load of SmolLM2 on 2 busy cores)."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(source, **located)
    except (OSError, ValueError) as error:
        if os.path.isdir(source):
            raise ModelNotFoundError(f"{source!r} has no readable config.json: {error}") from error
        raise
    check_model_type(config.model_type)
    check_not_quantized(config)
