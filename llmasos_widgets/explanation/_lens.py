"""The logit lens and the next-token predictions, read from the residual stream.

Reading every residual site through the model's head gives ``[layer + 1, token, vocab]``
logits: 33 × 4096 × 128256 floats (69 GB) for Llama-3.1-8B at T = 4096. Nothing of that size
is kept: a site is read a few tokens at a time (:data:`LENS_CHUNK_BYTES` of float32 logits per
chunk), and only the top ids and their probabilities survive.

During the forward only the model's output (the last site) is read: the top-k predictions at
every position and the lens row of that site come from the same probabilities. The other
sites' residual streams (``[token, hidden]`` each) are kept and read through the head when a
view first asks for them (:class:`LensRows`): unembedding every site at every position costs
``layer + 1`` times the model's own head, more than the rest of the forward on a small model
with a large vocabulary. A site read later is bitwise what reading it during the forward gave
(same rows, same chunks, same head), and its residual stream is then dropped.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from llmasos_widgets._gather import execution_device
from llmasos_widgets._hooks import borrowed_hooks
from llmasos_widgets.tracing import Anatomy, anatomy

LENS_CHUNK_BYTES = 64 * 2**20
"""float32 logits computed at once: 130 tokens of a 128k vocabulary."""


def final_logits(hf_model: Any, hidden: torch.Tensor) -> torch.Tensor:
    """The model's own head on a residual stream: final norm, unembedding, soft-capping."""
    return anatomy(hf_model).head(hidden)


