"""The logit lens and the next-token predictions, read from the residual stream during a forward.

Reading every residual site through the model's head gives ``[layer + 1, token, vocab]``
logits: 33 × 4096 × 128256 floats (69 GB) for Llama-3.1-8B at T = 4096. Nothing of that size
is kept: each decoder layer's output is read as it is produced, a few tokens at a time
(:data:`LENS_CHUNK_BYTES` of float32 logits per chunk), and only the top ids and their
probabilities survive. The residual stream itself is not kept either.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from llmasos_widgets._gather import execution_device
from llmasos_widgets._hooks import borrowed_hooks
from llmasos_widgets.tracing._anatomy import Anatomy, anatomy

LENS_CHUNK_BYTES = 64 * 2**20
"""float32 logits computed at once: 130 tokens of a 128k vocabulary."""


def final_logits(hf_model: Any, hidden: torch.Tensor) -> torch.Tensor:
    """The model's own head on a residual stream: final norm, unembedding, soft-capping."""
    return anatomy(hf_model).head(hidden)


class LogitLens:
    """Filled by :func:`reading_logit_lens` while the model runs one sequence.

    Attributes:
        ids, probs: per residual site (0 = embeddings .. L = last layer's output), the top-1
            next token ``int64 [token]`` and its probability ``float32 [token]``.
        top_ids, top_probs: ``[token, k]`` top-k next tokens of the model's output (site L).
    """

    def __init__(self, parts: Anatomy, top_k: int) -> None:
        if parts.unembedding is None:
            raise TypeError(f"{type(parts.model).__name__} has no LM head to read the lens with")
        self.parts = parts
        self.top_k = top_k
        self.head_device = execution_device(parts.unembedding)
        weight: Any = parts.unembedding.weight  # [vocab, hidden]
        self.vocab_size = int(weight.shape[0])
        self.ids: list[np.ndarray | None] = [None] * parts.n_sites
        self.probs: list[np.ndarray | None] = [None] * parts.n_sites
        self.top_ids: np.ndarray | None = None
        self.top_probs: np.ndarray | None = None

    def read(self, site: int, hidden: torch.Tensor) -> None:
        """Read site ``site`` from ``hidden`` ``[1, token, hidden]`` in token chunks."""
        last = site == len(self.ids) - 1
        tokens = hidden.shape[1]
        chunk = max(1, LENS_CHUNK_BYTES // (4 * self.vocab_size))
        ids, probs, top_ids, top_probs = [], [], [], []
        with torch.no_grad():
            for start in range(0, tokens, chunk):
                rows = hidden[0, start : start + chunk].to(self.head_device)
                layer_probs = self.parts.head(rows).float().softmax(-1)
                best = layer_probs.max(-1)
                ids.append(best.indices.cpu())
                probs.append(best.values.cpu())
                if last:
                    top = layer_probs.topk(min(self.top_k, self.vocab_size), dim=-1)
                    top_ids.append(top.indices.cpu())
                    top_probs.append(top.values.cpu())
        self.ids[site] = torch.cat(ids).numpy().astype(np.int64)
        self.probs[site] = torch.cat(probs).numpy().astype(np.float32)
        if last:
            self.top_ids = torch.cat(top_ids).numpy().astype(np.int64)
            self.top_probs = torch.cat(top_probs).numpy().astype(np.float32)

    def lens(self) -> tuple[np.ndarray, np.ndarray]:
        """``int64 [layer + 1, token]`` ids and ``float32 [layer + 1, token]`` probabilities."""
        if any(row is None for row in self.ids) or self.top_ids is None:
            raise RuntimeError("the logit lens is incomplete: the forward pass did not finish")
        return np.stack(self.ids), np.stack(self.probs)  # type: ignore[arg-type]

    def top(self) -> tuple[np.ndarray, np.ndarray]:
        """``int64 [token, k]`` ids and ``float32 [token, k]`` probabilities."""
        if self.top_ids is None or self.top_probs is None:
            raise RuntimeError("no prediction was read: the forward pass did not finish")
        return self.top_ids, self.top_probs


@contextmanager
def reading_logit_lens(hf_model: Any, *, top_k: int) -> Iterator[LogitLens]:
    """Hooks that fill a :class:`LogitLens` from the next forward pass of one sequence."""
    parts = anatomy(hf_model)
    lens = LogitLens(parts, top_k)

    def reader(site: int) -> Any:
        return lambda hidden: lens.read(site, hidden)

    with borrowed_hooks() as hooks:
        for site in range(parts.n_sites):
            parts.read_site(hooks, site, reader(site))
        yield lens
