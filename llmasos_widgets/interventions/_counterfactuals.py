"""Counterfactual prompts from a template: the same target read on every fill of a slot.

``counterfactuals(model, "the {noun} near the cabinet", {"noun": [...]}, target=(" are",
" is"))`` fills the slot with each value, runs the prompts in batches (locally or on a Dask
client's workers) and reads the target on each; for a few pairs of fills it adds direct logit
attribution and attribution patching, so the gap between two fills can be located in the
model. Guide: ``docs/interventions.md`` ("Counterfactual fairness").
"""

from __future__ import annotations

import os
import string
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from llmasos_widgets.interventions._attribution_patching import attribution_patching
from llmasos_widgets.interventions._counterfactual_result import (
    CounterfactualPair,
    CounterfactualResult,
)
from llmasos_widgets.interventions._fill_values import chunk_values, fill_values
from llmasos_widgets.interventions._logit_attribution import logit_attribution
from llmasos_widgets.targets import Predicted, ResolvedTarget, TargetLike, as_target, resolve_target
from llmasos_widgets.tracing import anatomy

_TOKENIZE_CHUNK = 4096
_SEPARATOR = " | "


def _slots(template: str) -> list[str]:
    if not isinstance(template, str):
        raise TypeError(f"template must be a str, got {type(template).__name__}")
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as error:
        raise ValueError(f"template {template!r} is not a format string: {error}") from None
    for name in names:
        if not name.isidentifier():
            raise ValueError(
                f"template slot {{{name}}} must be a plain name such as {{occupation}}; "
                "write a literal brace as {{ or }}"
            )
    return list(dict.fromkeys(names))


def _fill_table(template: str, fills: Any) -> tuple[list[str], list[str], list[str]]:
    """``(slots, labels, prompts)``: one label and one prompt per fill."""
    slots = _slots(template)
    if not slots:
        raise ValueError(f"template {template!r} has no slot; write one as {{name}}")
    if isinstance(fills, Mapping):
        table = {str(k): v for k, v in fills.items()}
    elif isinstance(fills, Sequence) and not isinstance(fills, str | bytes) and len(slots) == 1:
        table = {slots[0]: fills}
    else:
        raise TypeError(
            "fills must be a dict {slot: [values]} (or, for a template with one slot, a list "
            f"of values); got {type(fills).__name__}"
        )
    missing, extra = set(slots) - set(table), set(table) - set(slots)
    if missing or extra:
        raise ValueError(
            f"template {template!r} has slots {slots}; fills name {sorted(table)}"
            + (f" (no values for {sorted(missing)})" if missing else "")
            + (f" (no slot for {sorted(extra)})" if extra else "")
        )
    columns = []
    for slot in slots:
        values = table[slot]
        if isinstance(values, str) or not isinstance(values, Sequence):
            raise TypeError(f"fills[{slot!r}] must be a list of str, got {values!r}")
        if not values:
            raise ValueError(f"fills[{slot!r}] is empty: pass at least one value")
        bad = [v for v in values if not isinstance(v, str)]
        if bad:
            raise TypeError(f"fills[{slot!r}] must hold str, got {bad[0]!r}")
        columns.append(list(values))
    lengths = {len(column) for column in columns}
    if len(lengths) > 1:
        sizes = {slot: len(column) for slot, column in zip(slots, columns, strict=True)}
        raise ValueError(f"the slots are filled together (zipped): give them equal lengths {sizes}")
    rows = list(zip(*columns, strict=True))
    labels = [_SEPARATOR.join(row) for row in rows]
    seen: set[str] = set()
    for label in labels:
        if label in seen:
            raise ValueError(f"fill {label!r} is listed twice")
        seen.add(label)
    prompts = [template.format(**dict(zip(slots, row, strict=True))) for row in rows]
    return slots, labels, prompts


def _tokenize(explainable: Any, labels: list[str], prompts: list[str]) -> list[list[int]]:
    """Token ids of each prompt as ``explainable.encode`` gives them (one tokenizer call per
    chunk); ValueError naming the fill whose prompt is empty or too long."""
    ids: list[list[int]] = []
    for start in range(0, len(prompts), _TOKENIZE_CHUNK):
        ids.extend(explainable.tokenizer(prompts[start : start + _TOKENIZE_CHUNK])["input_ids"])
    limit = explainable.max_length
    for label, prompt, row in zip(labels, prompts, ids, strict=True):
        if not prompt.strip() or not row:
            raise ValueError(f"fill {label!r} makes an empty prompt")
        if len(row) > limit:
            raise ValueError(
                f"fill {label!r} makes a prompt of {len(row)} tokens but the model takes at "
                f"most {limit}: {prompt[:60]!r}..."
            )
    return [list(row) for row in ids]


def _positions(position: int, ids: list[list[int]], labels: list[str]) -> np.ndarray:
    if isinstance(position, bool) or not isinstance(position, int):
        raise TypeError(f"position must be an int, got {type(position).__name__}")
    out = np.empty(len(ids), np.int64)
    for i, (row, label) in enumerate(zip(ids, labels, strict=True)):
        resolved = position + len(row) if position < 0 else position
        if not 0 <= resolved < len(row):
            raise ValueError(
                f"position {position} is outside the prompt of fill {label!r}, which has "
                f"{len(row)} tokens"
            )
        out[i] = resolved
    return out