def read_top(
    parts: Anatomy, hidden: torch.Tensor, top_k: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """One site's lens from ``hidden`` ``[token, hidden]``: top-1 ids ``int64 [token]`` and
    probabilities ``float32 [token]``, and with ``top_k`` the top-k ``[token, k]`` as well."""
    assert parts.unembedding is not None
    head_device = execution_device(parts.unembedding)
    weight: Any = parts.unembedding.weight  # [vocab, hidden]
    vocab_size = int(weight.shape[0])
    chunk = max(1, LENS_CHUNK_BYTES // (4 * vocab_size))
    ids, probs, top_ids, top_probs = [], [], [], []
    with torch.no_grad():
        for start in range(0, hidden.shape[0], chunk):
            rows = hidden[start : start + chunk].to(head_device)
            layer_probs = parts.head(rows).float().softmax(-1)
            best = layer_probs.max(-1)
            ids.append(best.indices.cpu())
            probs.append(best.values.cpu())
            if top_k is not None:
                top = layer_probs.topk(min(top_k, vocab_size), dim=-1)
                top_ids.append(top.indices.cpu())
                top_probs.append(top.values.cpu())
    as_ids = torch.cat(ids).numpy().astype(np.int64)
    as_probs = torch.cat(probs).numpy().astype(np.float32)
    if top_k is None:
        return as_ids, as_probs, None, None
    return (
        as_ids,
        as_probs,
        torch.cat(top_ids).numpy().astype(np.int64),
        torch.cat(top_probs).numpy().astype(np.float32),
    )


class LogitLens:
    """Filled by :func:`reading_logit_lens` while the model runs one sequence.

    Attributes:
        ids, probs: the last site's (the model's output) top-1 next token ``int64 [token]``
            and its probability ``float32 [token]``, per site (``None`` for sites not read).
        residual: per site, the ``[token, hidden]`` residual stream kept to be read later
            (``None`` for the last site, read during the forward).
        top_ids, top_probs: ``[token, k]`` top-k next tokens of the model's output (site L).
    """

    def __init__(self, parts: Anatomy, top_k: int, keep: Callable[[torch.Tensor], Any]) -> None:
        if parts.unembedding is None:
            raise TypeError(f"{type(parts.model).__name__} has no LM head to read the lens with")
        self.parts = parts
        self.top_k = top_k
        self.keep = keep
        self.ids: list[np.ndarray | None] = [None] * parts.n_sites
        self.probs: list[np.ndarray | None] = [None] * parts.n_sites
        self.residual: list[torch.Tensor | None] = [None] * parts.n_sites
        self.top_ids: np.ndarray | None = None
        self.top_probs: np.ndarray | None = None

    def read(self, site: int, hidden: torch.Tensor) -> None:
        """Site ``site`` of ``hidden`` ``[1, token, hidden]``: the last one is read now (lens
        row and top-k predictions), the others are kept for :class:`LensRows`."""
        if site != len(self.ids) - 1:
            self.residual[site] = self.keep(hidden[0].detach())
            return
        ids, probs, top_ids, top_probs = read_top(self.parts, hidden[0], self.top_k)
        self.ids[site], self.probs[site] = ids, probs
        self.top_ids, self.top_probs = top_ids, top_probs

    def top(self) -> tuple[np.ndarray, np.ndarray]:
        """``int64 [token, k]`` ids and ``float32 [token, k]`` probabilities."""
        if self.top_ids is None or self.top_probs is None:
            raise RuntimeError("no prediction was read: the forward pass did not finish")
        return self.top_ids, self.top_probs

    def rows(self, token_strings: Callable[[np.ndarray], tuple[str, ...]]) -> LensRows:
        """The lens of every site: the last one read, the others read when first asked."""
        last = len(self.ids) - 1
        pending = {site: r for site, r in enumerate(self.residual) if r is not None}
        if self.ids[last] is None or len(pending) != last:
            raise RuntimeError("the logit lens is incomplete: the forward pass did not finish")
        ids, probs = self.ids[last], self.probs[last]
        assert ids is not None and probs is not None
        return LensRows(
            len(self.ids),
            len(ids),
            known={last: (ids, probs, token_strings(ids))},
            pending=pending,
            reader=HeadReader(self.parts),
            token_strings=token_strings,
        )


class HeadReader:
    """Reads a kept residual stream through the model's head, and refuses when the head's
    weights changed since the forward (fine-tuned in place): the lens would then not be the
    one of the model that produced the residual stream."""

    def __init__(self, parts: Anatomy) -> None:
        self.parts = parts
        self.fingerprint = self._fingerprint()

    def _fingerprint(self) -> list[tuple[int, int]]:
        modules = [m for m in (self.parts.final_norm, self.parts.unembedding) if m is not None]
        return [(p.data_ptr(), p._version) for m in modules for p in m.parameters()]

    def __call__(self, hidden: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        if self._fingerprint() != self.fingerprint:
            raise RuntimeError(
                "the model's final norm or unembedding changed since explain() ran, so this "
                "explanation's logit lens can no longer be read from it; explain the text again "
                "(or read explanation.lens_probs before changing the model)"
            )
        ids, probs, _, _ = read_top(self.parts, hidden)
        return ids, probs


class LensRows:
    """The logit lens of one text, ``[site, token]``: per residual site the top-1 next token
    (id, probability, string). Sites in ``known`` are read; those in ``pending`` hold their
    residual stream ``[token, hidden]`` and are read by ``reader`` on first access."""

    def __init__(
        self,
        n_sites: int,
        n_tokens: int,
        *,
        known: dict[int, tuple[np.ndarray, np.ndarray, tuple[str, ...]]],
        pending: dict[int, torch.Tensor] | None = None,
        reader: Callable[[torch.Tensor], tuple[np.ndarray, np.ndarray]] | None = None,
        token_strings: Callable[[np.ndarray], tuple[str, ...]] | None = None,
    ) -> None:
        pending = dict(pending or {})
        if sorted([*known, *pending]) != list(range(n_sites)):
            raise ValueError(f"the lens needs each of its {n_sites} sites read or pending")
        if pending and (reader is None or token_strings is None):
            raise ValueError("pending lens sites need a reader and token_strings")
        self.n_sites, self.n_tokens = n_sites, n_tokens
        self._known = dict(known)
        self._pending = pending
        self._reader = reader
        self._token_strings = token_strings
        self._lock = threading.Lock()
        self._stacked: tuple[np.ndarray, np.ndarray, tuple[tuple[str, ...], ...]] | None = None
        for site, (ids, probs, tokens) in self._known.items():
            self._check(site, ids, probs, tokens)

    @classmethod
    def of_arrays(
        cls, ids: np.ndarray, probs: np.ndarray, tokens: Sequence[Sequence[str]]
    ) -> LensRows:
        """A lens read already: ``int64 [site, token]`` ids, ``float32`` probabilities and the
        ``[site][token]`` strings."""
        if ids.ndim != 2 or probs.shape != ids.shape or len(tokens) != ids.shape[0]:
            raise ValueError(
                f"lens ids {tuple(ids.shape)}, probs {tuple(probs.shape)} and {len(tokens)} "
                "rows of tokens must all be [site, token]"
            )
        known = {site: (ids[site], probs[site], tuple(tokens[site])) for site in range(len(ids))}
        return cls(ids.shape[0], ids.shape[1], known=known)

    @property
    def pending_sites(self) -> tuple[int, ...]:
        """Sites whose lens is not read yet (their residual stream is kept)."""
        return tuple(sorted(self._pending))

    @property
    def residual_bytes(self) -> int:
        """Bytes of the residual streams kept for the sites not read yet."""
        return sum(t.nbytes for t in self._pending.values())

    def keep_residual(self, keep: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """Move the kept residual streams (``explain(keep="disk")``: into mapped files)."""
        self._pending = {site: keep(t) for site, t in self._pending.items()}

    def site(self, site: int) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
        """Site ``site``'s ``(int64 ids [token], float32 probs [token], strings [token])``,
        read through the model's head now if it was not yet."""
        if not 0 <= site < self.n_sites:
            raise ValueError(
                f"site {site!r} is out of range: the lens has sites 0..{self.n_sites - 1}"
            )
        with self._lock:
            if site not in self._known:
                assert self._reader is not None and self._token_strings is not None
                ids, probs = self._reader(self._pending[site])
                self._known[site] = (ids, probs, self._token_strings(ids))
                del self._pending[site]  # read: its residual stream is no longer needed
            return self._known[site]

    def _all(self) -> tuple[np.ndarray, np.ndarray, tuple[tuple[str, ...], ...]]:
        if self._stacked is None:
            rows = [self.site(site) for site in range(self.n_sites)]
            self._stacked = (
                np.stack([row[0] for row in rows]),
                np.stack([row[1] for row in rows]),
                tuple(row[2] for row in rows),
            )
        return self._stacked

    @property
    def ids(self) -> np.ndarray:
        """int64 ``[site, token]`` (every site read)."""
        return self._all()[0]

    @property
    def probs(self) -> np.ndarray:
        """float32 ``[site, token]`` (every site read)."""
        return self._all()[1]

    @property
    def tokens(self) -> tuple[tuple[str, ...], ...]:
        """``[site][token]`` strings (every site read)."""
        return self._all()[2]

    def _check(self, site: int, ids: np.ndarray, probs: np.ndarray, tokens: Sequence[str]) -> None:
        if ids.shape != (self.n_tokens,) or probs.shape != (self.n_tokens,):
            raise ValueError(
                f"lens site {site}: ids and probs must be [{self.n_tokens}]; got "
                f"{tuple(ids.shape)} and {tuple(probs.shape)}"
            )
        if len(tokens) != self.n_tokens:
            raise ValueError(f"lens site {site}: {len(tokens)} token strings for {self.n_tokens}")


@contextmanager
def reading_logit_lens(
    hf_model: Any, *, top_k: int, keep: Callable[[torch.Tensor], Any] | None = None
) -> Iterator[LogitLens]:
    """Hooks that fill a :class:`LogitLens` from the next forward pass of one sequence.
    ``keep`` stores each earlier site's residual stream (default: a detached clone)."""
    parts = anatomy(hf_model)
    lens = LogitLens(parts, top_k, keep or (lambda t: t.clone()))

    def reader(site: int) -> Any:
        return lambda hidden: lens.read(site, hidden)

    with borrowed_hooks() as hooks:
        for site in range(parts.n_sites):
            parts.read_site(hooks, site, reader(site))
        yield lens
