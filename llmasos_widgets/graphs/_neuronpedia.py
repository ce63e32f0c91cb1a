"""An :class:`AttributionGraph` as the JSON Neuronpedia's graph viewer reads.

The format is Neuronpedia's published ``apps/webapp/app/api/graph/graph-schema.json`` (draft-07;
vendored in tests/data/neuronpedia/ and validated there), the shape circuit-tracer's
``circuit_tracer/utils/create_graph_files.py`` writes with the models of
``circuit_tracer/frontend/graph_models.py``. We follow circuit-tracer's node ids and fields:

* feature ``"{layer}_{latent}_{pos}"`` (``feature_type`` "cross layer transcoder", the viewer's
  name for any transcoder feature), token ``"E_{token_id}_{pos}"``, logit
  ``"{n_layers + 1}_{token_id}_{pos}"``;
* error nodes ``"{layer}_error_{pos}"`` as Neuronpedia's own converter names them
  (``apps/graph/neuronpedia_graph/format_converter.py``): circuit-tracer's ``"0_{layer}_{pos}"``
  can equal a layer-0 feature's id;
* ``influence`` is circuit-tracer's cumulative influence score (the viewer hides a node whose
  score is above its pruning slider; 0 for a node without influence, where circuit-tracer
  writes 1.0: only tokens and logits can be kept without influence, and they always show),
  ``activation`` a feature's activation;
* nodes are those pruning kept, links the kept edges between them; a feature or error node
  left without a link is dropped, tokens and logits always stay (as circuit-tracer does).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from llmasos_widgets.graphs._graph import NODE_KINDS, AttributionGraph
from llmasos_widgets.graphs._pruning import cumulative_influence

GENERATOR = "llmasos-widgets"


def process_token(token: str) -> str:
    """circuit-tracer's ``frontend/utils.py::process_token``: line breaks and tabs as glyphs."""
    return token.replace("\n", "⏎").replace("\t", "→").replace("\r", "↵")


def node_ids(graph: AttributionGraph) -> list[str]:
    """Each node's Neuronpedia ``node_id`` (module docstring), in the graph's node order."""
    ids = []
    for node in range(graph.n_nodes):
        kind = NODE_KINDS[int(graph.node_kind[node])]
        layer, pos = int(graph.node_layer[node]), int(graph.node_position[node])
        index = int(graph.node_index[node])
        if kind == "feature":
            ids.append(f"{layer}_{index}_{pos}")
        elif kind == "error":
            ids.append(f"{layer}_error_{pos}")
        elif kind == "token":
            ids.append(f"E_{graph.token_ids[pos]}_{pos}")
        else:
            ids.append(f"{graph.n_layers + 1}_{index}_{pos}")
    return ids


