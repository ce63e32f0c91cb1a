"""GraphWidget of a real attribution graph (the bundled model, seeded random transcoders)
linked to an AttentionWidget in a real JupyterLab + Chromium, driven as a person would:
hovering a feature node shows its card (its activation on every token, as the kernel computes
it); clicking an edge attention carried selects the heads that move it in the attention view
and opens the q·k breakdown of that query/key pair there; dragging the slider hides nodes and
edges, exactly those the kernel's rule hides. Hostile token strings show as text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.browser._jupyter import (
    UI_STEP_S,
    JupyterServer,
    KernelClient,
    open_notebook_and_run_all,
    wait_for_widget,
    write_notebook,
)

pytestmark = pytest.mark.browser

STEP_MS = UI_STEP_S * 1000
HOSTILE = "<img/src/onerror=window.__xss=1>"  # no spaces: the label marks them (␣)
TEXT = "the keys to the cabinet are"

CELL = f"""\
import dataclasses

import torch
import llmasos_widgets as lw
from llmasos_widgets import graphs
from llmasos_widgets.features import Transcoder, TranscoderConfig

model = lw.load_model("tiny-llama", device="cpu")
hidden = model.config.hidden_size
torch.manual_seed(0)
transcoders = [
    Transcoder(TranscoderConfig(d_in=hidden, d_transcoder=64, d_out=hidden, layer=layer,
                                activation="topk", k=4))
    for layer in range(model.config.num_hidden_layers)
]
graph = lw.attribution_graph(model, transcoders, {TEXT!r}, node_threshold=0.9)  # keeps 2 features
graph_view = lw.GraphWidget(graph, model, transcoders)
attention = lw.AttentionWidget(model, {TEXT!r})
selection = lw.link_selection(graph_view, attention)
hostile = lw.GraphWidget(dataclasses.replace(graph, tokens=[{HOSTILE!r}] * len(graph.tokens)))
display(graph_view, attention, hostile)
"""


def _card_values(kernel: KernelClient, node: int) -> list[float]:
    return kernel.evaluate(
        f"graphs.FeatureCards(model, transcoders, graph).card({node})['activations']"
    )


def test_hover_card_attention_edge_to_qk_pair_and_slider(
    jupyter_server: JupyterServer, page: Any, output_dir: Path
) -> None:
    from playwright.sync_api import expect

    name = "graph_linked.ipynb"
    write_notebook(jupyter_server.root_dir, name, [CELL])
    kernel_id = open_notebook_and_run_all(page, jupyter_server, f"/lab/tree/{name}")
    wait_for_widget(page, jupyter_server, "graph-widget")
    attention_view = wait_for_widget(page, jupyter_server, "attention-widget")
    views = page.get_by_test_id("graph-widget")
    expect(views).to_have_count(2, timeout=STEP_MS)
    view, hostile = views.nth(0), views.nth(1)
    kernel = KernelClient.connect(jupyter_server, kernel_id)
    try:
        # 0. hostile tokens are text: no element made, no script run
        expect(hostile.get_by_test_id("graph-token-0")).to_have_text(HOSTILE, timeout=STEP_MS)
        expect(hostile.locator("img")).to_have_count(0)

        # 1. hover a feature node: its card shows its activation on every token
        node = kernel.evaluate(
            "int(max((n for n in graph_view.shown()[0] if graph.node_kind[n] == 0), "
            "key=lambda n: graph.node_influence[n]))"
        )
        view.get_by_test_id(f"node-{node}").hover()
        card = view.get_by_test_id("node-card")
        expect(card).to_have_attribute("data-node", str(node), timeout=STEP_MS)
        values = _card_values(kernel, node)
        for position, value in enumerate(values):
            shown = card.get_by_test_id(f"card-token-{position}")
            assert float(shown.get_attribute("data-activation")) == pytest.approx(
                value, rel=1e-2, abs=1e-3
            )
        kernel.wait_for(
            "attention.hovered_token", lambda v: v == kernel.evaluate(
                f"int(graph.node_position[{node}])"), what="the linked hovered token"
        )  # fmt: skip

        # 2. click an edge attention carried: the top heads and the q·k pair in the attention view
        source, target = kernel.evaluate(
            "max(([int(s), int(t)] for s, t in graph_view.shown()[1] "
            "if graph.node_position[s] != graph.node_position[t]), "
            "key=lambda e: abs(graph.adjacency[e[1], e[0]]))"
        )
        view.get_by_test_id(f"edge-hit-{source}-{target}").click()
        expected = kernel.evaluate(
            f"(lambda r, m: [int(r.layers[m.argmax()]), sorted(int(h) for l, h, v in "
            f"zip(r.layers, r.heads, m) if l == r.layers[m.argmax()] and v >= 0.5 * m.max()), "
            f"[int(r.query_position), int(r.key_position)]])"
            f"(*(lambda r: (r, abs(r.across_positions)))"
            f"(graphs.edge_heads(model, transcoders, graph, {source}, {target})))"
        )  # the heads moving most of the edge between its two positions
        layer, heads, cell = expected
        kernel.wait_for(
            "[attention.selected_layer, attention.selected_heads, attention.selected_cell]",
            lambda v: v == expected,
            what="the attention widget's layer, heads and cell after clicking the edge",
        )
        panel = attention_view.get_by_test_id("qk-panel")
        expect(panel).to_be_visible(timeout=STEP_MS)
        expect(panel).to_have_attribute("data-query", str(cell[0]), timeout=STEP_MS)
        expect(panel).to_have_attribute("data-key", str(cell[1]))
        for head in heads:
            expect(panel.get_by_test_id(f"qk-head-{head}")).to_be_visible()
        expect(view.get_by_test_id("edge-heads")).to_have_attribute(
            "data-edge", f"{source}-{target}"
        )
        assert heads and layer >= 0
        view.screenshot(path=str(output_dir / "graph_widget.png"))

        # 3. drag the slider left: fewer edges, exactly those the kernel's rule keeps
        counts = view.get_by_test_id("graph-counts")
        before = int(counts.get_attribute("data-edges"))
        slider = view.get_by_test_id("node-threshold")
        box = slider.bounding_box()
        assert box is not None
        y = box["y"] + box["height"] / 2
        page.mouse.move(box["x"] + box["width"] - 2, y)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.35, y, steps=8)
        page.mouse.up()
        threshold = kernel.wait_for(
            "graph_view.node_threshold", lambda v: v < 0.6, what="the slider's threshold"
        )
        nodes, edges = kernel.evaluate("[len(graph_view.shown()[0]), len(graph_view.shown()[1])]")
        expect(counts).to_have_attribute("data-edges", str(edges), timeout=STEP_MS)
        expect(counts).to_have_attribute("data-nodes", str(nodes))
        assert edges < before, (threshold, edges, before)
        expect(view.locator("line[data-shown='true']")).to_have_count(edges)
        expect(view.locator("circle[data-shown='true']")).to_have_count(nodes)
        assert page.evaluate("window.__xss") is None
    finally:
        kernel.close()
