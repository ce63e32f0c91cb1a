"""The attention arithmetic, in one place: from captured post-RoPE ``q``/``k`` and a layer's
:class:`AttentionSpec` to scores, the mask, and weights.

The model runs its fast kernel (sdpa/flash) and we keep only ``q`` and ``k``; patterns, pooled
views, summaries and the query·key breakdown all recompute from them with the functions here.
The arithmetic mirrors HF's eager attention: ``softmax(softcap(q @ k.T * scaling))`` under the
causal, sliding-window and padding masks, with query head ``h`` reading key/value head
``h // n_kv_groups`` (:func:`kv_head`). The mask rule is :func:`visible`; the tile helpers
below it (:func:`first_visible_key`, :func:`all_visible`, :func:`mask_invisible_`) are that
rule's shortcuts for wide tiles, so a new rule changes this module only.

Two products coexist on purpose: :func:`attention_pattern` scales the scores (as eager
attention does: the exact pattern), the tiled paths (:func:`scaled_scores`) scale ``q``
(``R x d`` values instead of ``R x C``), which differs by float rounding only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import torch


@dataclass(frozen=True, kw_only=True)
class AttentionSpec:
    """How one attention layer turns ``q``/``k`` into a pattern, as the model called it.

    Attributes:
        scaling: factor on ``q @ k.T`` (``head_dim ** -0.5`` for LLaMA; Gemma 2 uses
            ``query_pre_attn_scalar ** -0.5``).
        softcap: logits become ``tanh(logits / softcap) * softcap`` (Gemma 2); ``None`` = off.
        sliding_window: a query sees keys ``q - k < sliding_window`` back; ``None`` = all.
        n_kv_groups: query heads per key/value head (grouped-query attention); 1 = MHA.
    """

    scaling: float
    softcap: float | None = None
    sliding_window: int | None = None
    n_kv_groups: int = 1

    def __post_init__(self) -> None:
        if not (math.isfinite(self.scaling) and self.scaling > 0):
            raise ValueError(f"scaling must be a positive finite float, got {self.scaling!r}")
        if self.softcap is not None and not (math.isfinite(self.softcap) and self.softcap > 0):
            raise ValueError(f"softcap must be None or a positive float, got {self.softcap!r}")
        if self.sliding_window is not None and self.sliding_window < 1:
            raise ValueError(f"sliding_window must be None or >= 1, got {self.sliding_window!r}")
        if self.n_kv_groups < 1:
            raise ValueError(f"n_kv_groups must be >= 1, got {self.n_kv_groups!r}")

    @classmethod
    def of_call(
        cls, query: torch.Tensor, key: torch.Tensor, kwargs: Mapping[str, Any]
    ) -> AttentionSpec:
        """The spec of one attention-interface call (queries ``[batch, head, query, d]``, keys
        ``[batch, kv_head, key, d]``, its ``scaling``/``softcap``/``sliding_window`` keywords)."""
        scaling, softcap, window = (
            kwargs.get(name) for name in ("scaling", "softcap", "sliding_window")
        )
        return cls(
            scaling=float(scaling) if scaling is not None else query.shape[-1] ** -0.5,
            softcap=None if softcap is None else float(softcap),
            sliding_window=None if window is None else int(window),
            n_kv_groups=query.shape[1] // key.shape[1],
        )


Positions = TypeVar("Positions", int, torch.Tensor)


def kv_head(head: Positions, spec: AttentionSpec) -> Positions:
    """The key/value head that query head ``head`` (an int or a tensor of heads) reads."""
    return head // spec.n_kv_groups


# ---- the mask rule ---------------------------------------------------------------------------


def visible(query_pos: Positions, key_pos: Positions, spec: AttentionSpec) -> Positions:
    """Whether query ``query_pos`` sees key ``key_pos`` (ints, or tensors that broadcast): the
    causal mask, and the sliding window's ``query - key < sliding_window``."""
    allowed = key_pos <= query_pos
    if spec.sliding_window is not None:
        allowed = allowed & (key_pos > query_pos - spec.sliding_window)
    return allowed


def first_visible_key(query: int, spec: AttentionSpec) -> int:
    """The first key query ``query`` sees (0 without a sliding window)."""
    if spec.sliding_window is None:
        return 0
    return max(0, query - spec.sliding_window + 1)


