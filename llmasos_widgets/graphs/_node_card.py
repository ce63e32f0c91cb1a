"""What the graph view's card shows for a transcoder feature node: the feature's activation on
every token of the prompt and the tokens its decoder direction promotes and suppresses.

One forward over the graph's token ids reads what every transcoder reads (the capture layer's
``read_mlp_pair``: the MLP's input, or the residual before the pre-MLP norm for
``input_site="resid_mid"``); the activations then cost one encode per card. Logit effects are
the model's head (final norm, unembedding) on the decoder direction, as ``features`` reads an
SAE latent's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from llmasos_widgets._hooks import borrowed_hooks
from llmasos_widgets.graphs._graph import NODE_KINDS, AttributionGraph
from llmasos_widgets.tracing import anatomy, eval_mode

EFFECT_TOKENS = 8
"""Promoted and suppressed tokens listed per feature."""


def transcoders_by_layer(transcoders: Sequence[Any] | Mapping[int, Any]) -> dict[int, Any]:
    """``{layer: transcoder}`` from a sequence (each knows its ``layer``) or a mapping."""
    items = transcoders.values() if isinstance(transcoders, Mapping) else transcoders
    out: dict[int, Any] = {}
    for transcoder in items:
        layer = getattr(transcoder, "layer", None)
        if not isinstance(layer, int) or not hasattr(transcoder, "encode"):
            raise TypeError(
                f"transcoders must be Transcoder objects, got {type(transcoder).__name__}"
            )
        if layer in out:
            raise ValueError(f"two transcoders replace layer {layer}'s MLP; pass one per layer")
        out[layer] = transcoder
    return out


class FeatureCards:
    """Cards of one graph's feature nodes, from ``model`` and its ``transcoders``.

    The MLP inputs are read on the first card asked for and kept (``[token, hidden]`` per
    transcoder layer: small at the prompt lengths graphs are built for).
    """

    def __init__(self, model: Any, transcoders: Any, graph: AttributionGraph) -> None:
        self._model = model
        self._transcoders = transcoders_by_layer(transcoders)
        self._graph = graph
        self._inputs: dict[int, torch.Tensor] | None = None

    def card(self, node: int) -> dict[str, Any]:
        """``{"activations": [T] floats, "promoted": [[token, logit], ...], "suppressed":
        [...]}`` of feature node ``node``; ``ValueError`` for another kind of node."""
        graph = self._graph
        if not 0 <= node < graph.n_nodes:
            raise ValueError(f"node {node} is out of range: the graph has {graph.n_nodes} nodes")
        kind = NODE_KINDS[int(graph.node_kind[node])]
        if kind != "feature":
            raise ValueError(f"node {node} is a {kind} node; cards are for feature nodes")
        layer, latent = int(graph.node_layer[node]), int(graph.node_index[node])
        transcoder = self._transcoders.get(layer)
        if transcoder is None:
            raise ValueError(f"no transcoder for layer {layer} was given")
        with torch.no_grad():
            x = self._mlp_inputs()[layer]
            acts = transcoder.encode(x.to(transcoder.W_enc.device))[:, latent]
            direction = transcoder.direction(latent)
            parts = anatomy(self._model.hf_model)
            weight = parts.unembedding.weight if parts.unembedding is not None else direction
            logits = parts.head(direction.to(device=weight.device, dtype=weight.dtype)).float()
        k = min(EFFECT_TOKENS, int(logits.shape[-1]))
        high, low = logits.topk(k), logits.topk(k, largest=False)
        return {
            "activations": [float(v) for v in acts.float().cpu()],
            "promoted": self._pairs(high.indices, high.values),
            "suppressed": self._pairs(low.indices, low.values),
        }

    def _pairs(self, ids: torch.Tensor, values: torch.Tensor) -> list[list[Any]]:
        decode = self._model.tokenizer.decode
        return [[decode([int(i)]), round(float(v), 4)] for i, v in zip(ids, values, strict=True)]

    def _mlp_inputs(self) -> dict[int, torch.Tensor]:
        if self._inputs is None:
            parts = anatomy(self._model.hf_model)
            inputs: dict[int, torch.Tensor] = {}
            ids = torch.tensor([self._graph.token_ids], device=self._model.device)
            with borrowed_hooks() as hooks, eval_mode(parts.model), torch.no_grad():
                for layer, transcoder in self._transcoders.items():
                    # what the transcoder reads: the MLP's input, or the residual before the
                    # pre-MLP norm (input_site="resid_mid")
                    pre_norm = getattr(transcoder.config, "input_site", "mlp_in") == "resid_mid"

                    def read(x: torch.Tensor, _out: Any, layer: int = layer) -> None:
                        inputs[layer] = x[0].detach()

                    parts.read_mlp_pair(hooks, layer, read, pre_norm=pre_norm)
                parts.model(input_ids=ids)
            self._inputs = inputs
        return self._inputs


def node_summary(graph: AttributionGraph, node: int) -> dict[str, Any]:
    """What the graph itself says of a node: kind, layer, position, index, value, influence."""
    return {
        "node": int(node),
        "kind": NODE_KINDS[int(graph.node_kind[node])],
        "layer": int(graph.node_layer[node]),
        "position": int(graph.node_position[node]),
        "index": int(graph.node_index[node]),
        "value": float(graph.node_value[node]),
        "influence": float(graph.node_influence[node]),
        "name": graph.node_name(node),
    }
