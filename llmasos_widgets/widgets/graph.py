"""GraphWidget: an attribution graph in the notebook, linked to the attention views.

Front end: ``js/src/graph.ts`` (built to ``static/graph.js``). Nodes sit by layer (tokens at
the bottom, logits on top) and position, sized by influence; edges are drawn by weight (width
and opacity by size, colour by sign); a slider re-prunes in the browser
(``widgets/_graph_view.py`` has the rule and what travels).

Linking (``link_selection(graph_widget, attention_widget)``):

* a node under the pointer shows its card (``focused_node`` -> ``card``; a feature's activation
  on every token and its logit effects when the widget has the model and transcoders) and
  sets ``hovered_token``; a click pins it and selects its token, and a feature's or error
  node's layer;
* a click on an edge between two positions (attention carried it) asks
  :func:`~llmasos_widgets.graphs.edge_heads` which heads carry it, selects the layer of the
  head that moves most of it between the two positions (``across_positions``) and the heads
  of that layer moving at least half as much, selects
  ``selected_cell = [query, key]`` (an AttentionWidget then shows that pair's q·k breakdown)
  and the query token.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import traitlets

from llmasos_widgets.widgets._base import STATIC_DIR, TokensWidget, tensor_payload
from llmasos_widgets.widgets._graph_view import edge_table, node_table, visible_at

HEAD_SHARE = 0.5
"""A head in the top head's layer is selected with the top one when it moves at least this
fraction of what the top head moves between positions (``EdgeHeads.across_positions``)."""
EDGE_HEADS_SHOWN = 8


class GraphWidget(TokensWidget):
    """An :class:`~llmasos_widgets.graphs.AttributionGraph` (module docstring: what it shows).

    ``GraphWidget(graph, model=None, transcoders=None)``: with the model (and the transcoders
    the graph was built with) a feature's card lists its activation on every token and its
    logit effects, and a click on an attention-carried edge finds the heads that carry it.
    """

    _esm = STATIC_DIR / "graph.js"
    _dropped_on_close = ("_graph", "_model", "_transcoders", "_cards")

    n_layers = traitlets.Int(0, read_only=True).tag(sync=True)
    """int, read-only: decoder layers (logits sit at row ``n_layers``)."""

    nodes = traitlets.Dict(read_only=True).tag(sync=True)
    """dict, read-only: float32 ``[n, 8]`` payload of the kept nodes
    (``_graph_view.NODE_COLUMNS``)."""

    edges = traitlets.Dict(read_only=True).tag(sync=True)
    """dict, read-only: float32 ``[m, 3]`` payload of the kept edges (source row, target row,
    weight), weakest first."""

    logit_labels = traitlets.List(traitlets.Unicode(), read_only=True).tag(sync=True)
    """list[str], read-only: each logit node's token as text (shown as text)."""

    max_node_threshold = traitlets.Float(1.0, read_only=True).tag(sync=True)
    """float, read-only: the graph's own ``node_threshold`` (the slider's top: nodes pruned in
    the kernel are not sent)."""

    node_threshold = traitlets.Float(1.0).tag(sync=True)
    """float, default the graph's ``node_threshold``: the slider; nodes ranked past this
    cumulative-influence share are hidden (in the browser)."""

    focused_node = traitlets.Int(-1).tag(sync=True)
    """int, default -1: graph index of the node whose card is shown (hovered, else the pinned
    ``selected_node``); -1 = none."""

    selected_node = traitlets.Int(-1).tag(sync=True)
    """int, default -1: graph index of the clicked (pinned) node; -1 = none."""

    card = traitlets.Dict(read_only=True).tag(sync=True)
    """dict, read-only: the focused node's card, ``{}`` when none: ``{"node", "kind", "layer",
    "position", "index", "value", "influence", "name"}`` plus, for a feature with the model,
    ``"activations"`` (one per token), ``"promoted"`` and ``"suppressed"`` (``[token,
    logit]`` pairs); ``"note"`` says why something is missing."""

    selected_edge = traitlets.List(traitlets.Int(), default_value=[]).tag(sync=True)
    """list[int], default []: ``[source, target]`` graph indices of the clicked edge."""

    edge_heads = traitlets.Dict(read_only=True).tag(sync=True)
    """dict, read-only: for the selected edge, ``{"source", "target", "query", "key",
    "layers", "heads", "values", "across", "total", "selected"}`` (the heads carrying it, the
    most moved between positions first; ``selected``: ``[layer, head]`` pairs selected) or
    ``{"source", "target", "note"}``; ``{}`` when none is selected."""

    selected_cell = traitlets.List(traitlets.Int(), default_value=[]).tag(sync=True)
    """list[int], default []: ``[query, key]`` of the selected attention-carried edge; links
    to an AttentionWidget's ``selected_cell`` (its q·k breakdown)."""

    def __init__(
        self, graph: Any, model: Any = None, transcoders: Any = None, **kwargs: Any
    ) -> None:
        from llmasos_widgets.graphs import AttributionGraph

        if not isinstance(graph, AttributionGraph):
            raise TypeError(
                f"GraphWidget shows an AttributionGraph, got {type(graph).__name__}; build one "
                "with lw.attribution_graph(model, transcoders, text)"
            )
        if transcoders is not None and model is None:
            raise TypeError(
                "transcoders= needs the model too: GraphWidget(graph, model, transcoders)"
            )
        self._graph = graph
        self._model = model
        self._transcoders = transcoders
        self._cards: Any = None
        heads = int(model.config.num_attention_heads) if model is not None else None
        self._dims = {"layers": graph.n_layers, "heads": heads, "tokens": len(graph.tokens)}
        super().__init__(**kwargs)
        self._show_tokens(graph.tokens, None)
        self.set_trait("n_layers", graph.n_layers)
        self.set_trait("nodes", tensor_payload(node_table(graph)))
        self.set_trait("edges", tensor_payload(edge_table(graph)))
        self.set_trait("logit_labels", self._logit_labels())
        self.set_trait("max_node_threshold", float(graph.node_threshold))
        if "node_threshold" not in kwargs:
            self.node_threshold = float(graph.node_threshold)

    @property
    def graph(self) -> Any:
        """The AttributionGraph shown (``None`` after :meth:`close`)."""
        return self._graph

    def shown(self) -> tuple[np.ndarray, np.ndarray]:
        """Graph indices of the nodes shown at ``node_threshold``, and ``[k, 2]`` ``(source,
        target)`` graph indices of the edges shown: what the browser draws."""
        nodes, edges = node_table(self._graph), edge_table(self._graph)
        node_shown, edge_shown = visible_at(nodes, edges, self.node_threshold)
        index = nodes[:, 0].astype(np.int64)
        pairs = edges[edge_shown][:, :2].astype(np.int64)
        return index[node_shown], index[pairs].reshape(-1, 2)

    def to_neuronpedia(self, path: str | Path | None = None, **kwargs: Any) -> dict[str, Any]:
        """The graph as Neuronpedia's graph JSON (:func:`~llmasos_widgets.graphs.
        to_neuronpedia_json`), its logit labels from this widget; written to ``path`` if given."""
        from llmasos_widgets.graphs import to_neuronpedia_json

        kwargs.setdefault("logit_tokens", list(self.logit_labels))
        kwargs.setdefault("scan", getattr(self._model, "name", "") or self._graph.model_name)
        return to_neuronpedia_json(self._graph, path=path, **kwargs)

    # --- validation -------------------------------------------------------------------------

    @traitlets.validate("node_threshold")
    def _check_threshold(self, proposal: dict[str, Any]) -> float:
        value = float(proposal["value"])
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"node_threshold={value} must be within 0..1 (a share of influence)")
        return value

    @traitlets.validate("focused_node", "selected_node")
    def _check_node(self, proposal: dict[str, Any]) -> int:
        node = int(proposal["value"])
        n = self._graph.n_nodes
        if not -1 <= node < n:
            raise ValueError(f"node {node} is out of range: use 0..{n - 1}, or -1 for none")
        return node

    @traitlets.validate("selected_edge")
    def _check_edge(self, proposal: dict[str, Any]) -> list[int]:
        edge = [int(v) for v in proposal["value"]]
        n = self._graph.n_nodes
        if edge and (len(edge) != 2 or not all(0 <= v < n for v in edge)):
            raise ValueError(f"selected_edge={edge} must be [] or [source, target] in 0..{n - 1}")
        return edge

    @traitlets.validate("selected_cell")
    def _check_cell(self, proposal: dict[str, Any]) -> list[int]:
        cell = [int(v) for v in proposal["value"]]
        n = len(self._graph.tokens)
        if cell and (len(cell) != 2 or not all(0 <= v < n for v in cell)):
            raise ValueError(f"selected_cell={cell} must be [] or [query, key] in 0..{n - 1}")
        return cell

    # --- what a hover or click asks of the kernel --------------------------------------------

    @traitlets.observe("focused_node")
    def _on_focus(self, change: dict[str, Any]) -> None:
        node = int(change["new"])
        self.set_trait("card", {} if node < 0 or self._graph is None else self._card(node))

    @traitlets.observe("selected_node")
    def _on_select(self, change: dict[str, Any]) -> None:
        node = int(change["new"])
        if node < 0 or self._graph is None:
            return
        from llmasos_widgets.graphs import NODE_KINDS

        graph = self._graph
        self.selected_tokens = [int(graph.node_position[node])]
        if NODE_KINDS[int(graph.node_kind[node])] in ("feature", "error"):
            self.selected_layer = int(graph.node_layer[node])
        self.focused_node = node

    @traitlets.observe("selected_edge")
    def _on_edge(self, change: dict[str, Any]) -> None:
        edge = list(change["new"])
        if not edge or self._graph is None:
            self.set_trait("edge_heads", {})
            return
        source, target = edge
        graph = self._graph
        info: dict[str, Any] = {"source": source, "target": target}
        key, query = int(graph.node_position[source]), int(graph.node_position[target])
        if key == query:
            info["note"] = "source and target share a position: no attention head carries it"
        elif self._model is None or self._transcoders is None:
            info["note"] = "pass the model and transcoders to find the heads that carry it"
        else:
            info |= self._heads(source, target)
        self.set_trait("edge_heads", info)
        selected = info.get("selected")
        if selected:
            self.selected_layer = int(selected[0][0])
            self.selected_heads = [int(head) for _, head in selected]
            self.selected_cell = [int(info["query"]), int(info["key"])]
            self.selected_tokens = [int(info["query"])]

    def _heads(self, source: int, target: int) -> dict[str, Any]:
        from llmasos_widgets.graphs import edge_heads

        try:
            result = edge_heads(self._model, self._transcoders, self._graph, source, target)
        except ValueError as error:  # e.g. another model's graph: say so, select nothing
            return {"note": str(error)}
        layers = np.asarray(result.layers).astype(int)
        heads = np.asarray(result.heads).astype(int)
        values = np.asarray(result.values, dtype=np.float64)
        moved = np.abs(np.asarray(result.across_positions, dtype=np.float64))
        order = np.argsort(-moved, kind="stable")  # the heads that move it between positions
        selected: list[list[int]] = []
        if len(order) and moved[order[0]] > 0:
            top = order[0]
            selected = [
                [int(layers[i]), int(heads[i])]
                for i in order
                if layers[i] == layers[top] and moved[i] >= HEAD_SHARE * moved[top]
            ]
        shown = order[:EDGE_HEADS_SHOWN]
        return {
            "query": int(result.query_position),
            "key": int(result.key_position),
            "layers": layers[shown].tolist(),
            "heads": heads[shown].tolist(),
            "values": [float(v) for v in values[shown]],
            "across": [float(v) for v in np.asarray(result.across_positions)[shown]],
            "total": float(result.total),
            "selected": selected,
        }

    def _card(self, node: int) -> dict[str, Any]:
        from llmasos_widgets.graphs import FeatureCards, node_summary

        card = node_summary(self._graph, node)
        if card["kind"] == "logit":
            logits = np.flatnonzero(self._graph.node_kind == self._graph.node_kind[node]).tolist()
            rank = logits.index(node)
            card["label"] = self.logit_labels[rank]
            card["probability"] = float(self._graph.logit_probabilities[rank])
        if card["kind"] != "feature":
            return card
        if self._model is None or self._transcoders is None:
            card["note"] = "pass the model and transcoders for its activations and logit effects"
            return card
        if self._cards is None:
            self._cards = FeatureCards(self._model, self._transcoders, self._graph)
        try:
            return card | self._cards.card(node)
        except ValueError as error:  # e.g. no transcoder for its layer: say so on the card
            return card | {"note": str(error)}

    def _logit_labels(self) -> list[str]:
        graph = self._graph
        logits = graph.nodes_of("logit")
        stored = graph.metadata.get("logit_tokens")
        if stored is not None and len(stored) == len(logits):
            return [str(t) for t in stored]
        tokenizer = getattr(self._model, "tokenizer", None)
        if tokenizer is not None:
            return [tokenizer.decode([int(graph.node_index[n])]) for n in logits]
        return [f"#{int(graph.node_index[n])}" for n in logits]
