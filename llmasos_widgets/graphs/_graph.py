"""The attribution graph of one prompt: nodes, direct edges, influence, and what pruning keeps.

Node order and the adjacency convention follow circuit-tracer, so its algorithms read ours:

* nodes are laid out as ``[features..., errors..., tokens..., logits...]``;
* ``adjacency[target, source]`` is the direct effect of ``source`` on ``target`` in the local
  replacement model (attention patterns and norm scales frozen from the real run): the
  change in ``target``'s input per unit of ``source``, times ``source``'s value, so each row
  sums to the target's input less the part no node supplies: ``adjacency.sum(1) +
  node_constant == node_input`` (completeness; feature rows: the pre-activation, whose
  constant part is the encoder bias plus the decoder and attention biases carried along the
  frozen paths; logit rows: the logit minus the mean logit; error and token rows: empty).

A source's value is the vector it writes into the residual stream: a feature its activation
times its decoder row (at its layer's MLP output), an error node the MLP's output minus the
transcoder's prediction there, a token node its embedding. Sources at every position are
nodes, the first (BOS) included: circuit-tracer drops the BOS position's features and error,
which breaks completeness there.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
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
        node_constant: ``[N]`` the part of each node's input that no node supplies: what it
            would be with every node's value at zero (encoder bias, the transcoders' decoder
            biases and attention biases carried along the frozen paths); 0 for error and
            token nodes. ``adjacency.sum(1) + node_constant == node_input`` (completeness).
        logit_mean: the mean of the last position's logits over the vocabulary. Logit nodes
            read their token's unembedding row minus the mean row (circuit-tracer's
            demeaned logits: softmax ignores a shift shared by every logit), so a logit
            node's input is its logit minus this.
        node_cumulative: float64 ``[N]`` each node's cumulative influence fraction (nodes
            sorted by influence, largest first; 0 for nodes without influence): the node
            step of pruning keeps the nodes up to ``node_threshold``.
        edge_scores: float32 ``[N, N]`` each edge's influence score after the node step at
            ``node_threshold``; the edge step keeps the largest up to ``edge_threshold``.
            With ``node_cumulative`` it lets a view re-prune without the kernel
            (:meth:`reprune`).
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
    node_constant: np.ndarray | None = None
    logit_mean: float = 0.0
    node_cumulative: np.ndarray | None = None
    edge_scores: np.ndarray | None = None

    @property
    def node_input(self) -> np.ndarray:
        """``[N]`` what each node's incoming edges add up to with :attr:`node_constant`: a
        feature's pre-activation (its activation: an active feature's activation equals its
        pre-activation), a logit node's logit minus :attr:`logit_mean`, 0 for error and token
        nodes (they have no incoming edges)."""
        kind = self.node_kind
        inputs = np.where(kind == 0, self.node_value, 0.0)
        return np.where(kind == 3, self.node_value - self.logit_mean, inputs).astype(np.float64)

    @property
    def logit_weights(self) -> np.ndarray:
        """float32 ``[N]``: the logit nodes' probabilities scaled to sum to 1 (equal weights if
        all underflow), 0 elsewhere: the weights influence is measured against."""
        weights = np.zeros(self.n_nodes, dtype=np.float32)
        logits = self.nodes_of("logit")
        probabilities = np.asarray(self.logit_probabilities, dtype=np.float64)
        total = probabilities.sum()
        share = probabilities / total if total > 0 else np.full(len(logits), 1 / len(logits))
        weights[logits] = share
        return weights

    def reprune(
        self, node_threshold: float, edge_threshold: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(node_mask, edge_mask)`` at other thresholds from the stored scores alone, as a
        view's slider computes them (graphs/_pruning.py: the edge scores are those after the
        node step at this graph's ``node_threshold``; :meth:`pruned` recomputes them)."""
        from llmasos_widgets.graphs._pruning import masks_from_scores

        if self.node_cumulative is None or self.edge_scores is None:
            raise ValueError("this graph keeps no pruning scores; use pruned() instead")
        return masks_from_scores(
            self.node_cumulative, self.edge_scores, self.node_kind, node_threshold,
            edge_threshold,
        )  # fmt: skip

    def pruned(self, node_threshold: float, edge_threshold: float) -> AttributionGraph:
        """A copy pruned afresh at these thresholds (influence, scores and masks recomputed)."""
        from llmasos_widgets.graphs._pruning import prune

        result = prune(
            self.adjacency, self.logit_weights, self.node_kind, node_threshold, edge_threshold
        )
        return replace(
            self,
            node_influence=result.node_influence,
            node_mask=result.node_mask,
            edge_mask=result.edge_mask,
            node_cumulative=result.node_cumulative,
            edge_scores=result.edge_scores,
            node_threshold=float(node_threshold),
            edge_threshold=float(edge_threshold),
        )

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
