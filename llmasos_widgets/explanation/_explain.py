"""``explain()``: one traced forward pass gathered into an :class:`Explanation`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from llmasos_widgets._gather import execution_device, stack_on
from llmasos_widgets._hooks import borrowed_hooks
from llmasos_widgets._readable_tokens import TokenStyle
from llmasos_widgets.attribution import ProgressBar
from llmasos_widgets.explanation import _summaries
from llmasos_widgets.explanation._chat import chat_input
from llmasos_widgets.explanation._disk import DiskStore, check_keep
from llmasos_widgets.explanation._explanation import Explanation
from llmasos_widgets.explanation._lens import reading_logit_lens
from llmasos_widgets.explanation._row_summaries import row_summaries
from llmasos_widgets.explanation._sinks import SINK_THRESHOLD
from llmasos_widgets.features import SparseAutoencoder, read_features
from llmasos_widgets.tracing import anatomy, attention_pattern, decoder_layers, trace

if TYPE_CHECKING:
    from llmasos_widgets.models import ExplainableModel

INDUCTION_PERIOD = 25
"""Length of the random token sequence that is written twice to measure induction."""

SALIENCY_METHOD = "auto"
"""``explain``'s (and the CLI's) default saliency method: ``occlusion`` (at the embeddings) for
texts of at most :data:`AUTO_OCCLUSION_MAX_TOKENS` tokens, ``gradient`` for longer ones. On
SmolLM2-135M-Instruct's factual prompts occlusion ranks the subject first far more often than
the gradient norm, whose largest score is the first token (bench/results/bench_defaults.json,
docs/saliency.md "Which method by default"); but it runs one occluded copy of the text per
token, work quadratic in the length, while the gradient costs one forward+backward pass."""
AUTO_OCCLUSION_MAX_TOKENS = 64


def resolve_saliency_method(method: str, n_tokens: int) -> str:
    """``method``, or for ``"auto"`` the method :data:`SALIENCY_METHOD` describes."""
    if method != "auto":
        return method
    return "occlusion" if n_tokens <= AUTO_OCCLUSION_MAX_TOKENS else "gradient"


def explain(
    model: ExplainableModel | Any,
    text: str | torch.Tensor | None = None,
    *,
    messages: list[dict[str, str]] | None = None,
    target: str | int | tuple[str, str] | None = None,
    saliency: bool = True,
    saliency_method: str = SALIENCY_METHOD,
    top_k: int = 5,
    truncate: bool = False,
    tokenizer: Any = None,
    seed: int = 0,
    keep: str | None = None,
    offload: bool | None = None,
    sink_threshold: float = SINK_THRESHOLD,
    progress: bool = True,
    saes: Sequence[SparseAutoencoder] | Mapping[str, SparseAutoencoder] = (),
) -> Explanation:
    """Explain what ``model`` does on ``text``.

    Gathers post-RoPE queries/keys (attention on demand), head summaries, the top ``top_k``
    next-token predictions per position, the logit lens and, with ``saliency=True``, the
    saliency of ``target`` (default: the model's own prediction after the last token) by
    ``saliency_method`` (default ``"auto"``: ``"occlusion"`` at the input embeddings up to 64
    tokens, ``"gradient"`` beyond, see :data:`SALIENCY_METHOD`). ``text`` may
    also be token ids ``[token]``/``[1, token]`` (int64),
    used as they are. ``messages=[{"role": ..., "content": ...}, ...]`` (instead of ``text``)
    explains a conversation: the ids of the tokenizer's chat template, and the Explanation
    records each message's token range (``Explanation.messages``, docs/chat.md). ``model``
    is an ``ExplainableModel`` or a ``transformers`` model with ``tokenizer=``. ``seed``
    fixes the random sequence used for the induction score.

    Memory stays linear in the text's length: the model returns no ``[token, vocab]`` logits,
    the predictions are read a few tokens at a time during the forward, the logit lens of the
    sites before the output keeps each site's residual stream ``[token, hidden]`` and reads it
    through the head when a view first asks (``Explanation.lens_site``; docs/long_context.md),
    and queries, keys and those residual streams are kept where ``keep`` says: ``"gpu"`` on
    the device each layer computed
    on (needs CUDA), ``"cpu"`` in host memory, copied as they are produced (the default), or
    ``"disk"`` in memory-mapped files of a temporary folder the Explanation owns (removed with
    it; until the forward ends they are in host memory). ``offload=True``/``False`` is the
    older spelling of ``keep="cpu"``/``"gpu"``. Head summaries are computed row by row, never
    as ``[T, T]``; on the CPU above 4096 tokens they are estimated from 512 query rows drawn
    with ``seed`` (``Explanation.summary_notes`` says so).
    The same pass measures the attention each key receives (``Explanation.attention_sinks``;
    a head sinks into a key above the uniform share plus ``sink_threshold``, see
    ``explanation/_sinks.py``).

    A call that runs longer than 2 s shows a progress bar (``tqdm.auto``: a widget in a
    notebook) counting its work, labelled with it: each layer of the forward and of the head
    summaries, the induction pass and the saliency (which may show its own bar as well);
    ``progress=False`` shows none.

    ``saes=[sae, ...]`` (or ``{name: sae}``) records each sparse autoencoder's active latents
    per token, read at its residual site from the same forward (no extra pass), with the
    reconstruction error norm and the logit effects of the latents that occur
    (``Explanation.features``: :class:`~llmasos_widgets.features.FeatureActivations`). The
    forward keeps the site's rows; the SAE encodes them when the record is first read (a
    view, the report, ``save``), with the SAE as it was here (changed since: an error).
    """
    from llmasos_widgets.models import as_explainable

    explainable = as_explainable(model, tokenizer)
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    # token ids ([token] or [1, token]) are taken as they are: a generated sequence must not
    # be re-tokenized from its text (explanation/_generate.py)
    from llmasos_widgets.attribution import as_input_ids

    # a conversation: apply_chat_template's ids, taken as they are (explanation/_chat.py)
    text, message_spans = chat_input(
        explainable, text, messages, add_generation_prompt=False, truncate=truncate
    )
    ids = as_input_ids(explainable, text, truncate=truncate)
    hf_model = explainable.hf_model
    devices = _layer_devices(hf_model)
    keep = _resolve_keep(keep, offload, devices)
    offload = keep != "gpu" and any(device.type != "cpu" for device in devices)
    layers = decoder_layers(hf_model)
    method = resolve_saliency_method(saliency_method, int(ids.shape[1])) if saliency else None
    steps = _Steps(
        progress,
        total=2 * len(layers) + 1 + (method is not None),
        label=f"explain: {ids.shape[1]} tokens × {len(layers)} layers (forward, head summaries, "
        f"induction pass{f', {method} saliency' if method else ''})",
    )
    with (
        torch.no_grad(),
        trace(hf_model, residual=False, offload=offload) as captured,
        reading_logit_lens(hf_model, top_k=top_k, keep=_residual_keeper(offload)) as lens,
        borrowed_hooks() as hooks,
    ):
        for layer in layers:
            hooks.forward(layer, lambda *_: steps.done())
        # each SAE keeps its site rows; the record encodes them when first read
        feature_readers = read_features(
            anatomy(hf_model),
            hooks,
            saes,
            int(explainable.config.hidden_size),
            keep=_residual_keeper(offload),
        )
        # only the lens hooks read the head; no cache: nothing here decodes further
        hf_model(input_ids=ids, use_cache=False, logits_to_keep=1)
    n_layers = len(captured.queries)
    queries = tuple(captured.queries[layer][0] for layer in range(n_layers))
    keys = tuple(captured.keys[layer][0] for layer in range(n_layers))
    specs = tuple(captured.spec[layer] for layer in range(n_layers))
    top_ids, top_probs = lens.top()
    # the lens of the sites before the output is read when a view asks (explanation/_lens.py)
    logit_lens = lens.rows(lambda row: tuple(explainable.tokens(torch.from_numpy(row))))

    at_length = row_summaries(
        queries, keys, specs, devices, seed=seed, on_layer=lambda _: steps.done()
    )
    summaries = dict(at_length.summaries)
    disk = DiskStore() if keep == "disk" else None
    if disk is not None:
        queries = tuple(disk.keep(q) for q in queries)
        keys = tuple(disk.keep(k) for k in keys)
        logit_lens.keep_residual(disk.keep)
    period = _induction_period(explainable)
    summaries["induction"] = _induction_scores(explainable, period=period, seed=seed)
    steps.done()

    saliency_result = None
    if method is not None:  # saliency=True
        from llmasos_widgets.attribution import attribute

        saliency_result = attribute(
            explainable,
            text,
            target=target,
            method=method,
            truncate=truncate,
            progress=progress,
        )
        steps.done()
    steps.close()
    features = tuple(
        reader.activations(
            anatomy(hf_model), lambda row: tuple(explainable.tokens(torch.from_numpy(row)))
        )
        for reader in feature_readers
    )
    token_ids = ids[0].cpu().numpy().astype(np.int64)
    explanation = Explanation(
        model_name=explainable.name,
        tokens=tuple(explainable.tokens(ids)),
        token_ids=token_ids,
        queries=queries,
        keys=keys,
        specs=specs,
        head_summaries=summaries,
        top_token_ids=top_ids,
        top_probs=top_probs,
        top_tokens=tuple(tuple(explainable.tokens(torch.from_numpy(row))) for row in top_ids),
        logit_lens=logit_lens,
        saliency=saliency_result,
        token_style=TokenStyle.of(explainable.tokenizer),
        metadata={
            "model_type": explainable.config.model_type,
            "dtype": str(hf_model.dtype).removeprefix("torch."),
            "induction_period": period,
            "induction_seed": seed,
            **({"weights": explainable.weights_note} if explainable.weights_note else {}),
        },
        summary_notes=at_length.notes,
        messages=message_spans,
        features=features,
        # attention sinks, measured in the summaries' pass (explanation/_sinks.py)
        attention_sinks=None
        if at_length.sinks is None
        else at_length.sinks.with_rule(threshold=sink_threshold),
    )
    explanation.row_normalisers.lse.update(at_length.normalisers.lse)
    explanation.row_normalisers.known.update(at_length.normalisers.known)
    if disk is not None:
        disk.owned_by(explanation)
    return explanation


def _residual_keeper(offload: bool) -> Any:
    """How the lens keeps a site's residual stream: in host memory with ``offload``, else a
    clone on the device that computed it."""
    if offload:
        return lambda hidden: hidden.to("cpu", copy=True)
    return lambda hidden: hidden.clone()


class _Steps:
    """explain's progress: its steps counted on an ``attribution`` progress bar, which
    appears only once the call has run for 2 s."""

    def __init__(self, progress: bool, *, total: int, label: str) -> None:
        self.total, self.count = total, 0
        self.bar = ProgressBar(total, label) if progress else None

    def done(self) -> None:
        self.count += 1
        if self.bar is not None:
            self.bar(self.count / self.total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _layer_devices(hf_model: Any) -> tuple[torch.device, ...]:
    """Where each decoder layer computes (one device, or several with a ``device_map``)."""
    return tuple(execution_device(layer) for layer in decoder_layers(hf_model))


def _resolve_keep(keep: str | None, offload: bool | None, devices: tuple[torch.device, ...]) -> str:
    on_cuda = any(device.type == "cuda" for device in devices)
    if offload is not None:
        if keep is not None:
            raise TypeError("pass keep= or its older spelling offload=, not both")
        keep = "gpu" if on_cuda and not offload else "cpu"
    keep = check_keep("cpu" if keep is None else keep)
    if keep == "gpu" and not on_cuda:
        raise ValueError(
            "keep='gpu' keeps queries/keys on the model's CUDA device, but this model computes "
            f"on {sorted({str(d) for d in devices})}; use keep='cpu' or keep='disk', or load "
            "the model on CUDA"
        )
    return keep


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
        # the scores read queries and keys only: no [token, vocab] logits, no cache
        hf_model(input_ids=ids, use_cache=False, logits_to_keep=1)
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