def all_visible(
    query_pos: torch.Tensor, key_start: int, key_stop: int, spec: AttentionSpec
) -> bool:
    """Whether every key ``key_start:key_stop`` is visible from every query (no mask needed)."""
    if key_stop - 1 > int(query_pos.min()):
        return False
    return spec.sliding_window is None or key_start > int(query_pos.max()) - spec.sliding_window


def mask_invisible_(scores: torch.Tensor, r0: int, key_start: int, spec: AttentionSpec) -> None:
    """In place: -inf on the cells of ``scores [R, K]`` (queries ``r0:r0+R``, keys
    ``key_start:key_start+K``) that are not :func:`visible`. Only the columns that may hold
    such a cell are touched (the diagonal square, the window's edge), so a wide row chunk
    costs one small mask, not a ``[R, K]`` one."""
    n_rows, n_keys = scores.shape
    key_stop = key_start + n_keys
    # keys at or before r0 are causally visible from every row; keys at or after the window's
    # start for the last row are inside every row's window
    column_ranges = [(max(key_start, r0 + 1), key_stop)]
    if spec.sliding_window is not None:
        column_ranges.append((key_start, min(key_stop, r0 + n_rows - spec.sliding_window)))
    query_pos = torch.arange(r0, r0 + n_rows, device=scores.device).unsqueeze(1)
    for lo, hi in column_ranges:
        if lo < hi:
            key_pos = torch.arange(lo, hi, device=scores.device).unsqueeze(0)
            scores[:, lo - key_start : hi - key_start].masked_fill_(
                ~visible(query_pos, key_pos, spec), -math.inf
            )


# ---- scores and weights ----------------------------------------------------------------------

Scores = TypeVar("Scores", float, torch.Tensor)


def soft_cap(scores: Scores, spec: AttentionSpec) -> Scores:
    """``tanh(scores / softcap) * softcap`` (Gemma 2), or ``scores`` without a soft-cap."""
    cap = spec.softcap
    if cap is None:
        return scores
    if isinstance(scores, float):
        return math.tanh(scores / cap) * cap
    return torch.tanh(scores / cap) * cap


def soft_cap_(scores: torch.Tensor, spec: AttentionSpec) -> torch.Tensor:
    """:func:`soft_cap` in place (the same values, without a tile-sized temporary)."""
    if spec.softcap is not None:
        scores.div_(spec.softcap).tanh_().mul_(spec.softcap)
    return scores


def scaled_scores(
    q: torch.Tensor, k: torch.Tensor, spec: AttentionSpec, out: torch.Tensor | None = None
) -> torch.Tensor:
    """``[..., R, d] x [..., C, d] -> float32 [..., R, C]`` soft-capped scores of ``q`` scaled
    before the product (into ``out``, contiguous, when given)."""
    scores = torch.matmul(q.float() * spec.scaling, k.float().transpose(-2, -1), out=out)
    return soft_cap_(scores, spec) if out is not None else soft_cap(scores, spec)