def to_neuronpedia_json(
    graph: AttributionGraph,
    *,
    slug: str = "",
    scan: str = "",
    logit_tokens: list[str] | None = None,
    d_transcoder: int | None = None,
    path: str | Path | None = None,
) -> dict[str, Any]:
    """The graph as Neuronpedia's graph JSON (module docstring: ids and fields).

    Args:
        slug: the graph's name in the viewer (default: from the prompt).
        scan: the model id Neuronpedia files it under (default: ``graph.model_name``).
        logit_tokens: each logit node's token as text, for its label (default:
            ``graph.metadata["logit_tokens"]``, else ``#<id>``).
        d_transcoder: latents per transcoder; given, a feature's ``feature`` number is
            ``latent + 10**ceil(log10(d_transcoder)) * layer`` (circuit-tracer's global index),
            else the latent id.
        path: also write the JSON there (UTF-8).
    """
    if not isinstance(graph, AttributionGraph):
        raise TypeError(f"graph must be an AttributionGraph, got {type(graph).__name__}")
    logits = graph.nodes_of("logit")
    labels = logit_tokens if logit_tokens is not None else graph.metadata.get("logit_tokens")
    if labels is None:
        labels = [f"#{int(graph.node_index[n])}" for n in logits]
    if len(labels) != len(logits):
        raise ValueError(f"logit_tokens has {len(labels)} strings for {len(logits)} logit nodes")
    if d_transcoder is not None and d_transcoder < 1:
        raise ValueError(f"d_transcoder must be positive, got {d_transcoder}")
    offset = 10 ** math.ceil(math.log10(d_transcoder)) if d_transcoder else 0
    ids = node_ids(graph)
    scores = cumulative_influence(graph.node_influence)
    logit_rank = {int(n): i for i, n in enumerate(logits)}

    targets, sources = np.nonzero(graph.edge_mask & graph.node_mask[:, None] & graph.node_mask)
    links = [
        {"source": ids[s], "target": ids[t], "weight": float(graph.adjacency[t, s])}
        for t, s in zip(targets.tolist(), sources.tolist(), strict=True)
    ]
    linked = set(sources.tolist()) | set(targets.tolist())
    nodes = []
    for node in np.flatnonzero(graph.node_mask).tolist():
        kind = NODE_KINDS[int(graph.node_kind[node])]
        if kind in ("feature", "error") and node not in linked:
            continue
        nodes.append(
            _node(graph, node, kind, ids[node], float(scores[node]), offset, labels, logit_rank)
        )
    metadata: dict[str, Any] = {
        "slug": slug or _slug(graph.text),
        "scan": scan or graph.model_name or "unknown",
        "prompt_tokens": [process_token(t) for t in graph.tokens],
        "prompt": graph.text,
        "node_threshold": float(graph.node_threshold),
        "info": {
            "generator": {"name": GENERATOR},
            "create_time_ms": time.time() * 1000,
        },
        "pruning_settings": {
            "node_threshold": float(graph.node_threshold),
            "edge_threshold": float(graph.edge_threshold),
        },
    }
    out = {
        "metadata": metadata,
        "qParams": {
            "pinnedIds": [],
            "supernodes": [],
            "linkType": "both",
            "clickedId": "",
            "sg_pos": "",
        },
        "nodes": nodes,
        "links": links,
    }
    if path is not None:
        Path(path).write_text(json.dumps(out, ensure_ascii=False), encoding="utf-8")
    return out


def _node(
    graph: AttributionGraph,
    node: int,
    kind: str,
    node_id: str,
    influence: float,
    offset: int,
    labels: list[str],
    logit_rank: dict[int, int],
) -> dict[str, Any]:
    layer, pos, index = (
        int(graph.node_layer[node]),
        int(graph.node_position[node]),
        int(graph.node_index[node]),
    )
    out: dict[str, Any] = {"node_id": node_id, "ctx_idx": pos, "clerp": "", "influence": influence}
    if kind == "feature":
        out |= {
            "feature": index + offset * layer,
            "layer": str(layer),
            "feature_type": "cross layer transcoder",
            "jsNodeId": f"{layer}_{index}-0",
            "activation": float(graph.node_value[node]),
        }
    elif kind == "error":
        out |= {
            "feature": -1,
            "layer": str(layer),
            "feature_type": "mlp reconstruction error",
            "jsNodeId": f"{layer}_{pos}-0",
        }
    elif kind == "token":
        token_id = graph.token_ids[pos]
        out |= {
            "feature": pos,
            "layer": "E",
            "feature_type": "embedding",
            "jsNodeId": f"E_{token_id}-{pos}",
        }
    else:
        rank = logit_rank[node]
        probability = float(graph.logit_probabilities[rank])
        out |= {
            "feature": index,
            "layer": str(graph.n_layers + 1),
            "feature_type": "logit",
            "jsNodeId": f"L_{index}-{pos}",
            "token_prob": probability,
            "is_target_logit": rank == 0,
            "clerp": f'Output "{process_token(labels[rank])}" (p={probability:.3f})',
        }
        del out["influence"]  # circuit-tracer's logit nodes carry none: always shown
    return out


def _slug(text: str) -> str:
    words = "".join(c if c.isalnum() else "-" for c in text.lower()).split("-")
    return "-".join(w for w in words if w)[:60] or "graph"
