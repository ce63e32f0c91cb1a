"""The attribution graph of one prompt: nodes, direct edges, influence, and what pruning keeps.

Node order and the adjacency convention follow circuit-tracer, so its algorithms read ours:

* nodes are laid out as ``[features..., errors..., tokens..., logits...]``;
* ``adjacency[target, source]`` is the direct effect of ``source`` on ``target`` in the local
  replacement model (attention patterns and norm scales frozen from the real run): the
  change in ``target``'s input per unit of ``source``, times ``source``'s value, so each row
  sums to the target's input (completeness; feature rows: pre-activation, error and token
  rows: empty, logit rows: the logit minus its constant part).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

NODE_KINDS = ("feature", "error", "token", "logit")
"""``AttributionGraph.node_kind`` indexes this tuple."""


@dataclass
class AttributionGraph:
    """One prompt's attribution graph (module docstring: layout and conventions).

    Attributes:
        text: the prompt.
        tokens: the prompt's tokens as display strings, one per position.
        token_ids: the prompt's token ids.
        n_layers: decoder layers of the model (logit nodes sit at layer ``n_layers``).
        node_kind: ``[N]`` index into :data:`NODE_KINDS`.
        node_layer: ``[N]`` decoder layer of a feature or error node (the transcoder it
            belongs to); ``-1`` for token nodes; ``n_layers`` for logit nodes.
        node_position: ``[N]`` token position (a logit node: the last position).
        node_index: ``[N]`` a feature's latent id, a logit's vocabulary id, ``-1`` otherwise.
        node_value: ``[N]`` a feature's activation, an error node's error-vector norm, a token
            node's embedding norm, a logit node's logit.
        logit_probabilities: ``[n_logits]`` softmax probability of each logit node's token.
        adjacency: ``[N, N]`` float32 direct effects, ``adjacency[target, source]``.
        node_influence: ``[N]`` each node's influence on the logit nodes (weighted by their
            probabilities) through every path of the graph, as circuit-tracer computes it.
        node_mask: ``[N]`` nodes kept by pruning at ``node_threshold``.
        edge_mask: ``[N, N]`` edges kept by pruning at ``edge_threshold``.
        node_threshold: cumulative-influence fraction of nodes kept.
        edge_threshold: cumulative-influence fraction of edges kept.
        model_name: the model's name or path.
        metadata: anything else worth keeping (transcoder names, target, timings).
    """

    text: str
    tokens: list[str]
    token_ids: list[int]
    n_layers: int
    node_kind: np.ndarray
    node_layer: np.ndarray
    node_position: np.ndarray
    node_index: np.ndarray
    node_value: np.ndarray
    logit_probabilities: np.ndarray
    adjacency: np.ndarray
    node_influence: np.ndarray
    node_mask: np.ndarray
    edge_mask: np.ndarray
    node_threshold: float
    edge_threshold: float
    model_name: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def n_nodes(self) -> int:
        return int(self.node_kind.shape[0])

    def nodes_of(self, kind: str) -> np.ndarray:
        """Indices of the nodes of one kind: "feature", "error", "token" or "logit"."""
        if kind not in NODE_KINDS:
            raise ValueError(f"kind must be one of {NODE_KINDS}, got {kind!r}")
        return np.flatnonzero(self.node_kind == NODE_KINDS.index(kind))

    def node_name(self, node: int) -> str:
        """A short label: ``L1 #37 @4``, ``err L1 @4``, ``tok @4 'cat'``, ``logit ' are'``."""
        kind = NODE_KINDS[int(self.node_kind[node])]
        layer, pos, index = (int(self.node_layer[node]), int(self.node_position[node]),
                             int(self.node_index[node]))  # fmt: skip
        if kind == "feature":
            return f"L{layer} #{index} @{pos}"
        if kind == "error":
            return f"err L{layer} @{pos}"
        if kind == "token":
            return f"tok @{pos} {self.tokens[pos]!r}"
        return f"logit #{index}"