def attention_pattern(
    q: torch.Tensor,
    k: torch.Tensor,
    spec: AttentionSpec,
    *,
    key_padding_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Rebuild one sequence's attention pattern exactly, in float32.

    Half-precision ``q``/``k`` are upcast before the product, so the result is the exact
    softmax of the model's own bf16/fp16 queries and keys; HF's eager attention in that dtype
    additionally rounds ``q @ k.T`` and the probabilities, and differs from this by that
    rounding (measured bounds in docs/saliency.md, "Half precision and several devices").

    Args:
        q: ``[head, query, d]`` post-RoPE queries. ``query`` may be shorter than ``key``
            (decoding with a cache): query ``i`` then sits at key position ``key - query + i``.
        k: ``[kv_head, key, d]`` post-RoPE keys, not repeated for grouped-query attention.
        spec: the layer's :class:`AttentionSpec`; ``head == kv_head * spec.n_kv_groups``.
        key_padding_mask: ``bool [key]``, ``True`` for real tokens (HF's ``attention_mask``
            convention). Padded keys get weight 0.

    Returns:
        ``float32 [head, query, key]``. Rows of padded queries carry no meaning in the model,
        so they are returned as all zeros; every other row sums to 1.
    """
    if q.dim() != 3 or k.dim() != 3:
        raise ValueError(
            f"expected q [head, query, d] and k [kv_head, key, d], got {tuple(q.shape)} and "
            f"{tuple(k.shape)}; index one batch element first (q[b], k[b])"
        )
    n_heads, n_queries, head_dim = q.shape
    n_kv_heads, n_keys, _ = k.shape
    if k.shape[2] != head_dim:
        raise ValueError(f"q and k head dims differ: {head_dim} vs {k.shape[2]}")
    if n_heads != n_kv_heads * spec.n_kv_groups:
        raise ValueError(
            f"{n_heads} query heads do not match {n_kv_heads} kv heads x "
            f"n_kv_groups={spec.n_kv_groups}"
        )
    if n_queries > n_keys:
        raise ValueError(f"more queries ({n_queries}) than keys ({n_keys})")

    # [kv_head, group, query, d] @ [kv_head, 1, d, key]: GQA without materialising repeated keys
    grouped_q = q.float().reshape(n_kv_heads, spec.n_kv_groups, n_queries, head_dim)
    scores = torch.matmul(grouped_q, k.float().unsqueeze(1).transpose(2, 3)) * spec.scaling
    scores = soft_cap(scores.reshape(n_heads, n_queries, n_keys), spec)

    query_pos = torch.arange(n_keys - n_queries, n_keys, device=q.device).unsqueeze(1)
    key_pos = torch.arange(n_keys, device=q.device).unsqueeze(0)
    allowed = visible(query_pos, key_pos, spec)
    query_is_real = torch.ones(n_queries, 1, dtype=torch.bool, device=q.device)
    if key_padding_mask is not None:
        padding = _as_bool_mask(key_padding_mask, n_keys, q.device)
        allowed = allowed & padding.unsqueeze(0)
        query_is_real = padding[n_keys - n_queries :].unsqueeze(1)

    weights = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)
    # a row with no allowed key (or a padded query) is all -inf -> NaN; report it as zeros
    keep_row = allowed.any(dim=-1, keepdim=True) & query_is_real
    return torch.where(keep_row, weights, torch.zeros((), dtype=weights.dtype, device=q.device))


def _as_bool_mask(mask: torch.Tensor, n_keys: int, device: torch.device) -> torch.Tensor:
    if mask.dim() != 1 or mask.shape[0] != n_keys:
        raise ValueError(
            f"key_padding_mask must be 1-D with {n_keys} entries (one per key), "
            f"got shape {tuple(mask.shape)}"
        )
    if mask.dtype.is_floating_point and not torch.all((mask == 0) | (mask == 1)):
        raise ValueError("key_padding_mask must hold 0/1 or booleans (1 = real token)")
    return mask.to(device=device).bool()


def cell_weights(
    queries: torch.Tensor,
    keys: torch.Tensor,
    spec: AttentionSpec,
    lse: torch.Tensor,
    query_pos: torch.Tensor,
    key_pos: torch.Tensor,
) -> torch.Tensor:
    """Exact weights ``float32 [head, len(query_pos), len(key_pos)]`` of all query heads, from
    the rows' log-sum-exp ``lse [head, len(query_pos)]``; invisible cells are 0."""
    device = queries.device
    query_pos, key_pos = query_pos.to(device), key_pos.to(device)
    kv_index = kv_head(torch.arange(queries.shape[0], device=device), spec)
    scores = scaled_scores(queries[:, query_pos], keys[:, key_pos][kv_index], spec)
    weights = torch.exp(scores - lse.to(device).unsqueeze(-1))
    return weights.masked_fill(~visible(query_pos.unsqueeze(1), key_pos.unsqueeze(0), spec), 0.0)


def paired_weights(
    queries: torch.Tensor,
    keys: torch.Tensor,
    spec: AttentionSpec,
    lse: torch.Tensor,
    query_pos: torch.Tensor,
    key_pos: torch.Tensor,
) -> torch.Tensor:
    """Exact weights ``float32 [head, n]`` of the cells ``(query_pos[i], key_pos[i])``."""
    device = queries.device
    query_pos, key_pos = query_pos.to(device), key_pos.to(device)
    kv_index = kv_head(torch.arange(queries.shape[0], device=device), spec)
    q, k = queries[:, query_pos].float(), keys[:, key_pos][kv_index].float()
    scores = soft_cap((q * k).sum(-1) * spec.scaling, spec)
    return torch.exp(scores - lse.to(device)).masked_fill(~visible(query_pos, key_pos, spec), 0.0)
