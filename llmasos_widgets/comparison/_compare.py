"""``compare(model_a, model_b, text)``: explain one text with two models and line them up."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from llmasos_widgets._gather import execution_device
from llmasos_widgets._hooks import borrowed_hooks
from llmasos_widgets.comparison._comparison import Comparison, token_mismatch
from llmasos_widgets.tracing import anatomy, eval_mode

LENS_CHUNK_BYTES = 64 * 2**20
"""float32 logits of one model computed at once when the two lenses are compared."""


def compare(
    model_a: Any,
    model_b: Any,
    text: str,
    *,
    target: Any = None,
    tokenizer: Any = None,
    **explain_kwargs: Any,
) -> Comparison:
    """Explain ``text`` with both models and return their :class:`Comparison`.

    ``model_a`` / ``model_b``: ``ExplainableModel`` s (or ``transformers`` models with
    ``tokenizer=``) that tokenize ``text`` alike and have the same number of layers and heads
    -- typically a model and a fine-tuned copy. ``target`` is the saliency target of both
    (see :func:`~llmasos_widgets.attribution.attribute`); by default model A's own top
    prediction after the last token, so both explain the same token. Other keywords go to
    :func:`~llmasos_widgets.explanation.explain` (``saliency_method``, ``saliency``, ``seed``...).
    The saliency method defaults to ``"gradient"``, which gives every site (the comparison's
    panel is by layer), not explain's ``"auto"``.
    """
    from llmasos_widgets.explanation import explain
    from llmasos_widgets.models import as_explainable

    a = as_explainable(model_a, tokenizer)
    b = as_explainable(model_b, tokenizer)
    truncate = bool(explain_kwargs.get("truncate", False))
    ids = check_comparable(a, b, text, truncate=truncate)
    if target is None:
        target = _predicted_id(a, ids)
    explain_kwargs.setdefault("saliency_method", "gradient")
    exp_a = explain(a, text, target=target, **explain_kwargs)
    exp_b = explain(b, text, target=target, **explain_kwargs)
    if exp_a.saliency is not None:
        target_id = int(exp_a.saliency.target_token_ids[0])
    else:
        from llmasos_widgets.attribution import as_target, resolve_token

        spec: Any = as_target(target)
        token = getattr(spec, "token", None)
        vocab = _vocab(anatomy(a.hf_model))
        target_id = (
            _predicted_id(a, ids) if token is None else resolve_token(a.tokenizer, token, vocab)
        )
    distance, target_a, target_b = lens_difference(a.hf_model, b.hf_model, ids, target_id)
    return Comparison(
        a=exp_a,
        b=exp_b,
        lens_distance=distance,
        lens_target_a=target_a,
        lens_target_b=target_b,
        target_token_id=target_id,
        target_token=str(a.tokenizer.convert_ids_to_tokens(target_id)),
    )


def check_comparable(a: Any, b: Any, text: str, *, truncate: bool = False) -> torch.Tensor:
    """Model A's token ids ``[1, token]`` for ``text``, after checking that model B tokenizes
    it alike and has the same layers, heads and vocabulary; ``ValueError`` names what differs."""
    parts_a, parts_b = anatomy(a.hf_model), anatomy(b.hf_model)
    heads_a = int(a.config.num_attention_heads)
    heads_b = int(b.config.num_attention_heads)
    if (parts_a.n_layers, heads_a) != (parts_b.n_layers, heads_b):
        raise ValueError(
            f"model A ({a.name}) has {parts_a.n_layers} layers x {heads_a} heads but model B "
            f"({b.name}) has {parts_b.n_layers} x {heads_b}; a comparison lines heads up by "
            "[layer, head], so compare a model with a fine-tuned copy of itself"
        )
    vocab_a = _vocab(parts_a)
    vocab_b = _vocab(parts_b)
    if vocab_a != vocab_b:
        raise ValueError(
            f"model A ({a.name}) predicts {vocab_a} tokens but model B ({b.name}) {vocab_b}; "
            "compare() needs both models to use the same tokenizer and vocabulary"
        )
    ids_a = a.encode(text, truncate=truncate)
    ids_b = b.encode(text, truncate=truncate)
    list_a, list_b = ids_a[0].tolist(), ids_b[0].tolist()
    if list_a != list_b:
        raise ValueError(
            token_mismatch(
                list_a,
                list_b,
                a.tokenizer.convert_ids_to_tokens(list_a),
                b.tokenizer.convert_ids_to_tokens(list_b),
            )
        )
    return ids_a


def _vocab(parts: Any) -> int:
    if parts.unembedding is None:
        raise TypeError(f"{type(parts.model).__name__} has no LM head; compare() needs one")
    return int(parts.unembedding.weight.shape[0])


def _predicted_id(model: Any, ids: torch.Tensor) -> int:
    with torch.no_grad(), eval_mode(model.hf_model):
        logits = model.hf_model(input_ids=ids, use_cache=False, logits_to_keep=1).logits
    return int(logits[0, -1].argmax())


def _residual_stream(hf_model: Any, ids: torch.Tensor) -> list[torch.Tensor]:
    """Every residual site's ``[token, hidden]`` for one sequence (0 = emb .. L)."""
    parts = anatomy(hf_model)
    sites: list[torch.Tensor | None] = [None] * parts.n_sites

    def reader(site: int) -> Any:
        def read(hidden: torch.Tensor) -> None:
            sites[site] = hidden[0].detach()

        return read

    with torch.no_grad(), eval_mode(hf_model), borrowed_hooks() as hooks:
        for site in range(parts.n_sites):
            parts.read_site(hooks, site, reader(site))
        hf_model(
            input_ids=ids.to(execution_device(parts.embedding)), use_cache=False, logits_to_keep=1
        )
    if any(site is None for site in sites):
        raise RuntimeError("a residual site was not read: the forward pass did not finish")
    return sites  # type: ignore[return-value]


def lens_difference(
    hf_a: Any, hf_b: Any, ids: torch.Tensor, target_id: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Logit lens of both models at every site: total-variation distance ``[site, token]``
    between their next-token distributions, and each model's probability of ``target_id``.

    Each model's own head (final norm + unembedding) reads its own residual stream, a few
    tokens at a time so no ``[site, token, vocab]`` array is ever held.
    """
    parts_a, parts_b = anatomy(hf_a), anatomy(hf_b)
    stream_a, stream_b = _residual_stream(hf_a, ids), _residual_stream(hf_b, ids)
    n_sites, n_tokens = len(stream_a), int(ids.shape[1])
    chunk = max(1, LENS_CHUNK_BYTES // (4 * _vocab(parts_a)))
    distance = np.zeros((n_sites, n_tokens), np.float32)
    target_a = np.zeros((n_sites, n_tokens), np.float32)
    target_b = np.zeros((n_sites, n_tokens), np.float32)
    device_a = execution_device(parts_a.unembedding)  # type: ignore[arg-type]
    device_b = execution_device(parts_b.unembedding)  # type: ignore[arg-type]
    with torch.no_grad():
        for site in range(n_sites):
            for start in range(0, n_tokens, chunk):
                cols = slice(start, start + chunk)
                pa = parts_a.head(stream_a[site][cols].to(device_a)).double().softmax(-1).cpu()
                pb = parts_b.head(stream_b[site][cols].to(device_b)).double().softmax(-1).cpu()
                distance[site, cols] = (0.5 * (pb - pa).abs().sum(-1)).numpy()
                target_a[site, cols] = pa[:, target_id].numpy()
                target_b[site, cols] = pb[:, target_id].numpy()
    return distance, target_a, target_b
