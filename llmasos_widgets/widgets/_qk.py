"""Query·key breakdown of one attention score (BertViz's "neuron view", for LLaMA, post-RoPE).

The pre-softmax score of query ``q`` and key ``k`` in head ``h`` is
``score = Σ_d q_d · k_d · scaling`` with ``q`` the head's post-RoPE query and ``k`` the
post-RoPE key of its grouped-query kv head ``h // n_kv_groups``. :func:`qk_breakdown` returns
the per-dimension terms, so one sees which dimensions make the score. LLaMA's rotary embedding
(``rotate_half``) rotates dimension ``i`` together with ``i + d/2``; the dot product within
such a pair depends only on the relative position and the pair's frequency, so the pairs
(:attr:`QKBreakdown.pair_products`) are the natural unit: low pairs rotate fastest.

:func:`qk_message` is what ``AttentionWidget`` shows (trait ``qk``) when ``selected_cell``
is set: the breakdown of the selected layer's selected heads (all heads when none is selected),
drawn by ``js/src/lib/qk_panel.ts``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from llmasos_widgets.tracing import kv_head, soft_cap, visible
from llmasos_widgets.widgets._base import tensor_payload


@dataclass(frozen=True, kw_only=True)
class QKBreakdown:
    """One cell's score split by dimension.

    Attributes:
        layer, head, query, key: the cell; ``kv_head`` the key/value head ``head`` reads.
        q, k: float32 ``[head_dim]`` post-RoPE query and key.
        products: float32 ``[head_dim]`` ``q_d · k_d · scaling``; their sum is :attr:`score`.
        score: the pre-softmax score (before a soft-cap, if the model has one).
        logit: the score after the soft-cap (= ``score`` without one).
        weight: the attention weight of the cell (0 for a masked cell).
        masked: the key is invisible to the query (causal or sliding-window mask).
    """

    layer: int
    head: int
    kv_head: int
    query: int
    key: int
    q: np.ndarray
    k: np.ndarray
    products: np.ndarray
    score: float
    logit: float
    weight: float
    masked: bool

    def __post_init__(self) -> None:
        d = self.q.shape
        if len(d) != 1 or self.k.shape != d or self.products.shape != d:
            raise ValueError(
                f"q, k and products must be [head_dim] of one size; got {self.q.shape}, "
                f"{self.k.shape}, {self.products.shape}"
            )
        for array in (self.q, self.k, self.products):
            array.setflags(write=False)

    @property
    def rotary_pairs(self) -> np.ndarray:
        """int64 ``[head_dim / 2, 2]``: dimensions RoPE rotates together (``i``, ``i + d/2``)."""
        half = self.q.shape[0] // 2
        return np.stack([np.arange(half), np.arange(half) + half], axis=1).astype(np.int64)

    @property
    def pair_products(self) -> np.ndarray:
        """float32 ``[head_dim / 2]``: the score's share of each rotary pair."""
        pairs = self.rotary_pairs
        return (self.products[pairs[:, 0]] + self.products[pairs[:, 1]]).astype(np.float32)


def qk_breakdown(explanation: Any, layer: int, head: int, query: int, key: int) -> QKBreakdown:
    """Split the score of ``(query, key)`` in ``head`` of ``layer`` by dimension.

    Uses the explanation's stored post-RoPE ``queries``/``keys`` and the layer's
    ``AttentionSpec`` (scaling, soft-cap, window, grouped-query mapping).
    """
    import torch

    explanation._check_head(layer, head)
    n = explanation.n_tokens
    for name, position in (("query", query), ("key", key)):
        if isinstance(position, bool) or not isinstance(position, int | np.integer):
            raise TypeError(f"{name} must be an int position, got {position!r}")
        if not 0 <= position < n:
            raise ValueError(f"{name}={position} is out of range: positions are 0..{n - 1}")
    spec = explanation.specs[layer]
    kv = kv_head(head, spec)
    q = explanation.queries[layer][head, query].detach().to("cpu", torch.float64).numpy()
    k = explanation.keys[layer][kv, key].detach().to("cpu", torch.float64).numpy()
    products = q * k * spec.scaling
    score = float(products.sum())
    logit = soft_cap(score, spec)
    masked = not visible(query, key, spec)
    weight = 0.0 if masked else float(explanation.attention(layer, head)[query, key])
    return QKBreakdown(
        layer=int(layer),
        head=int(head),
        kv_head=int(kv),
        query=int(query),
        key=int(key),
        q=q.astype(np.float32),
        k=k.astype(np.float32),
        products=products.astype(np.float32),
        score=score,
        logit=logit,
        weight=weight,
        masked=bool(masked),
    )


def qk_message(explanation: Any, layer: int, heads: list[int], cell: list[int]) -> dict[str, Any]:
    """The ``qk`` trait value: ``{}`` without a cell or layer, else per head the score, weight
    and a float32 ``[head, 3, head_dim]`` payload of ``q``, ``k`` and ``q·k·scaling``."""
    if len(cell) != 2 or layer < 0:
        return {}  # nothing clicked, or no layer
    query, key = (int(v) for v in cell)
    shown = list(heads) or list(range(explanation.n_heads))
    parts = [qk_breakdown(explanation, layer, head, query, key) for head in shown]
    values = np.stack([np.stack([p.q, p.k, p.products]) for p in parts]).astype(np.float32)
    return {
        "layer": int(layer),
        "query": query,
        "key": key,
        "heads": shown,
        "kv_heads": [p.kv_head for p in parts],
        "scores": [p.score for p in parts],
        "logits": [p.logit for p in parts],
        "weights": [p.weight for p in parts],
        "masked": parts[0].masked,
        "values": tensor_payload(values),
    }
