"""``attribution_graph``: one prompt's attribution graph over per-layer transcoders.

The steps follow circuit-tracer's ``attribute``: one real forward pass, frozen (:mod:`._frozen`);
the active features, error vectors and token embeddings as source nodes (:mod:`._nodes`); the
logit nodes, chosen by cumulative probability (or given); rows of direct effects from batched
transpose passes through the frozen linear map (:mod:`._linear`), first for the logits, then
for the features -- all of them, or with ``max_features`` the most influential ones found so
far, re-ranked every few batches; then pruning (:mod:`._pruning`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from llmasos_widgets.features import Transcoder
from llmasos_widgets.graphs._frozen import FrozenRun, freeze_run
from llmasos_widgets.graphs._graph import AttributionGraph
from llmasos_widgets.graphs._linear import ReplacementSystem, _bias, _weight
from llmasos_widgets.graphs._nodes import Features, Sources, mean_unembedding, read_features
from llmasos_widgets.graphs._pruning import normalized, prune
from llmasos_widgets.targets import NextToken, Predicted, TargetLike, as_target, resolve_token
from llmasos_widgets.tracing import Anatomy, anatomy

RANKING_INTERVAL = 4
"""With ``max_features``: batches computed between two rankings of the pending features."""


def check_transcoders(transcoders: Any, parts: Anatomy, hidden_size: int) -> list[Transcoder]:
    """One :class:`Transcoder` per decoder layer, layer ``i`` at index ``i``, or an error."""
    if isinstance(transcoders, Mapping) or not isinstance(
        transcoders, Sequence | torch.nn.ModuleList
    ):
        raise TypeError(
            "transcoders must be a sequence with one Transcoder per layer (layer i at index i), "
            f"got {type(transcoders).__name__}"
        )
    found = list(transcoders)
    if len(found) != parts.n_layers:
        raise ValueError(
            f"the model has {parts.n_layers} layers but {len(found)} transcoders were given: "
            "the local replacement model replaces every MLP, so it needs one per layer"
        )
    for layer, transcoder in enumerate(found):
        if not isinstance(transcoder, Transcoder):
            raise TypeError(
                f"transcoders[{layer}] is {type(transcoder).__name__}, not a Transcoder: every "
                "layer needs one (a missing layer cannot be replaced)"
            )
        config = transcoder.config
        if config.layer != layer:
            raise ValueError(
                f"transcoders[{layer}] replaces layer {config.layer}'s MLP; put layer i's "
                "transcoder at index i"
            )
        if config.d_in != hidden_size or config.d_out != hidden_size:
            raise ValueError(
                f"transcoders[{layer}] maps {config.d_in} -> {config.d_out} numbers but the "
                f"model's MLPs map {hidden_size} -> {hidden_size}: it was trained on another "
                f"model ({config.model_name or 'not recorded'!r})"
            )
    return found


def _check_options(
    max_logits: int, logit_probability: float, max_features: int | None, batch_size: int
) -> None:
    for name, value in (("max_logits", max_logits), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if max_features is not None and (
        isinstance(max_features, bool) or not isinstance(max_features, int) or max_features < 0
    ):
        raise ValueError(f"max_features must be None or an int >= 0, got {max_features!r}")
    if not 0 < logit_probability <= 1:
        raise ValueError(f"logit_probability must be in (0, 1], got {logit_probability!r}")


def choose_logits(
    target: TargetLike | list[str | int],
    tokenizer: Any,
    logits: torch.Tensor,
    max_logits: int,
    logit_probability: float,
) -> torch.Tensor:
    """Vocabulary ids of the logit nodes: the most probable tokens until their probability
    reaches ``logit_probability`` (at most ``max_logits``), or the token(s) of ``target``."""
    vocab = int(logits.shape[0])
    if isinstance(target, list):
        if not target:
            raise ValueError("target=[] names no token; pass None for the most probable ones")
        named = [resolve_token(tokenizer, token, vocab) for token in target]
        if len(set(named)) != len(named):
            raise ValueError(f"target names a token twice: {target!r}")
        return torch.tensor(named, dtype=torch.long)
    if target is not None:
        spec = as_target(target)
        if isinstance(spec, NextToken):
            return torch.tensor([resolve_token(tokenizer, spec.token, vocab)])
        if isinstance(spec, Predicted):
            return torch.argmax(logits).reshape(1).cpu()
        raise ValueError(
            "a graph's logit nodes are single tokens, not a contrast; pass a list "
            "[token, foil] to get both as logit nodes"
        )
    probabilities = torch.softmax(logits.float(), dim=-1)
    top, ids = torch.topk(probabilities, min(max_logits, vocab))
    count = int(torch.searchsorted(torch.cumsum(top, 0), logit_probability)) + 1
    return ids[: min(count, len(ids))].cpu()


def _in_batches(count: int, size: int) -> list[slice]:
    return [slice(start, min(start + size, count)) for start in range(0, count, size)]


def _feature_rows(
    system: ReplacementSystem,
    sources: Sources,
    features: Features,
    logit_rows: torch.Tensor,
    logit_weights: torch.Tensor,
    budget: int,
    batch_size: int,
) -> tuple[np.ndarray, torch.Tensor]:
    """``(features visited, in ascending order; their rows)``."""
    rows = torch.zeros(budget, sources.n_columns, device=logit_rows.device)
    order: list[np.ndarray] = []
    visited = np.zeros(len(features), dtype=bool)
    done = 0
    while done < budget:
        if budget == len(features):
            pending = np.arange(len(features))
        else:  # rank the unvisited features by their influence through the rows so far
            matrix = normalized(torch.cat([logit_rows, rows[:done]]))
            state = torch.zeros(sources.n_columns + len(logit_weights), device=rows.device)
            state[sources.n_columns :] = logit_weights
            row_nodes = torch.from_numpy(
                np.concatenate([np.arange(len(logit_weights)) + sources.n_columns, *order])
                if order
                else np.arange(len(logit_weights)) + sources.n_columns
            ).to(rows.device)
            scores = _partial_influence(matrix, state, row_nodes, sources.n_columns)
            ranked = np.argsort(-scores[: len(features)].cpu().numpy(), kind="stable")
            size = min(RANKING_INTERVAL * batch_size, budget - done)
            pending = ranked[~visited[ranked]][:size]
        for chunk in _in_batches(len(pending), batch_size):
            picked = np.sort(pending[chunk])
            rows[done : done + len(picked)] = sources.rows(
                system,
                torch.from_numpy(features.layer[picked]),
                torch.from_numpy(features.position[picked]),
                features.encoder[torch.from_numpy(picked).to(features.encoder.device)],
            )
            visited[picked] = True
            order.append(picked)
            done += len(picked)
    visit_order = np.concatenate(order) if order else np.zeros(0, dtype=np.int64)
    ascending = np.argsort(visit_order, kind="stable")
    return visit_order[ascending], rows[torch.from_numpy(ascending).to(rows.device)]


def _partial_influence(
    matrix: torch.Tensor, state: torch.Tensor, row_nodes: torch.Tensor, n_columns: int
) -> torch.Tensor:
    """Influence on the logits through the rows computed so far (circuit-tracer's
    ``compute_partial_influences``): ``state`` holds the logit weights past ``n_columns``."""
    total = torch.zeros(n_columns, device=matrix.device)
    for _ in range(1000):
        step = state[row_nodes] @ matrix
        if not bool(step.any()):
            return total
        total += step
        state = torch.cat([step, torch.zeros(len(state) - n_columns, device=matrix.device)])
    raise RuntimeError("partial influence did not converge")


@dataclass(frozen=True, eq=False)
class _Logits:
    """The logit nodes: vocabulary ids, read-out vectors (unembedding row minus the mean row),
    probabilities, influence weights (probabilities scaled to sum to 1) and the part of each
    logit (minus the mean logit) that the unembedding's bias supplies."""

    ids: torch.Tensor
    vectors: torch.Tensor
    probabilities: torch.Tensor
    weights: torch.Tensor
    bias: torch.Tensor

    @classmethod
    def of(cls, parts: Anatomy, ids: torch.Tensor, run: FrozenRun) -> _Logits:
        unembedding = _weight(parts.unembedding)
        device = run.logits.device
        mean = mean_unembedding(unembedding).to(device)
        vectors = unembedding[ids.to(unembedding.device)].float().to(device) - mean
        probabilities = torch.softmax(run.logits, dim=-1)[ids.to(device)].cpu()
        weights = probabilities.double() / probabilities.double().sum()
        if not bool(torch.isfinite(weights).all()):  # every probability underflowed
            weights = torch.full((len(ids),), 1 / len(ids), dtype=torch.float64)
        bias = _bias(parts.unembedding)
        shift = torch.zeros(len(ids), device=device)
        if bias is not None:
            shift = bias.to(device)[ids.to(device)] - bias.to(device).mean()
        return cls(ids.cpu(), vectors, probabilities, weights.float(), shift)


