"""Max-activating examples: stream a corpus through the model, keep each latent's top-k
contexts, resumably cached on disk.

Each batch of texts runs the model only up to the SAE's site (the forward stops there), the
SAE encodes the site, and per latent the batch's ``k`` largest activations are merged into the
running top-k (:class:`FeatureExamples`), ties broken by (text, position) so the result does
not depend on how work was resumed. With ``cache_dir`` the state is written after every batch
(atomically), keyed by the model, the SAE's encoder, ``k``/``window``/``batch_size``/
``max_length``; the texts are hashed batch by batch, so a later call over the same texts
skips the batches already done (all of them when the run finished) and a different corpus
starts afresh. The cache is one ``.npz`` per key (the state and the count of batches in it).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from llmasos_widgets._hooks import borrowed_hooks
from llmasos_widgets.features._examples_data import HISTOGRAM_EDGES, FeatureExamples
from llmasos_widgets.features._sae import SparseAutoencoder
from llmasos_widgets.tracing import anatomy, eval_mode

_STATE = "state.npz"


class _Stop(Exception):
    """Raised by the site hook: nothing after the SAE's site is needed."""


def feature_examples(
    model: Any,
    sae: SparseAutoencoder,
    texts: Iterable[str] | Iterable[dict[str, Any]],
    *,
    k: int = 10,
    window: int = 8,
    cache_dir: str | os.PathLike[str] | None = None,
    batch_size: int = 8,
    max_length: int = 128,
    text_column: str = "text",
    tokenizer: Any = None,
    progress: bool = True,
) -> FeatureExamples:
    """Each latent's ``k`` most activating tokens over ``texts`` with ``window`` tokens of
    context on each side, plus a histogram of its activations and how often it fires.

    ``texts`` is any iterable of strings, or of rows (a ``datasets`` dataset) whose
    ``text_column`` is read; each text is cut to ``max_length`` tokens. ``cache_dir`` keeps the
    running state on disk after every batch of ``batch_size`` texts: a second call with the
    same model, SAE and texts reads it, and an interrupted call resumes after its last finished
    batch. ``progress`` shows a ``tqdm`` bar.
    """
    from llmasos_widgets.features._capture import check_sae
    from llmasos_widgets.models import as_explainable

    explainable = as_explainable(model, tokenizer)
    for name, value in (("k", k), ("batch_size", batch_size), ("max_length", max_length)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    if window < 0:
        raise ValueError(f"window must be >= 0, got {window}")
    parts = anatomy(explainable.hf_model)
    check_sae(parts, sae, int(explainable.config.hidden_size))
    settings = {"k": k, "window": window, "batch_size": batch_size, "max_length": max_length}
    state = FeatureExamples.empty(sae, k=k, window=window, model_name=explainable.name)
    cache = None
    if cache_dir is not None:
        key = _fingerprint(explainable, sae, settings)
        cache = _Cache(Path(cache_dir) / key)
    total = len(texts) if hasattr(texts, "__len__") else None  # type: ignore[arg-type]
    bar = _bar(progress, total, f"feature examples: {state.name}")
    chained = hashlib.sha256()
    cached, cached_hash = cache.batches_done() if cache is not None else (0, "")
    # batches the cache may hold already, kept until their hash is checked against it
    pending: list[tuple[int, list[str], str]] = []

    def run(index: int, batch: list[str], digest: str) -> None:
        ids, mask = _tokenize(explainable, batch, max_length)
        codes = _encode_site(explainable.hf_model, parts, sae, ids, mask)
        state.add_batch(codes, ids.cpu(), mask.cpu(), index * batch_size)
        if cache is not None:
            cache.save(state, index + 1, digest)
        if bar is not None:
            bar.update(len(batch))

    try:
        for index, batch in enumerate(_batches(texts, batch_size, text_column)):
            chained.update(json.dumps(batch).encode())
            digest = chained.hexdigest()
            if cache is not None and index < cached:
                pending.append((index, batch, digest))
                if index == cached - 1 and digest == cached_hash:
                    state = cache.load()  # the same texts: every batch so far is done
                    if bar is not None:
                        bar.update(sum(len(b) for _, b, _ in pending))
                    pending = []
                continue
            for earlier in pending:  # the cache was over other texts: from the start
                run(*earlier)
            pending = []
            run(index, batch, digest)
        for earlier in pending:  # fewer texts than the cache held: other texts
            run(*earlier)
    finally:
        if bar is not None:
            bar.close()
    state.set_token_strings(explainable)
    return state


def _batches(texts: Iterable[Any], size: int, column: str) -> Iterator[list[str]]:
    batch: list[str] = []
    for item in texts:
        text = item[column] if isinstance(item, dict) else item
        if not isinstance(text, str):
            raise TypeError(
                f"texts must be strings or rows with a {column!r} string, got {type(text).__name__}"
            )
        batch.append(text)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _tokenize(explainable: Any, batch: list[str], max_length: int) -> tuple[Any, Any]:
    """Right-padded ``[text, token]`` ids and the mask of real tokens."""
    tokenizer = explainable.tokenizer
    rows = [tokenizer(text, truncation=True, max_length=max_length)["input_ids"] for text in batch]
    rows = [row or [tokenizer.bos_token_id or 0] for row in rows]  # an empty text
    width = max(len(row) for row in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return ids.to(explainable.device), mask.to(explainable.device)


def _encode_site(
    hf_model: Any, parts: Any, sae: SparseAutoencoder, ids: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """``[text, token, d_sae]`` SAE codes of the site (padding zeroed), the forward stopped
    right after the site."""
    seen: list[torch.Tensor] = []

    def read(hidden: torch.Tensor) -> None:
        seen.append(hidden.detach())
        raise _Stop

    with torch.no_grad(), eval_mode(hf_model), borrowed_hooks() as hooks:
        parts.read_site(hooks, sae.site, read)
        with contextlib.suppress(_Stop):
            hf_model(input_ids=ids, attention_mask=mask, use_cache=False, logits_to_keep=1)
        codes = sae.encode(seen[0].to(sae.W_enc.device))
    return codes * mask.to(codes.device)[..., None]


class _Cache:
    """The running state of one (model, SAE, settings) in a folder: one file, written
    atomically after each batch with how many batches it holds and the hash of their texts
    (so the count and the state can never disagree, whenever a run is interrupted)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def batches_done(self) -> tuple[int, str]:
        """(batches finished, the chained hash of their texts); (0, "") when none."""
        try:
            with np.load(self.folder / _STATE, allow_pickle=False) as file:
                record = json.loads(str(file["cache"]))
            return int(record["batches"]), str(record["texts_hash"])
        except (OSError, ValueError, KeyError):
            return 0, ""

    def load(self) -> FeatureExamples:
        return FeatureExamples.load(self.folder / _STATE)

    def save(self, state: FeatureExamples, batches: int, digest: str) -> None:
        record = {"batches": batches, "texts_hash": digest}
        state.save(self.folder / _STATE, extra={"cache": record})


def _fingerprint(explainable: Any, sae: SparseAutoencoder, settings: dict[str, Any]) -> str:
    """A cache key: the model (name, config, a sample of every weight), the SAE's encoder and
    config, and the settings that change the result."""
    digest = hashlib.sha256()
    digest.update(explainable.name.encode())
    digest.update(explainable.config.to_json_string().encode())
    with torch.no_grad():
        for name, parameter in explainable.hf_model.named_parameters():
            sample = parameter.detach().reshape(-1)[:64].float().cpu().numpy()
            digest.update(name.encode() + sample.tobytes())
        for tensor in (sae.W_enc, sae.b_enc, sae.b_dec, sae.threshold):
            digest.update(tensor.detach().float().cpu().numpy().tobytes())
    config = {k: v for k, v in vars(sae.config).items() if k != "metadata"}
    digest.update(json.dumps({**config, **settings, "bins": len(HISTOGRAM_EDGES)}).encode())
    return digest.hexdigest()[:24]


def _bar(progress: bool, total: int | None, label: str) -> Any:
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=label, unit="text")
