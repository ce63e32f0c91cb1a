"""The log-sum-exp of every (layer, head, query) row computed so far, kept on an Explanation:
``explain`` fills it from the head summaries' pass, a saved file carries it, and the pooled
views and hover flow (``llmasos_widgets.views``) read it and add the rows they compute."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import torch

from llmasos_widgets.tracing import row_statistics


@dataclass
class RowNormalisers:
    """Log-sum-exp of every (layer, head, query) computed so far, so zooming and hover flow
    reuse pass 1 (T floats per head: 128 kB per head at T = 32k). Safe to share between
    threads (one lock around reads and writes of the tables)."""

    lse: dict[int, torch.Tensor] = field(default_factory=dict)
    known: dict[int, torch.Tensor] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)

    def store(
        self,
        layer: int,
        shape: tuple[int, int],
        heads: torch.Tensor,
        positions: torch.Tensor,
        lse: torch.Tensor,
    ) -> None:
        """Record ``lse [len(heads), len(positions)]`` of a layer with ``shape`` = (heads, T)."""
        with self.lock:
            if layer not in self.lse:
                self.lse[layer] = torch.zeros(shape, device=lse.device)
                self.known[layer] = torch.zeros(shape, dtype=torch.bool, device=lse.device)
            table, known = self.lse[layer], self.known[layer]
            index = (heads.to(table.device).unsqueeze(1), positions.to(table.device).unsqueeze(0))
            table[index] = lse.to(table.device)
            known[index] = True

    def lookup(self, layer: int, head: int, start: int, stop: int) -> torch.Tensor | None:
        """One head's log-sum-exp of queries ``start:stop`` when every one is known, else None."""
        with self.lock:
            known = self.known.get(layer)
            if known is None or not bool(known[head, start:stop].all()):
                return None
            return self.lse[layer][head, start:stop].clone()

    def get(
        self,
        explanation: Any,
        layer: int,
        heads: torch.Tensor,
        positions: torch.Tensor,
        **kwargs: Any,
    ) -> torch.Tensor:
        """``[len(heads), len(positions)]`` log-sum-exp, computing only what is missing."""
        queries, keys = explanation.queries[layer], explanation.keys[layer]
        shape = (int(queries.shape[0]), int(queries.shape[1]))
        with self.lock:
            known = self.known.get(layer)
            if known is None:
                missing = positions.unique()
            else:
                have = known[heads.to(known.device).unsqueeze(1), positions.to(known.device)]
                missing = positions[~have.all(0).to(positions.device)].unique()
        if len(missing):  # computed outside the lock: another thread may store meanwhile
            lse, _ = row_statistics(
                queries, keys, explanation.specs[layer], heads, missing, **kwargs
            )
            self.store(layer, shape, heads, missing, lse)
        with self.lock:
            table = self.lse[layer]
            return table[heads.to(table.device).unsqueeze(1), positions.to(table.device)]
