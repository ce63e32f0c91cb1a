"""``generate()``: let the model write, then explain prompt + completion as one Explanation.

The tokens come from ``transformers``' own ``generate`` (greedy unless ``do_sample=True``),
with the scores it chose each token from. Everything else is read afterwards from the whole
sequence at once, given as token ids (never re-tokenized from text): attention, summaries and
lens from one forward (``explain``), which causality makes equal to the per-step patterns
(tests/integration/test_generate.py), and the target-side saliency matrix from batched passes
(``attribution/_saliency_matrix.py``).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from llmasos_widgets._gather import execution_device
from llmasos_widgets._hooks import borrowed_hooks
from llmasos_widgets.explanation._chat import chat_input, generated_span
from llmasos_widgets.explanation._explain import explain
from llmasos_widgets.explanation._generation import Generation
from llmasos_widgets.explanation._lens import LENS_CHUNK_BYTES
from llmasos_widgets.tracing import anatomy

if TYPE_CHECKING:
    from llmasos_widgets.explanation._explanation import Explanation
    from llmasos_widgets.models import ExplainableModel

# Arguments generate() sets itself: the caller's value would change what is reported.
_OWN_ARGUMENTS = ("output_scores", "return_dict_in_generate", "output_logits", "input_ids")
_ONE_SEQUENCE = ("num_beams", "num_return_sequences")


def generate(
    model: ExplainableModel | Any,
    prompt: str | None = None,
    max_new_tokens: int = 20,
    *,
    messages: list[dict[str, str]] | None = None,
    saliency_method: str | None = "gradient",
    top_k: int = 5,
    seed: int = 0,
    tokenizer: Any = None,
    **generate_kwargs: Any,
) -> Explanation:
    """Generate up to ``max_new_tokens`` tokens after ``prompt`` and explain the whole sequence.

    Greedy by default; ``do_sample=True`` (with ``temperature``, ``top_p``, ...) samples,
    seeded by ``seed`` (the global torch RNG is left as it was). Other ``generate_kwargs`` go
    to ``transformers``' ``generate`` (one sequence: no beams). Generation stops early at the
    end-of-sequence token. ``messages=[{"role": ..., "content": ...}, ...]`` (instead of
    ``prompt``) is a conversation for a chat model: the prompt is the tokenizer's chat template
    with its generation prompt, so the model writes the assistant's turn, and
    ``Explanation.messages`` holds each message's span plus the generated turn (docs/chat.md).

    Returns an :class:`Explanation` of prompt + completion whose ``generation`` holds
    ``prompt_length``, each generated token's probability and ``top_k`` alternatives at its
    step (from the distribution it was chosen from: after temperature and top-k/top-p when
    sampling), the model's ``P(token | prefix)`` for every token, and with ``saliency_method``
    (any registered method, ``None`` to skip) the ``[generated, site, token]`` saliency of
    each generated token's log-probability. ``explanation.saliency`` is the last generated
    token's row.
    """
    from llmasos_widgets.attribution import get_method
    from llmasos_widgets.models import as_explainable

    explainable = as_explainable(model, tokenizer)
    _check_arguments(max_new_tokens, top_k, generate_kwargs)
    if saliency_method is not None:
        get_method(saliency_method)  # unknown names fail here, before any work
    prompt, message_spans = chat_input(explainable, prompt, messages, add_generation_prompt=True)
    ids = prompt if isinstance(prompt, torch.Tensor) else explainable.encode(prompt)
    if ids.shape[1] + max_new_tokens > explainable.max_length:
        raise ValueError(
            f"the prompt is {ids.shape[1]} tokens and max_new_tokens={max_new_tokens}, but "
            f"{explainable.name} takes at most {explainable.max_length} tokens; shorten the "
            f"prompt or ask for at most {explainable.max_length - ids.shape[1]} new tokens"
        )
    do_sample = bool(generate_kwargs.get("do_sample", False))
    generate_kwargs.setdefault("do_sample", False)
    sequence, scores = _run_generate(explainable, ids, max_new_tokens, seed, generate_kwargs)
    prompt_length = int(ids.shape[1])
    generated = sequence[prompt_length:]

    # [generated, vocab] in host memory (the scores are on the model's device)
    probabilities = torch.stack([step[0].float().softmax(-1) for step in scores]).cpu()
    rows = torch.arange(len(generated))
    step_probabilities = probabilities[rows, generated.cpu()].numpy().astype(np.float32)
    top = probabilities.topk(min(top_k, probabilities.shape[-1]), dim=-1)
    alternative_ids = top.indices.numpy().astype(np.int64)

    explanation = explain(explainable, sequence, saliency=False, top_k=top_k, seed=seed)
    matrix = None
    if saliency_method is not None:
        from llmasos_widgets.attribution import attribute_generation

        matrix = attribute_generation(explainable, sequence, prompt_length, method=saliency_method)
    settings = {
        key: value
        for key, value in generate_kwargs.items()
        if isinstance(value, bool | int | float | str | None)
    }
    settings.update(do_sample=do_sample, seed=seed, max_new_tokens=max_new_tokens)
    generation = Generation(
        prompt_length=prompt_length,
        token_probabilities=sequence_probabilities(explainable, sequence),
        step_probabilities=step_probabilities,
        alternative_ids=alternative_ids,
        alternative_probs=top.values.numpy().astype(np.float32),
        alternative_tokens=tuple(
            tuple(explainable.tokens(torch.from_numpy(row))) for row in alternative_ids
        ),
        settings=settings,
        saliency=matrix,
    )
    return dataclasses.replace(
        explanation,
        saliency=None if matrix is None else matrix.row(-1),
        generation=generation,
        messages=generated_span(message_spans, len(sequence)) if message_spans else (),
    )


def _check_arguments(max_new_tokens: int, top_k: int, generate_kwargs: dict[str, Any]) -> None:
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int):
        raise TypeError(f"max_new_tokens must be an int, got {type(max_new_tokens).__name__}")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k must be a positive int, got {top_k!r}")
    for name in _OWN_ARGUMENTS:
        if name in generate_kwargs:
            raise ValueError(f"{name} is set by llmasos_widgets.generate itself; leave it out")
    for name in _ONE_SEQUENCE:
        if generate_kwargs.get(name, 1) != 1:
            raise ValueError(
                f"{name}={generate_kwargs[name]} asks for several sequences; generate explains "
                f"one (loop over seeds with do_sample=True for several samples)"
            )


def _run_generate(
    explainable: ExplainableModel,
    ids: torch.Tensor,
    max_new_tokens: int,
    seed: int,
    generate_kwargs: dict[str, Any],
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """``transformers``' generate on one prompt: the ``[token]`` sequence and each step's
    ``[1, vocab]`` processed scores. The RNG is seeded inside a fork, so the caller's global
    torch RNG state is unchanged."""
    run: Any = explainable.hf_model.generate  # typed loosely by transformers
    tokenizer = explainable.tokenizer
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    devices = [ids.device] if ids.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.manual_seed(seed)
        out = run(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new_tokens,
            pad_token_id=pad,
            output_scores=True,
            return_dict_in_generate=True,
            **generate_kwargs,
        )
    return out.sequences[0].detach(), tuple(out.scores)


def sequence_probabilities(explainable: ExplainableModel, sequence: torch.Tensor) -> np.ndarray:
    """float32 ``[token]``: the model's ``P(token | prefix)`` for every token of ``sequence``
    (``-1.0`` for the first), from one no-grad forward; the head is read a few tokens at a
    time, so no ``[token, vocab]`` logits are kept."""
    hf_model = explainable.hf_model
    parts = anatomy(hf_model)
    ids = sequence.reshape(1, -1).to(explainable.device)
    out = np.full(ids.shape[1], -1.0, dtype=np.float32)
    vocab = int(explainable.config.vocab_size)
    chunk = max(1, LENS_CHUNK_BYTES // (4 * vocab))
    if parts.unembedding is None:
        raise TypeError(f"{type(hf_model).__name__} has no LM head: it cannot generate")
    head_device = execution_device(parts.unembedding)  # with a device_map: the head's device

    def read(hidden: torch.Tensor) -> None:
        following = ids[0, 1:]
        for start in range(0, ids.shape[1] - 1, chunk):
            stop = min(start + chunk, ids.shape[1] - 1)
            logits = parts.head(hidden[0, start:stop].to(head_device)).float()
            rows = torch.arange(stop - start, device=logits.device)
            chosen = logits.softmax(-1)[rows, following[start:stop].to(logits.device)]
            out[start + 1 : stop + 1] = chosen.cpu().numpy()

    with borrowed_hooks() as hooks, torch.no_grad():
        parts.read_site(hooks, parts.n_sites - 1, read)
        hf_model(input_ids=ids, use_cache=False, logits_to_keep=1)
    return out
