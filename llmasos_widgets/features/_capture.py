"""Reading SAE latents from a forward someone else runs (``explain``), through the capture
layer: the hook keeps each SAE's site rows (``[token, d_in]``), and the record encodes them on
first read, once, keeping only the sparse latents and one error norm per token (never
``[token, d_sae]`` beyond one site at a time)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from llmasos_widgets._gather import execution_device
from llmasos_widgets._hooks import HookSet
from llmasos_widgets.features._activations import FeatureActivations, LatentCodes, LogitEffects
from llmasos_widgets.features._sae import SparseAutoencoder
from llmasos_widgets.tracing import Anatomy, site_label

MAX_LATENTS_PER_TOKEN = 256
"""Latents kept per token (the most active ones): every active latent of a TopK SAE with
``k`` up to this; a ReLU SAE that fires on thousands keeps its strongest 256."""
EFFECT_TOKENS = 10
"""Promoted and suppressed tokens kept per latent."""
_EFFECT_CHUNK_BYTES = 64 * 2**20


def named_saes(
    saes: Sequence[SparseAutoencoder] | Mapping[str, SparseAutoencoder],
) -> list[tuple[str, SparseAutoencoder]]:
    """``(name, sae)`` pairs: a mapping's keys, else each SAE's ``hook_name`` or
    ``sae@<site label>``, made unique with ``#2``, ``#3``."""
    pairs = list(saes.items()) if isinstance(saes, Mapping) else [("", s) for s in saes]
    named: list[tuple[str, SparseAutoencoder]] = []
    seen: set[str] = set()
    for name, sae in pairs:
        if not isinstance(sae, SparseAutoencoder):
            raise TypeError(
                f"saes= takes SparseAutoencoder objects, got {type(sae).__name__}; build one "
                "with SparseAutoencoder(SAEConfig(...)) or load it"
            )
        base = name or sae.config.hook_name or f"sae@{site_label(sae.site)}"
        unique, count = base, 1
        while unique in seen:
            count += 1
            unique = f"{base}#{count}"
        seen.add(unique)
        named.append((unique, sae))
    return named


def check_sae(parts: Anatomy, sae: SparseAutoencoder, hidden_size: int) -> None:
    """A clear error when ``sae`` cannot read this model."""
    try:
        parts.check_site(sae.site)
    except ValueError as error:
        raise ValueError(
            f"this SAE reads site {sae.site}, which the model lacks: {error}"
        ) from None
    if sae.config.d_in != hidden_size:
        raise ValueError(
            f"this SAE reads vectors of {sae.config.d_in} numbers (d_in), but the model's "
            f"residual stream has {hidden_size}: it was trained on another model (its "
            f"model_name is {sae.config.model_name or 'not recorded'!r})"
        )


def encode_rows(
    sae: SparseAutoencoder, rows: torch.Tensor, max_latents: int
) -> dict[str, np.ndarray]:
    """``rows`` ``[token, d_in]`` -> the CSR arrays of :class:`FeatureActivations` (the
    ``max_latents`` most active latents per token, largest first) and each token's error norm,
    on the CPU."""
    x = rows.detach().to(sae.W_enc.device)
    with torch.no_grad():
        if sae.config.activation == "topk" and max_latents == sae.config.k:
            # encode's own top-k, taken once; its k latents are every active one, so the
            # reconstruction is their weighted sum of decoder rows
            values, latents = sae.pre_activations(x).topk(max_latents, dim=-1)
            values = torch.relu(values)
            reconstruction = _sparse_decode(sae, values, latents)
        else:
            codes = sae.encode(x)
            values, latents = codes.topk(max_latents, dim=-1)  # largest first
            reconstruction = _decode_kept(sae, codes, values, latents)
        error = (x.to(values.dtype) - reconstruction).norm(dim=-1)
    active = values > 0
    kept = latents[active].cpu().numpy().astype(np.int64)
    return {
        "indptr": np.concatenate([[0], active.sum(-1).cumsum(0).cpu().numpy()]).astype(np.int64),
        "latents": kept,
        "values": values[active].float().cpu().numpy(),
        "error_norm": error.float().cpu().numpy(),
        "effect_latents": np.unique(kept),
    }


def _sae_fingerprint(sae: SparseAutoencoder) -> list[Any]:
    """Changes when a weight, the threshold or the config is replaced or changed in place."""
    tensors = [*sae.parameters(), *sae.buffers()]
    return [id(sae.config), *((t.data_ptr(), t._version) for t in tensors)]


