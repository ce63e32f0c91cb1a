"""``explain()``: one traced forward pass gathered into an :class:`Explanation`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from llmasos_widgets._gather import stack_on
from llmasos_widgets.explain import _summaries
from llmasos_widgets.explain._explanation import Explanation, heads_pattern
from llmasos_widgets.tracing import attention_pattern, trace

if TYPE_CHECKING:
    from llmasos_widgets.models import ExplainableModel

INDUCTION_PERIOD = 25
"""Length of the random token sequence that is written twice to measure induction."""
_PATTERN_BYTES = 256 * 2**20
"""Patterns are summarised a few heads at a time so T = 4096 stays within memory."""


def explain(
    model: ExplainableModel | Any,
    text: str,
    *,
    target: str | int | tuple[str, str] | None = None,
    saliency: bool = True,
    saliency_method: str = "gradient",
    top_k: int = 5,
    truncate: bool = False,
    tokenizer: Any = None,
    seed: int = 0,
) -> Explanation:
    """Explain what ``model`` does on ``text``.

    Gathers post-RoPE queries/keys (attention on demand), head summaries, the top ``top_k``
    next-token predictions per position, the logit lens and, with ``saliency=True``, gradient
    saliency of ``target`` (default: the model's own prediction after the last token) by
    ``saliency_method``. ``model`` is an ``ExplainableModel`` or a ``transformers`` model with
    ``tokenizer=``. ``seed`` fixes the random sequence used for the induction score.
    """
    from llmasos_widgets.models import as_explainable

    explainable = as_explainable(model, tokenizer)
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    ids = explainable.encode(text, truncate=truncate)
    hf_model = explainable.hf_model
    with torch.no_grad(), trace(hf_model) as captured:
        logits = hf_model(input_ids=ids).logits[0]
        n_layers = len(captured.queries)
        queries = tuple(captured.queries[layer][0] for layer in range(n_layers))
        keys = tuple(captured.keys[layer][0] for layer in range(n_layers))
        specs = tuple(captured.spec[layer] for layer in range(n_layers))
        lens_ids, lens_probs = _logit_lens(hf_model, [r[0] for r in captured.residual])

    summaries = _text_summaries(queries, keys, specs)
    period = _induction_period(explainable)
    summaries["induction"] = _induction_scores(explainable, period=period, seed=seed)
    probs = logits.float().softmax(-1)
    top = probs.topk(min(top_k, probs.shape[-1]), dim=-1)
    top_ids = top.indices.cpu().numpy().astype(np.int64)

    saliency_result = None
    if saliency:
        from llmasos_widgets.attribution import attribute

        saliency_result = attribute(
            explainable, text, target=target, method=saliency_method, truncate=truncate
        )
    token_ids = ids[0].cpu().numpy().astype(np.int64)
    return Explanation(
        model_name=explainable.name,
        tokens=tuple(explainable.tokens(ids)),
        token_ids=token_ids,
        queries=queries,
        keys=keys,
        specs=specs,
        head_summaries=summaries,
        top_token_ids=top_ids,
        top_probs=top.values.cpu().numpy().astype(np.float32),
        top_tokens=tuple(tuple(explainable.tokens(torch.from_numpy(row))) for row in top_ids),
        lens_token_ids=lens_ids,
        lens_probs=lens_probs,
        lens_tokens=tuple(tuple(explainable.tokens(torch.from_numpy(row))) for row in lens_ids),
        saliency=saliency_result,
        metadata={
            "model_type": explainable.config.model_type,
            "dtype": str(hf_model.dtype).removeprefix("torch."),
            "induction_period": period,
            "induction_seed": seed,
        },
    )


def final_logits(hf_model: Any, hidden: torch.Tensor) -> torch.Tensor:
    """The model's own head on a residual stream: final norm, unembedding, soft-capping."""
    logits = hf_model.lm_head(hf_model.model.norm(hidden))
    cap = getattr(hf_model.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits


def _logit_lens(hf_model: Any, residual: list[torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
    """Top-1 next token and its probability read from every residual stream ``[layer+1, token]``."""
    ids, probs = [], []
    for hidden in residual:
        layer_probs = final_logits(hf_model, hidden).float().softmax(-1)
        best = layer_probs.max(-1)
        ids.append(best.indices.cpu())
        probs.append(best.values.cpu())
    return (
        torch.stack(ids).numpy().astype(np.int64),
        torch.stack(probs).numpy().astype(np.float32),
    )


def _head_chunks(n_heads: int, n_tokens: int) -> int:
    return max(1, min(n_heads, _PATTERN_BYTES // (4 * n_tokens * n_tokens)))


def _text_summaries(
    queries: tuple[torch.Tensor, ...], keys: tuple[torch.Tensor, ...], specs: tuple[Any, ...]
) -> dict[str, np.ndarray]:
    n_layers, (n_heads, n_tokens, _) = len(queries), queries[0].shape
    out = {name: np.zeros((n_layers, n_heads), np.float32) for name in _summaries.SUMMARY_NAMES}
    if n_tokens < 2:  # one token attends only to itself: nothing to summarise
        return out
    chunk = _head_chunks(n_heads, n_tokens)
    for layer in range(n_layers):
        spec = specs[layer]
        for start in range(0, n_heads, chunk):
            heads = torch.arange(start, min(start + chunk, n_heads), device=queries[layer].device)
            pattern = heads_pattern(queries[layer], keys[layer], spec, heads)
            for name, fn in (
                ("entropy", _summaries.entropy),
                ("previous_token", _summaries.previous_token),
                ("first_token", _summaries.first_token),
            ):
                out[name][layer, start : start + len(heads)] = fn(pattern).cpu().numpy()
    return out


def _induction_period(explainable: ExplainableModel) -> int:
    """:data:`INDUCTION_PERIOD`, or less when two copies would not fit the model's context."""
    return min(INDUCTION_PERIOD, (explainable.max_length - 1) // 2)


def _induction_scores(explainable: ExplainableModel, *, period: int, seed: int) -> np.ndarray:
    """Induction score of every head on a seeded random token sequence written twice."""
    tokenizer = explainable.tokenizer
    if explainable.copy_tokens:
        ids: Any = tokenizer.convert_tokens_to_ids(list(explainable.copy_tokens))
        candidates = [int(i) for i in ids]
    else:
        special = set(tokenizer.all_special_ids)
        candidates = [i for i in range(len(tokenizer)) if i not in special]
    generator = np.random.default_rng(seed)
    sequence = generator.choice(candidates, size=period, replace=len(candidates) < period)
    prefix = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    ids = torch.tensor([[*prefix, *sequence, *sequence]], device=explainable.device)
    hf_model = explainable.hf_model
    with torch.no_grad(), trace(hf_model, residual=False) as captured:
        hf_model(input_ids=ids)
        scores = [
            _summaries.induction(
                attention_pattern(
                    captured.queries[layer][0], captured.keys[layer][0], captured.spec[layer]
                ),
                period,
            )
            for layer in range(len(captured.queries))
        ]
    # each layer's score is on its layer's device (device_map)
    return stack_on(scores, "cpu").numpy().astype(np.float32)
