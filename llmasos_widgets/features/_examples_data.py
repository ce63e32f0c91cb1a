"""``FeatureExamples``: each latent's top-k contexts over a corpus, its activation histogram
and firing count; the running state of ``feature_examples`` and its result.

Arrays are latent-major: ``values[latent, j]`` is the ``j``-th largest activation of the latent
(0 where it fired fewer than ``k`` times), at token ``position[latent, j]`` of text
``text_index[latent, j]`` (-1: none); ``context_ids[latent, j]`` are the ``window`` tokens on
each side (-1 past the text's ends) and ``context_values`` the latent's activation on each.

Ranking ignores the last bits of each activation (:func:`rank_value`): the same token in the
same context gets activations a few float32 ulps apart depending on the batch's shape, and
without this the batch size would decide which of those tied contexts is kept. Activations
that agree to 12 significant bits (about 2.4e-4 relative) rank as equal, and equal ones go to
the earlier text and position. The stored ``values`` are the exact activations.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

HISTOGRAM_EDGES = np.geomspace(1e-3, 1e3, 49).astype(np.float32)
"""Bin edges of the activation histograms (log-spaced: activations span decades); values
below the first edge count in bin 0, above the last in the last bin."""
_NONE = np.iinfo(np.int64).max  # sorts an empty slot after every real text
_DROPPED_BITS = 11  # of float32's 23 mantissa bits: 12 kept
_KEPT_BITS = ~((1 << _DROPPED_BITS) - 1)
_TOPK_ELEMENTS = 1 << 24  # int64 keys per chunk of tied latents: 128 MiB


def rank_value(values: torch.Tensor) -> torch.Tensor:
    """float32 activations with the last ``_DROPPED_BITS`` mantissa bits cut: what the ranking
    compares. Cutting bits keeps the order of non-negative floats (their bits, read as ints,
    grow with them); negative values, never kept, stay below them."""
    bits = values.float().contiguous().view(torch.int32)
    return bits.bitwise_and(_KEPT_BITS).view(torch.float32)


def top_rows(flat: torch.Tensor, k: int) -> torch.Tensor:
    """Row indices ``[k, latent]`` of each column's ``k`` largest entries of ``flat`` ``[row,
    latent]`` by :func:`rank_value`, the earlier row first among equals, whatever the shape.

    One ``topk`` decides every column whose ``k``-th and ``k+1``-th values differ (which
    rows are kept is then unambiguous); only columns tied at that edge are ranked again with
    the row in the key."""
    rows = flat.shape[0]
    ranked = rank_value(flat)
    if k >= rows:
        return ranked.topk(k, dim=0).indices
    values, picked = ranked.topk(k + 1, dim=0)
    picked = picked[:k]
    tied = ((values[k - 1] == values[k]) & (values[k - 1] > 0)).nonzero()[:, 0]
    if len(tied):
        earlier_first = (rows - 1 - torch.arange(rows, device=flat.device))[:, None]
        chunk = max(1, _TOPK_ELEMENTS // rows)
        for start in range(0, len(tied), chunk):
            columns = tied[start : start + chunk]
            bits = ranked[:, columns].view(torch.int32).to(torch.int64)
            picked[:, columns] = ((bits << 32) + earlier_first).topk(k, dim=0).indices
    return picked


class FeatureExamples:
    """Max-activating contexts of one SAE's latents (see the module docstring)."""

    _ARRAYS = (
        "values",
        "text_index",
        "position",
        "context_ids",
        "context_values",
        "histogram",
        "fires",
    )

    def __init__(self, *, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.meta = dict(meta)
        d_sae, k, width = int(meta["d_sae"]), int(meta["k"]), 2 * int(meta["window"]) + 1
        shapes = {
            "values": (d_sae, k),
            "text_index": (d_sae, k),
            "position": (d_sae, k),
            "context_ids": (d_sae, k, width),
            "context_values": (d_sae, k, width),
            "histogram": (d_sae, len(HISTOGRAM_EDGES) - 1),
            "fires": (d_sae,),
        }
        for name, shape in shapes.items():
            if arrays[name].shape != shape:
                raise ValueError(f"{name} must be {shape}; got {tuple(arrays[name].shape)}")
        self.values: np.ndarray = arrays["values"]
        self.text_index: np.ndarray = arrays["text_index"]
        self.position: np.ndarray = arrays["position"]
        self.context_ids: np.ndarray = arrays["context_ids"]
        self.context_values: np.ndarray = arrays["context_values"]
        self.histogram: np.ndarray = arrays["histogram"]
        self.fires: np.ndarray = arrays["fires"]

    @classmethod
    def empty(cls, sae: Any, *, k: int, window: int, model_name: str) -> FeatureExamples:
        d_sae, width, bins = sae.d_sae, 2 * window + 1, len(HISTOGRAM_EDGES) - 1
        from llmasos_widgets.tracing import site_label

        name = sae.config.hook_name or f"sae@{site_label(sae.site)}"
        meta = {
            "name": name,
            "site": sae.site,
            "d_sae": d_sae,
            "k": k,
            "window": window,
            "model_name": model_name,
            "n_texts": 0,
            "n_tokens": 0,
            "token_strings": {},
            "token_style": None,
        }
        arrays = {
            "values": np.zeros((d_sae, k), np.float32),
            "text_index": np.full((d_sae, k), -1, np.int64),
            "position": np.full((d_sae, k), -1, np.int64),
            "context_ids": np.full((d_sae, k, width), -1, np.int64),
            "context_values": np.zeros((d_sae, k, width), np.float32),
            "histogram": np.zeros((d_sae, bins), np.int64),
            "fires": np.zeros(d_sae, np.int64),
        }
        return cls(meta=meta, arrays=arrays)

    # ---- facts -------------------------------------------------------------------------
    name = property(lambda self: str(self.meta["name"]))
    site = property(lambda self: int(self.meta["site"]))
    d_sae = property(lambda self: int(self.meta["d_sae"]))
    k = property(lambda self: int(self.meta["k"]))
    window = property(lambda self: int(self.meta["window"]))
    n_texts = property(lambda self: int(self.meta["n_texts"]), doc="Texts streamed so far.")
    n_tokens = property(lambda self: int(self.meta["n_tokens"]), doc="Tokens streamed so far.")

    def density(self) -> np.ndarray:
        """float64 ``[latent]``: the share of tokens each latent fires on."""
        return self.fires / max(self.n_tokens, 1)

    def examples(self, latent: int) -> list[dict[str, Any]]:
        """Latent ``latent``'s contexts, most active first: ``{"text", "position",
        "activation", "tokens" (strings), "values" (its activation on each), "center"}``."""
        if not 0 <= latent < self.d_sae:
            raise ValueError(f"latent {latent} does not exist: this SAE has {self.d_sae}")
        strings = self.meta["token_strings"]
        out = []
        for j in range(self.k):
            if self.text_index[latent, j] < 0:
                break
            ids = self.context_ids[latent, j]
            real = ids >= 0
            first = int(np.argmax(real))
            out.append(
                {
                    "text": int(self.text_index[latent, j]),
                    "position": int(self.position[latent, j]),
                    "activation": float(self.values[latent, j]),
                    "tokens": [strings.get(str(int(i)), f"<id {int(i)}>") for i in ids[real]],
                    "values": self.context_values[latent, j][real].tolist(),
                    "center": self.window - first,
                }
            )
        return out

    # ---- accumulation (feature_examples) -----------------------------------------------
    def add_batch(
        self, codes: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor, offset: int
    ) -> None:
        """Merge one batch: ``codes`` ``[text, token, d_sae]`` (zero on padding), ``ids`` and
        ``mask`` ``[text, token]``; the batch's texts are ``offset, offset + 1, ...``."""
        n_texts, n_tokens, d_sae = codes.shape
        w = self.window
        flat = codes.reshape(n_texts * n_tokens, d_sae)
        kk = min(self.k, flat.shape[0])
        where = top_rows(flat, kk)  # [kk, latent]
        top = flat.gather(0, where)
        row, col = (where // n_tokens).cpu(), (where % n_tokens).cpu()
        shift = torch.arange(2 * w + 1)
        real = torch.where(mask.bool(), ids, torch.full_like(ids, -1))
        padded_ids = torch.nn.functional.pad(real, (w, w), value=-1)
        padded = torch.nn.functional.pad(codes.cpu().float(), (0, 0, w, w))
        at = col[..., None] + shift  # [kk, latent, width] in padded coordinates
        latent = torch.arange(d_sae)[None, :, None]
        new_ids = padded_ids[row[..., None], at]
        new_values = padded[row[..., None], at, latent]
        top = top.cpu().float()
        fired = top > 0
        self._merge(
            top.T.numpy(),
            torch.where(fired, row + offset, -1).T.numpy(),
            torch.where(fired, col, -1).T.numpy(),
            torch.where(fired[..., None], new_ids, -1).transpose(0, 1).numpy(),
            torch.where(fired[..., None], new_values, 0.0).transpose(0, 1).numpy(),
        )
        positive = flat > 0
        lat = positive.nonzero()[:, 1]
        edges = torch.as_tensor(HISTOGRAM_EDGES, device=flat.device)
        bins = (torch.bucketize(flat[positive].float(), edges) - 1).clamp(0, len(edges) - 2)
        counts = torch.zeros(d_sae * (len(edges) - 1), dtype=torch.int64, device=flat.device)
        counts.index_add_(0, lat * (len(edges) - 1) + bins, torch.ones_like(bins))
        self.histogram += counts.reshape(d_sae, -1).cpu().numpy()
        self.fires += positive.sum(0).cpu().numpy()
        self.meta["n_texts"] = self.n_texts + n_texts
        self.meta["n_tokens"] = self.n_tokens + int(mask.sum())

    def _merge(self, values: Any, text: Any, position: Any, ids: Any, acts: Any) -> None:
        """Keep the k best of the kept and the new per latent: by activation, then the
        earlier text and position (so the result does not depend on the batches' order of
        arrival within a tie)."""
        values = np.concatenate([self.values, values], axis=1)
        text = np.concatenate([self.text_index, text], axis=1)
        position = np.concatenate([self.position, position], axis=1)
        key = rank_value(torch.from_numpy(np.ascontiguousarray(values, np.float32))).numpy()
        order = np.lexsort((position, np.where(text < 0, _NONE, text), -key), axis=-1)
        keep = order[:, : self.k]
        rows = np.arange(self.d_sae)[:, None]
        self.values = values[rows, keep]
        self.text_index = text[rows, keep]
        self.position = position[rows, keep]
        self.context_ids = np.concatenate([self.context_ids, ids], axis=1)[rows, keep]
        self.context_values = np.concatenate([self.context_values, acts], axis=1)[rows, keep]

    def set_token_strings(self, explainable: Any) -> None:
        """The strings of every context token, and how the tokenizer writes them."""
        from llmasos_widgets._readable_tokens import TokenStyle

        ids = np.unique(self.context_ids[self.context_ids >= 0])
        strings = explainable.tokens(torch.from_numpy(ids)) if len(ids) else []
        self.meta["token_strings"] = {str(int(i)): s for i, s in zip(ids, strings, strict=True)}
        self.meta["token_style"] = TokenStyle.of(explainable.tokenizer).to_json()

    # ---- files -------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str], *, extra: dict[str, Any] | None = None) -> Path:
        """One ``.npz`` (no pickles), written beside the target and moved into place;
        ``extra`` JSON entries ride along (``feature_examples``' cache record)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".npz", dir=path.parent)
        os.close(handle)
        try:
            arrays: dict[str, Any] = {n: getattr(self, n) for n in self._ARRAYS}
            for key, value in {"meta": self.meta, **(extra or {})}.items():
                arrays[key] = np.array(json.dumps(value))
            np.savez(name, **arrays)
            os.replace(name, path)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FeatureExamples:
        with np.load(Path(path), allow_pickle=False) as file:
            meta = json.loads(str(file["meta"]))
            return cls(meta=meta, arrays={name: file[name] for name in cls._ARRAYS})

    def __repr__(self) -> str:
        return (
            f"FeatureExamples({self.name!r}, latents={self.d_sae}, k={self.k}, "
            f"texts={self.n_texts}, tokens={self.n_tokens})"
        )