class SiteFeatures:
    """Keeps one SAE's site rows from one forward over one sequence; the record encodes them
    on first read (the SAE's encode is not paid inside ``explain``)."""

    def __init__(
        self,
        name: str,
        sae: SparseAutoencoder,
        max_latents: int,
        keep: Callable[[torch.Tensor], torch.Tensor] = torch.clone,
    ) -> None:
        self.name, self.sae, self.keep = name, sae, keep
        # a TopK SAE has at most k active latents: no need to look further
        k = sae.config.k if sae.config.activation == "topk" else None
        self.max_latents = min(max_latents, sae.d_sae, k or sae.d_sae)
        self.rows: torch.Tensor | None = None

    def read(self, hidden: torch.Tensor) -> None:
        """Keep ``hidden`` ``[1, token, d_in]``'s rows: a copy made by ``keep`` (the forward
        may reuse its buffers; ``explain`` moves it to host memory when it offloads), moved to
        the SAE's device when encoded (copies both: the numbers do not change)."""
        self.rows = self.keep(hidden[0].detach())

    def activations(
        self, parts: Anatomy, token_strings: Callable[[np.ndarray], tuple[str, ...]]
    ) -> FeatureActivations:
        """The record; its latents are encoded (:class:`_CodesReader`) and then its logit
        effects read (:class:`_EffectsReader`) when first asked for."""
        if self.rows is None:
            raise RuntimeError(f"SAE {self.name!r} read nothing: the forward did not finish")
        codes = LatentCodes(
            n_tokens=int(self.rows.shape[0]),
            reader=_CodesReader(self.sae, self.rows, self.max_latents),
        )
        config = self.sae.config
        return FeatureActivations(
            name=self.name,
            site=self.sae.site,
            d_sae=self.sae.d_sae,
            codes=codes,
            effects=LogitEffects(reader=_EffectsReader(parts, self.sae, codes, token_strings)),
            metadata={
                "activation": config.activation,
                "k": config.k,
                "max_latents_per_token": self.max_latents,
                "hook_name": config.hook_name,
                "model_name": config.model_name,
            },
        )


class _CodesReader:
    """Encodes the kept rows later, and refuses when the SAE changed since the forward
    (trained in place, a weight or its config replaced): the codes would then not be those of
    the dictionary ``explain`` was given."""

    def __init__(self, sae: SparseAutoencoder, rows: torch.Tensor, max_latents: int) -> None:
        self.sae, self.rows, self.max_latents = sae, rows, max_latents
        self.fingerprint = _sae_fingerprint(sae)

    def __call__(self) -> dict[str, np.ndarray]:
        if _sae_fingerprint(self.sae) != self.fingerprint:
            raise RuntimeError(
                "the SAE changed since explain() ran (a weight, its threshold or its config), "
                "so its latents can no longer be read; explain the text again (or read them, "
                "e.g. save the explanation, before changing it)"
            )
        return encode_rows(self.sae, self.rows, self.max_latents)


class _EffectsReader:
    """Reads the logit effects later, and refuses when the SAE's decoder or the model's head
    changed since the forward (trained or fine-tuned in place): they would then not be the
    effects of the dictionary that produced the activations."""

    def __init__(
        self,
        parts: Anatomy,
        sae: SparseAutoencoder,
        codes: LatentCodes,
        token_strings: Callable[[np.ndarray], tuple[str, ...]],
    ) -> None:
        self.parts, self.sae, self.codes, self.token_strings = parts, sae, codes, token_strings
        self.fingerprint = self._fingerprint()

    def _fingerprint(self) -> list[tuple[int, int]]:
        modules = [m for m in (self.parts.final_norm, self.parts.unembedding) if m is not None]
        tensors = [self.sae.W_dec, *(p for m in modules for p in m.parameters())]
        return [(t.data_ptr(), t._version) for t in tensors]

    def __call__(self) -> tuple[dict[str, np.ndarray], dict[int, str]]:
        if self._fingerprint() != self.fingerprint:
            raise RuntimeError(
                "the SAE's decoder or the model's final norm/unembedding changed since "
                "explain() ran, so the logit effects can no longer be read; explain the text "
                "again (or read them, e.g. save the explanation, before changing either)"
            )
        latents = self.codes.read()["effect_latents"]  # encodes first if nothing has
        up, up_logits, down, down_logits = logit_effects(self.parts, self.sae, latents)
        ids = np.unique(np.concatenate([up.reshape(-1), down.reshape(-1)]))
        strings = self.token_strings(ids) if len(ids) else ()
        arrays = {
            "promoted_ids": up,
            "promoted_logits": up_logits,
            "suppressed_ids": down,
            "suppressed_logits": down_logits,
        }
        return arrays, {int(i): s for i, s in zip(ids, strings, strict=True)}