def _constants(
    system: ReplacementSystem,
    run: FrozenRun,
    transcoders: Sequence[Transcoder],
    features: Features,
    kept: np.ndarray,
    logits: _Logits,
) -> np.ndarray:
    """float32 ``[N]``: each node's input with every node at zero (only the biases act)."""
    device = run.embeddings.device
    shape = run.embeddings.shape
    writes = [tc.b_dec.detach().float().to(device).expand(shape) for tc in transcoders]
    mlp_inputs, final = system.forward(torch.zeros(shape, device=device), writes, biases=True)
    stacked = torch.stack(mlp_inputs)  # [layer, T, d]
    picked = torch.from_numpy(kept).to(device)
    at = stacked[torch.from_numpy(features.layer[kept]), torch.from_numpy(features.position[kept])]
    feature = (at * features.encoder[picked]).sum(-1) + features.encoder_bias[picked]
    logit = logits.vectors @ final[-1] + logits.bias
    n_others = (system.n_layers + 1) * run.n_tokens
    return np.concatenate([feature.cpu().numpy(), np.zeros(n_others), logit.cpu().numpy()]).astype(
        np.float32
    )


def _node_table(
    features: Features, kept: np.ndarray, n_layers: int, n_tokens: int, logit_ids: np.ndarray
) -> dict[str, np.ndarray]:
    """``node_kind``, ``node_layer``, ``node_position``, ``node_index`` in graph order."""
    positions = np.arange(n_tokens)
    n_logits, n_errors = len(logit_ids), n_layers * n_tokens
    columns = {
        "node_kind": [np.zeros(len(kept)), np.full(n_errors, 1), np.full(n_tokens, 2),
                      np.full(n_logits, 3)],
        "node_layer": [features.layer[kept], np.repeat(np.arange(n_layers), n_tokens),
                       np.full(n_tokens, -1), np.full(n_logits, n_layers)],
        "node_position": [features.position[kept], np.tile(positions, n_layers), positions,
                          np.full(n_logits, n_tokens - 1)],
        "node_index": [features.latent[kept], np.full(n_errors + n_tokens, -1), logit_ids],
    }  # fmt: skip
    return {name: np.concatenate(parts).astype(np.int64) for name, parts in columns.items()}


