"""Which attention heads carry an edge of an attribution graph.

An edge ``source -> target`` is a sum over paths through the frozen linear map (graphs/
_linear.py). Every path crosses each attention layer between the source's write and the
target's read either along the residual connection or through exactly one head's OV circuit
(value projection, the frozen pattern, output projection). So for each such layer ``l`` and
head ``h``, the *part of the edge through* ``(l, h)`` is exact and well defined::

    part(l, h) = sum over query t, key u of  pattern_lh[t, u] * g_l[t] . W_O,h W_V,h norm_l(s_l[u])

with ``s_l`` the source's own contribution to what layer ``l`` receives (the map run forward
from the source alone) and ``g_l`` the target's gradient at layer ``l``'s attention output
(the map run backward from the target alone). Per layer, the heads' parts plus the residual
path add up to the edge. A path through heads of two layers is counted in both layers.

``across_positions`` is the share of each part carried by cells with ``t != u``: information
moved from one token to another. An edge between two nodes at the same position moves
nothing across positions (information flows forward only, so a path that leaves the
position can never come back), and its ``across_positions`` are zero; an edge between
positions crosses them through some head.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from llmasos_widgets.features import Transcoder
from llmasos_widgets.graphs._attribute import check_transcoders
from llmasos_widgets.graphs._frozen import freeze_run
from llmasos_widgets.graphs._graph import NODE_KINDS, AttributionGraph
from llmasos_widgets.graphs._linear import ReplacementSystem, _weight
from llmasos_widgets.graphs._nodes import mean_unembedding
from llmasos_widgets.tracing import anatomy


@dataclass(frozen=True, kw_only=True)
class EdgeHeads:
    """The part of one edge carried through each attention head (module docstring).

    Attributes:
        source, target: the edge's node indices in the graph.
        layers, heads: ``int64 [n]`` each head, for every layer the edge crosses (after the
            source's write, up to and including the target's read), sorted by ``|values|``
            descending.
        values: ``float32 [n]`` the part of the edge through that head.
        across_positions: ``float32 [n]`` of each value, the part moved between positions
            (pattern cells with query != key).
        total: the edge itself (``graph.adjacency[target, source]`` to float rounding).
        query_position: the target's position (where the moved information arrives).
        key_position: the source's position (where it is read from).
    """

    source: int
    target: int
    layers: np.ndarray
    heads: np.ndarray
    values: np.ndarray
    across_positions: np.ndarray
    total: float
    query_position: int
    key_position: int

    def __repr__(self) -> str:
        top = ", ".join(
            f"L{layer}H{head} {value:+.3g}"
            for layer, head, value in zip(
                self.layers[:3], self.heads[:3], self.values[:3], strict=False
            )
        )
        return f"EdgeHeads({self.source} -> {self.target}: {self.total:+.4g}; {top})"


def _check_edge(graph: AttributionGraph, source: int, target: int) -> None:
    for name, node in (("source", source), ("target", target)):
        if isinstance(node, bool) or not isinstance(node, int | np.integer):
            raise TypeError(f"{name} must be a node index (int), got {type(node).__name__}")
        if not 0 <= node < graph.n_nodes:
            raise ValueError(f"{name} {node} is not a node: the graph has {graph.n_nodes}")
    if NODE_KINDS[int(graph.node_kind[source])] == "logit":
        raise ValueError(f"source {source} is a logit node: logits have no outgoing edges")
    if NODE_KINDS[int(graph.node_kind[target])] in ("error", "token"):
        kind = NODE_KINDS[int(graph.node_kind[target])]
        raise ValueError(f"target {target} is a {kind} node: it has no incoming edges")


def edge_heads(
    model: Any,
    transcoders: Sequence[Transcoder],
    graph: AttributionGraph,
    source: int,
    target: int,
    *,
    tokenizer: Any = None,
) -> EdgeHeads:
    """Split ``graph``'s edge ``source -> target`` by attention head (module docstring).

    Runs the model once more on ``graph.text`` to freeze the same patterns and scales; the
    model and transcoders must be the ones the graph was built with.
    """
    from llmasos_widgets.models import as_explainable

    _check_edge(graph, source, target)
    explainable = as_explainable(model, tokenizer)
    parts = anatomy(explainable.hf_model)
    tcs = check_transcoders(transcoders, parts, int(explainable.config.hidden_size))
    ids = explainable.encode(graph.text)
    if [int(i) for i in ids[0].tolist()] != list(graph.token_ids):
        raise ValueError(
            "graph.text tokenizes differently here: this graph was built with another model"
        )
    run = freeze_run(parts, ids)
    system = ReplacementSystem(parts, run, tcs)
    n_layers, device = parts.n_layers, system.device

    kind = NODE_KINDS[int(graph.node_kind[source])]
    layer, position = int(graph.node_layer[source]), int(graph.node_position[source])
    embeddings = torch.zeros_like(run.embeddings)
    writes = [torch.zeros_like(run.embeddings) for _ in range(n_layers)]
    if kind == "token":
        embeddings[position] = run.embeddings[position]
        written, site = embeddings[position], -1
    else:
        transcoder = tcs[layer]
        if kind == "feature":
            row = transcoder.W_dec.detach()[int(graph.node_index[source])].float().to(device)
            written = row * float(graph.node_value[source])
        else:
            x = run.transcoder_input(layer, system.reads_normed[layer])[position : position + 1]
            x = x.to(transcoder.W_enc.device)
            with torch.no_grad():
                predicted = transcoder(x)[0].float().to(device)
            written = run.mlp_outputs[layer][position] - predicted
        writes[layer][position] = written
        site = layer
    residuals: list[torch.Tensor] = []
    system.forward(embeddings, writes, biases=False, residuals=residuals)

    target_kind = NODE_KINDS[int(graph.node_kind[target])]
    read_layer, read_position = int(graph.node_layer[target]), int(graph.node_position[target])
    if target_kind == "feature":
        encoder = tcs[read_layer].W_enc.detach()[:, int(graph.node_index[target])]
        vector = encoder.float().to(device)
    else:
        unembedding = _weight(parts.unembedding)
        vector = unembedding[int(graph.node_index[target])].float().to(device)
        vector = vector - mean_unembedding(unembedding).to(device)
    at_attention: dict[int, torch.Tensor] = {}
    total = [0.0]

    def read(at: int, grad: torch.Tensor) -> None:
        if at == site and position < grad.shape[1]:
            total[0] = float(grad[0, position] @ written)

    def read_attention(at: int, grad: torch.Tensor) -> None:
        at_attention[at] = grad[0]

    system.backward(
        torch.tensor([read_layer]), torch.tensor([read_position]), vector[None], read,
        read_attention,
    )  # fmt: skip

    found_layers, found_heads, values, across = [], [], [], []
    for at in sorted(at_attention):
        if at <= site:
            continue  # the source is written after this layer's attention
        grad = at_attention[at]
        n = grad.shape[0]
        pattern = run.patterns[at][:, :n, :n]
        head_values = system.head_values(
            at, run.attention_norms[at].apply(residuals[at][:n]), biases=False
        )  # [key, head, head_dim]
        head_grads = (grad @ system.output_weight(at)).unflatten(-1, (system.n_heads, -1))
        mixed = torch.einsum("htu,uhd->thd", pattern, head_values)
        part = (head_grads * mixed).sum((0, 2))
        diagonal = torch.diagonal(pattern, dim1=1, dim2=2)  # [head, position]
        same = (diagonal.T * (head_grads * head_values).sum(-1)).sum(0)
        found_layers.append(np.full(system.n_heads, at))
        found_heads.append(np.arange(system.n_heads))
        values.append(part.cpu().numpy())
        across.append((part - same).cpu().numpy())
    values_all = np.concatenate(values).astype(np.float32) if values else np.zeros(0, np.float32)
    order = np.argsort(-np.abs(values_all), kind="stable")
    return EdgeHeads(
        source=int(source),
        target=int(target),
        layers=(np.concatenate(found_layers) if values else np.zeros(0))[order].astype(np.int64),
        heads=(np.concatenate(found_heads) if values else np.zeros(0))[order].astype(np.int64),
        values=values_all[order],
        across_positions=(np.concatenate(across) if values else np.zeros(0))[order].astype(
            np.float32
        ),
        total=total[0],
        query_position=read_position,
        key_position=position,
    )