def _decode_kept(
    sae: SparseAutoencoder, codes: torch.Tensor, values: torch.Tensor, latents: torch.Tensor
) -> torch.Tensor:
    """``sae.decode(codes)``, from the kept latents alone when they are every active one
    (a weighted sum of ``k`` decoder rows per token instead of a ``[token, d_sae]`` matmul:
    the dense decode costs as much as the encode), else densely."""
    dense = 8 * latents.shape[-1] >= sae.d_sae  # a small dictionary: the matmul is cheap
    if dense or bool((codes < 0).any()) or int((codes != 0).sum(-1).max()) > latents.shape[-1]:
        return sae.decode(codes)
    return _sparse_decode(sae, values, latents)


def _sparse_decode(
    sae: SparseAutoencoder, values: torch.Tensor, latents: torch.Tensor
) -> torch.Tensor:
    """``sae.decode`` of the codes that are ``values`` at ``latents`` (``[token, n]``) and 0
    elsewhere."""
    summed = torch.nn.functional.embedding_bag(
        latents, sae.W_dec, per_sample_weights=values.to(sae.W_dec.dtype), mode="sum"
    )
    decoded: torch.Tensor = (summed + sae.b_dec) / sae.config.input_scale
    return decoded


def read_features(
    parts: Anatomy,
    hooks: HookSet,
    saes: Sequence[SparseAutoencoder] | Mapping[str, SparseAutoencoder],
    hidden_size: int,
    *,
    max_latents: int = MAX_LATENTS_PER_TOKEN,
    keep: Callable[[torch.Tensor], torch.Tensor] = torch.clone,
) -> list[SiteFeatures]:
    """Register one site reader per SAE on ``hooks`` (removed with them); ``keep`` copies
    each site's rows (default: a clone on their device)."""
    readers = []
    for name, sae in named_saes(saes):
        check_sae(parts, sae, hidden_size)
        reader = SiteFeatures(name, sae, max_latents, keep)
        parts.read_site(hooks, sae.site, reader.read)
        readers.append(reader)
    return readers


def logit_effects(
    parts: Anatomy, sae: SparseAutoencoder, latents: np.ndarray, k: int = EFFECT_TOKENS
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The model's head (final norm, unembedding, soft-cap: as the logit lens reads a site)
    on each latent's decoder direction: the ``k`` highest and lowest logits, ids and values
    ``[len(latents), k]`` each. With an RMS norm this ranks tokens as ``W_U (g * d)``, the
    direct effect of adding the direction at the last site."""
    if parts.unembedding is None:
        raise TypeError(f"{type(parts.model).__name__} has no LM head to read effects with")
    device = execution_device(parts.unembedding)
    weight: Any = parts.unembedding.weight
    vocab = int(weight.shape[0])
    k = min(k, vocab)
    chunk = max(1, _EFFECT_CHUNK_BYTES // (4 * vocab))
    out: list[list[torch.Tensor]] = [[], [], [], []]
    with torch.no_grad():
        decoder = sae.W_dec.detach()
        for start in range(0, len(latents), chunk):
            rows = torch.as_tensor(latents[start : start + chunk], device=decoder.device)
            # the rows first: scaling the whole decoder would copy all of it (1 GB at 8B width)
            directions = decoder[rows] / sae.config.input_scale
            logits = parts.head(directions.to(device=device, dtype=weight.dtype)).float()
            high, low = logits.topk(k, dim=-1), logits.topk(k, dim=-1, largest=False)
            for i, part in enumerate((high.indices, high.values, low.indices, low.values)):
                out[i].append(part.cpu())
    if not len(latents):
        empty_ids, empty = np.zeros((0, k), np.int64), np.zeros((0, k), np.float32)
        return empty_ids, empty, empty_ids, empty
    ids_up, up, ids_down, down = (torch.cat(parts_).numpy() for parts_ in out)
    return (
        ids_up.astype(np.int64),
        up.astype(np.float32),
        ids_down.astype(np.int64),
        down.astype(np.float32),
    )
