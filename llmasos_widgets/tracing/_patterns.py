"""Exact attention patterns rebuilt from captured post-RoPE queries and keys.

The model runs its fast kernel (sdpa/flash) and we keep only ``q`` and ``k``; a head's pattern
is recomputed here when someone looks at it. The arithmetic mirrors HF's eager attention:
``softmax(softcap(q @ k.T * scaling))`` under the causal, sliding-window and padding masks,
with query head ``h`` reading key/value head ``h // n_kv_groups``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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
    scores = scores.reshape(n_heads, n_queries, n_keys)
    if spec.softcap is not None:
        scores = torch.tanh(scores / spec.softcap) * spec.softcap

    query_pos = torch.arange(n_keys - n_queries, n_keys, device=q.device).unsqueeze(1)
    key_pos = torch.arange(n_keys, device=q.device).unsqueeze(0)
    allowed = key_pos <= query_pos
    if spec.sliding_window is not None:
        allowed = allowed & (key_pos > query_pos - spec.sliding_window)
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