def _bind(target: TargetLike, explainable: Any, position: int) -> tuple[ResolvedTarget, str, str]:
    """The target bound to token ids, its description and the score's name."""
    spec = as_target(target)
    if target is None or isinstance(spec, Predicted):
        raise ValueError(
            "counterfactuals compare one target across fills: pass target=' he' (a token's "
            "log-probability) or target=(' he', ' she') (a logit difference)"
        )
    # the ids are checked against the logits' width (the LM head's rows; the config's count
    # when the model has no head the capture layer knows)
    head = anatomy(explainable.hf_model).unembedding
    weight = getattr(head, "weight", None)
    vocab = int(weight.shape[0]) if weight is not None else explainable.config.vocab_size
    bound = resolve_target(
        spec, explainable.tokenizer, position=position, logits_at_position=torch.zeros(vocab)
    )
    where = "after the last token" if position == -1 else f"after token {position}"
    if bound.foil is not None:
        return bound, f"logit({bound.token!r}) - logit({bound.foil!r}) {where}", "logit difference"
    name, score = ("logit", "logit") if bound.score == "logit" else ("log p", "log-probability")
    return bound, f"{name}({bound.token!r}) {where}", score


def _run_values(
    explainable: Any,
    model_for_workers: Any,
    ids: list[list[int]],
    positions: np.ndarray,
    bound: ResolvedTarget,
    *,
    batch_size: int,
    client: Any,
    chunk_size: int | None,
    progress: bool,
    load_kwargs: dict[str, Any] | None,
) -> tuple[np.ndarray, dict[str, Any]]:
    from tqdm.auto import tqdm

    bar = tqdm(total=len(ids), unit="prompt", desc="counterfactuals") if progress else None
    try:
        if client is None:
            values = fill_values(
                explainable, ids, positions.tolist(), bound, batch_size=batch_size, bar=bar
            )
            return values, {}
        from llmasos_widgets._distributed import import_distributed, model_reference, n_workers

        distributed = import_distributed("counterfactuals(..., client=...)")
        if chunk_size is None:  # two tasks per worker, at most 4096 prompts each
            chunk_size = min(4096, -(-len(ids) // (2 * n_workers(client))))
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
        reference = model_reference(client, model_for_workers, load_kwargs)
        starts = range(0, len(ids), chunk_size)
        futures = [
            client.submit(
                chunk_values,
                reference,
                ids[s : s + chunk_size],
                positions[s : s + chunk_size].tolist(),
                bound,
                batch_size,
                pure=False,
            )
            for s in starts
        ]
        sizes = {
            future.key: len(ids[s : s + chunk_size])
            for future, s in zip(futures, starts, strict=True)
        }
        for future in distributed.as_completed(futures):
            if bar is not None:
                bar.update(sizes[future.key])
        chunks = client.gather(futures)  # in submission order
        return np.concatenate(chunks).astype(np.float32), {"chunks": len(futures)}
    finally:
        if bar is not None:
            bar.close()


def _pairs_to_attribute(
    attribute: Any, labels: list[str], values: np.ndarray, reference: str | None
) -> list[tuple[str, str]]:
    if attribute is None:
        return []
    if isinstance(attribute, str):
        if attribute != "extremes":
            if attribute in labels:
                raise TypeError(f"attribute takes a list of fills: did you mean [{attribute!r}]?")
            raise ValueError(f"attribute must be 'extremes', None or a list, got {attribute!r}")
        high, low = int(np.argmax(values)), int(np.argmin(values))
        return [] if values[high] == values[low] else [(labels[high], labels[low])]
    pairs = []
    for entry in attribute:
        if isinstance(entry, str):
            if reference is None:
                raise ValueError(
                    f"attribute names fill {entry!r} alone: pass reference=<fill> to pair it "
                    "with, or give pairs (clean_fill, corrupted_fill)"
                )
            entry = (entry, reference)
        if not isinstance(entry, tuple | list) or len(entry) != 2:
            raise TypeError(f"each attributed pair must be (fill, fill), got {entry!r}")
        for fill in entry:
            if fill not in labels:
                raise ValueError(f"attribute names {fill!r}, which is not one of the fills")
        if entry[0] == entry[1]:
            raise ValueError(f"attribute pairs fill {entry[0]!r} with itself")
        pairs.append((str(entry[0]), str(entry[1])))
    return pairs


def _attribute_pair(
    model: Any, pair: tuple[str, str], by_label: dict[str, tuple[str, float, int]], target: Any
) -> CounterfactualPair:
    (clean_prompt, clean_value, clean_at), (corrupted_prompt, corrupted_value, corrupted_at) = (
        by_label[pair[0]],
        by_label[pair[1]],
    )
    dla = [
        logit_attribution(model, prompt, target=target, position=at)
        for prompt, at in ((clean_prompt, clean_at), (corrupted_prompt, corrupted_at))
    ]
    atp, skipped = None, None
    if len(dla[0].tokens) != len(dla[1].tokens):  # equal counts: equal read-out positions
        skipped = (
            f"{pair[0]!r} makes {len(dla[0].tokens)} tokens and {pair[1]!r} "
            f"{len(dla[1].tokens)}: patching needs prompts of equal token count"
        )
    else:
        try:
            atp = attribution_patching(
                model, clean_prompt, corrupted_prompt, target=target, position=clean_at
            )
        except ValueError as error:  # e.g. both fills give the same value
            skipped = str(error)
    return CounterfactualPair(
        clean=pair[0],
        corrupted=pair[1],
        clean_value=clean_value,
        corrupted_value=corrupted_value,
        dla_clean=dla[0],
        dla_corrupted=dla[1],
        atp=atp,
        atp_skipped=skipped,
    )


def counterfactuals(
    model: Any,
    template: str,
    fills: Mapping[str, Sequence[str]] | Sequence[str],
    *,
    target: TargetLike,
    position: int = -1,
    reference: str | None = None,
    attribute: str | Sequence[str | tuple[str, str]] | None = "extremes",
    batch_size: int = 64,
    client: Any = None,
    chunk_size: int | None = None,
    progress: bool = True,
    tokenizer: Any = None,
    load_kwargs: dict[str, Any] | None = None,
) -> CounterfactualResult:
    """The same target read on every fill of a template, with where the gap arises.

    Args:
        model: an ``ExplainableModel``, a ``transformers`` model with ``tokenizer=``, or a
            name/path (loaded here with ``load_model(model, **load_kwargs)``; with ``client=``
            each worker loads it too, so nothing large is pickled).
        template: a format string with named slots, e.g. ``"The {occupation} said that"``.
        fills: ``{slot: [values]}``; several slots are filled together (zipped: fill ``i``
            takes the ``i``-th value of each) and labelled ``"a | b"``. For one slot a plain
            list of values also works.
        target: ``(" he", " she")`` for a logit difference (positive: the first is
            preferred), a token for its log-probability (:attr:`~CounterfactualResult.probabilities`
            gives ``p``), or ``NextToken(token, "logit")``. One token each, or ValueError.
        position: the token after which the target is read, in each prompt's own tokens
            (default -1: each prompt's last token; the prompts may differ in length).
        reference: a fill the others are compared with (``result.differences``) and paired
            with when ``attribute`` names fills alone.
        attribute: which pairs get direct logit attribution and attribution patching (an
            estimate): ``"extremes"`` (default: the largest value's fill against the
            smallest's), a list of fills (each against ``reference``) or of ``(clean,
            corrupted)`` fills, or ``None``. These run locally, a few forwards per pair, so a
            set of 10,000 fills still attributes one pair by default. A pair whose prompts
            differ in token count gets its DLA but no patching (``atp_skipped`` says why).
        batch_size: prompts per forward pass (left-padded); the values do not depend on it.
        client: a Dask ``distributed.Client``: the per-fill forwards run in chunks on its
            workers, one model replica each (``pip install 'llmasos-widgets[dask]'``).
        chunk_size: prompts per Dask task (default: two tasks per worker, at most 4096).
        progress: a tqdm bar over the prompts.
    """
    from llmasos_widgets.models import as_explainable, load_model

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    model_for_workers = model
    if isinstance(model, str | os.PathLike):
        model = load_model(model, tokenizer=tokenizer, **dict(load_kwargs or {}))
    explainable = as_explainable(model, tokenizer)
    if client is not None and not isinstance(model_for_workers, str | os.PathLike):
        model_for_workers = explainable
    slots, labels, prompts = _fill_table(template, fills)
    if reference is not None and reference not in labels:
        raise ValueError(f"reference {reference!r} is not one of the fills")
    bound, description, score = _bind(target, explainable, position)
    ids = _tokenize(explainable, labels, prompts)
    positions = _positions(position, ids, labels)
    values, run_info = _run_values(
        explainable, model_for_workers, ids, positions, bound, batch_size=batch_size,
        client=client, chunk_size=chunk_size, progress=progress, load_kwargs=load_kwargs,
    )  # fmt: skip
    pair_target: TargetLike = (
        (bound.token_id, bound.foil_id) if bound.foil_id is not None else as_target(target)
    )
    by_label = {
        label: (prompt, float(value), int(at))
        for label, prompt, value, at in zip(labels, prompts, values, positions, strict=True)
    }
    pairs = tuple(
        _attribute_pair(explainable, pair, by_label, pair_target)
        for pair in _pairs_to_attribute(attribute, labels, values, reference)
    )
    return CounterfactualResult(
        template=template,
        slots=tuple(slots),
        fills=tuple(labels),
        prompts=tuple(prompts),
        values=values,
        positions=positions,
        n_tokens=np.array([len(row) for row in ids], np.int64),
        target=description,
        score=score,
        reference=reference,
        pairs=pairs,
        metadata={
            "model": explainable.name,
            "batch_size": batch_size,
            "distributed": client is not None,
            **run_info,
        },
    )