def attribution_graph(
    model: Any,
    transcoders: Sequence[Transcoder],
    text: str,
    target: TargetLike | list[str | int] = None,
    *,
    max_logits: int = 10,
    logit_probability: float = 0.95,
    node_threshold: float = 0.8,
    edge_threshold: float = 0.98,
    max_features: int | None = None,
    batch_size: int = 64,
    tokenizer: Any = None,
) -> AttributionGraph:
    """The attribution graph of ``text``'s next token in the local replacement model.

    Every MLP is replaced by its transcoder (``transcoders[i]`` replaces layer ``i``'s; all
    layers are needed), plus one error node per (layer, position) holding what the
    transcoder misses; attention patterns and norm scales are frozen from the real run, so
    the model is linear in the node values and an edge is a direct effect (module docstring
    of graphs/_graph.py for the layout).

    Args:
        model: an ``ExplainableModel`` (or a transformers model with ``tokenizer=``).
        transcoders: one :class:`~llmasos_widgets.features.Transcoder` per layer.
        text: the prompt; the graph explains the logits at its last position.
        target: ``None``: the most probable tokens up to ``logit_probability`` of the
            probability (at most ``max_logits``); a token (string or id), ``NextToken`` or
            ``Predicted``: that one logit; a list of tokens: those logits.
        node_threshold, edge_threshold: pruning (graphs/_pruning.py).
        max_features: keep only this many feature nodes, the most influential found by
            re-ranking as rows come in (circuit-tracer's ``max_feature_nodes``); ``None``: all.
            Rows then omit the dropped features, so they no longer add up to their inputs.
        batch_size: targets per transpose pass (memory ``~ batch_size * T * d`` floats).
    """
    from llmasos_widgets.models import as_explainable

    _check_options(max_logits, logit_probability, max_features, batch_size)
    started = time.perf_counter()
    explainable = as_explainable(model, tokenizer)
    parts = anatomy(explainable.hf_model)
    if parts.logit_softcap:
        raise ValueError("the local replacement model needs logits without final soft-capping")
    if parts.unembedding is None:
        raise TypeError(f"{type(parts.model).__name__} has no LM head (unembedding)")
    tcs = check_transcoders(transcoders, parts, int(explainable.config.hidden_size))
    ids = explainable.encode(text)
    run = freeze_run(parts, ids)
    system = ReplacementSystem(parts, run, tcs)
    features, errors = read_features(run, tcs)
    sources = Sources(features, errors, run.embeddings)
    n_layers, n_tokens = parts.n_layers, run.n_tokens
    frozen_at = time.perf_counter()

    chosen = choose_logits(target, explainable.tokenizer, run.logits, max_logits, logit_probability)
    logits = _Logits.of(parts, chosen, run)
    logit_rows = torch.cat([
        sources.rows(system, torch.full((len(part),), n_layers),
                     torch.full((len(part),), n_tokens - 1), part)
        for part in logits.vectors.split(batch_size)
    ])  # fmt: skip
    budget = len(features) if max_features is None else min(max_features, len(features))
    kept, feature_rows = _feature_rows(
        system, sources, features, logit_rows, logits.weights.to(logit_rows.device), budget,
        batch_size,
    )  # fmt: skip
    rows_at = time.perf_counter()

    # columns: the kept features, then every error and token node
    columns = torch.from_numpy(np.concatenate([kept, np.arange(len(features), sources.n_columns)]))
    n_nodes = len(columns) + len(chosen)
    adjacency = np.zeros((n_nodes, n_nodes), dtype=np.float32)
    adjacency[: len(kept), : len(columns)] = feature_rows[:, columns].cpu().numpy()
    adjacency[len(columns) :, : len(columns)] = logit_rows[:, columns].cpu().numpy()
    table = _node_table(features, kept, n_layers, n_tokens, logits.ids.numpy())
    logit_weights = np.zeros(n_nodes, dtype=np.float32)
    logit_weights[len(columns) :] = logits.weights.numpy()
    pruning = prune(adjacency, logit_weights, table["node_kind"], node_threshold, edge_threshold)
    values = [
        features.activation[kept],
        errors.norm(dim=-1).reshape(-1).cpu().numpy(),
        run.embeddings.norm(dim=-1).cpu().numpy(),
        run.logits[chosen].cpu().numpy(),
    ]
    done_at = time.perf_counter()
    return AttributionGraph(
        text=text,
        tokens=explainable.tokens(ids),
        token_ids=[int(i) for i in ids[0].tolist()],
        n_layers=n_layers,
        **table,
        node_value=np.concatenate(values).astype(np.float32),
        logit_probabilities=logits.probabilities.numpy().astype(np.float32),
        adjacency=adjacency,
        node_influence=pruning.node_influence,
        node_mask=pruning.node_mask,
        edge_mask=pruning.edge_mask,
        node_threshold=float(node_threshold),
        edge_threshold=float(edge_threshold),
        model_name=explainable.name,
        metadata={
            "active_features": len(features),
            "max_features": max_features,
            "batch_size": batch_size,
            "seconds": {
                "forward": frozen_at - started,
                "rows": rows_at - frozen_at,
                "pruning": done_at - rows_at,
            },
        },
        node_constant=_constants(system, run, tcs, features, kept, logits),
        logit_mean=float(run.logits.double().mean()),
        node_cumulative=pruning.node_cumulative,
        edge_scores=pruning.edge_scores,
    )
