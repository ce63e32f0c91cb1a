// GraphWidget front end (Python half: llmasos_widgets/widgets/graph.py).
// An attribution graph as SVG (a pruned graph has at most a few hundred nodes and a few
// thousand edges, the size SVG handles and exports well): nodes by layer (tokens at the bottom,
// logits on top) × position, sized by influence; edges by weight (width/opacity by size,
// colour by sign). The slider re-prunes here (lib/graph_view.ts visibleAt), without the
// kernel. Hovering a node asks for its card (debounced), clicking pins it and selects its
// token and layer; clicking an edge between two positions asks the kernel for the heads that
// carry it. Every string is set as text, never as HTML.
//
// Stable DOM hooks for browser tests:
//   div.llmw-graph[data-testid="graph-widget"]
//     input[data-testid="node-threshold"] (range)  span[data-testid="graph-counts"][data-nodes][data-edges]
//     svg[data-testid="graph-svg"][data-figure="graph"]
//       line[data-testid="edge-<source>-<target>"][data-weight][data-shown]   (graph indices)
//       line[data-testid="edge-hit-<source>-<target>"]    (click target of attention edges)
//       circle[data-testid="node-<i>"][data-kind][data-shown]
//       text[data-testid="graph-token-<p>"]  text[data-testid="logit-label-<k>"]
//     div[data-testid="node-card"][data-node][hidden] > span[data-testid="card-token-<p>"][data-activation]
//     div[data-testid="edge-heads"][data-edge][hidden]

import type { RenderProps } from "@anywidget/types";
import { type TensorPayload, decodeTensor } from "./lib/buffers";
import { listenerScope } from "./lib/dom";
import { formatActivation } from "./lib/feature_data";
import { attachFigureExport } from "./lib/figures";
import { type GraphEdge, type GraphNode, edgeStroke, layoutGraph, nodeLabel, readEdges, readNodes, visibleAt } from "./lib/graph_view";
import { type SelectionState, debounce } from "./lib/selection";
import { tokenChip } from "./lib/token_chip";
import { shownTokens, tokenLabel } from "./lib/token_text";

interface Card {
  node?: number;
  kind?: string;
  layer?: number;
  position?: number;
  index?: number;
  value?: number;
  influence?: number;
  name?: string;
  label?: string;
  probability?: number;
  activations?: number[];
  promoted?: [string, number][];
  suppressed?: [string, number][];
  note?: string;
}

interface EdgeHeads {
  source?: number;
  target?: number;
  query?: number;
  key?: number;
  layers?: number[];
  heads?: number[];
  values?: number[];
  across?: number[];
  total?: number;
  selected?: [number, number][];
  note?: string;
}

/** Traits of llmasos_widgets/widgets/graph.py (GraphWidget), same names. */
export interface GraphModel extends SelectionState {
  tokens: string[];
  display_tokens: string[];
  token_kinds: string[];
  n_layers: number;
  nodes: TensorPayload;
  edges: TensorPayload;
  logit_labels: string[];
  max_node_threshold: number;
  node_threshold: number;
  focused_node: number;
  selected_node: number;
  card: Card;
  selected_edge: number[];
  edge_heads: EdgeHeads;
  selected_cell: number[];
}

const SVG_NS = "http://www.w3.org/2000/svg";
const KIND_FILL: Record<string, string> = { feature: "#f2b950", error: "#b9bec5", token: "#7fa7d6", logit: "#7fc28f" };
const HOVER_MS = 120;
const LOGIT_LABEL_CHARS = 8; // longer logit tokens are cut in the label (the node's title has all)

function svgElement<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number> = {}): SVGElementTagNameMap[K] {
  const element = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) element.setAttribute(name, String(value));
  return element;
}

function div(testid?: string, text?: string): HTMLDivElement {
  const node = document.createElement("div");
  if (testid) node.dataset.testid = testid;
  if (text !== undefined) node.textContent = text;
  return node;
}

function render({ model, el }: RenderProps<GraphModel>): () => void {
  const root = div("graph-widget");
  root.className = "llmw-graph";
  Object.assign(root.style, { fontFamily: "var(--jp-ui-font-family, system-ui, sans-serif)", fontSize: "12px" });
  el.appendChild(root);
  const { cleanups, on, listen } = listenerScope(model);

  const controls = div();
  const sliderLabel = document.createElement("label");
  sliderLabel.textContent = "node threshold (cumulative influence) ";
  const slider = document.createElement("input");
  slider.type = "range";
  slider.dataset.testid = "node-threshold";
  slider.step = "0.01";
  slider.min = "0.01";
  const sliderValue = document.createElement("span");
  const counts = document.createElement("span");
  counts.dataset.testid = "graph-counts";
  counts.style.marginLeft = "12px";
  sliderLabel.append(slider, sliderValue);
  controls.append(sliderLabel, counts);
  const frame = div();
  frame.style.overflowX = "auto";
  const svg = svgElement("svg");
  svg.dataset.testid = "graph-svg";
  svg.dataset.figure = "graph";
  svg.style.display = "block";
  frame.appendChild(svg);
  const card = div("node-card");
  Object.assign(card.style, { borderTop: "1px solid #d0d7de", paddingTop: "6px", marginTop: "4px" });
  const headsBox = div("edge-heads");
  headsBox.style.marginTop = "4px";
  root.append(controls, frame, card, headsBox);
  cleanups.push(attachFigureExport(root, model)); // save_figure("graph.svg")

  let nodes: GraphNode[] = [];
  let edges: GraphEdge[] = [];
  let circles: SVGCircleElement[] = [];
  let lines: SVGLineElement[] = [];
  let hits: (SVGLineElement | null)[] = [];

  const writeHover = debounce((node: number, token: number) => {
    model.set("focused_node", node);
    model.set("hovered_token", token);
    model.save_changes();
  }, HOVER_MS);
  cleanups.push(() => writeHover.cancel());
  const writeThreshold = debounce((value: number) => {
    model.set("node_threshold", value);
    model.save_changes();
  }, HOVER_MS);
  cleanups.push(() => writeThreshold.cancel());

  const applyVisibility = (threshold: number): void => {
    const visible = visibleAt(nodes, edges, threshold);
    circles.forEach((circle, i) => {
      circle.dataset.shown = String(visible.nodes[i]);
      circle.style.display = visible.nodes[i] ? "" : "none";
    });
    lines.forEach((line, i) => {
      line.dataset.shown = String(visible.edges[i]);
      line.style.display = visible.edges[i] ? "" : "none";
      const hit = hits[i];
      if (hit) hit.style.display = visible.edges[i] ? "" : "none";
    });
    const nNodes = visible.nodes.filter(Boolean).length;
    const nEdges = visible.edges.filter(Boolean).length;
    counts.dataset.nodes = String(nNodes);
    counts.dataset.edges = String(nEdges);
    counts.textContent = `${nNodes} nodes · ${nEdges} edges shown`;
    sliderValue.textContent = ` ${threshold.toFixed(2)}`;
  };

  const draw = (): void => {
    nodes = readNodes(decodeTensor(model.get("nodes")).data as Float32Array);
    edges = readEdges(decodeTensor(model.get("edges")).data as Float32Array);
    const nLayers = model.get("n_layers");
    const tokens = shownTokens(model.get("tokens") ?? [], model.get("display_tokens"), model.get("token_kinds"));
    const layout = layoutGraph(nodes, nLayers, tokens.length, { margin: 40 });
    const labelSpace = 36;
    const width = layout.width + labelSpace;
    const height = layout.height + 14;
    svg.setAttribute("width", String(width));
    svg.setAttribute("height", String(height));
    svg.setAttribute("viewBox", `${-labelSpace} 0 ${width} ${height}`);
    const parts: SVGElement[] = [];
    // row labels on the left: emb, L0.., logits
    layout.rowY.forEach((y, row) => {
      const text = svgElement("text", { x: -labelSpace + 2, y: y + 4, "font-size": 10, fill: "#656d76" });
      text.textContent = row === 0 ? "emb" : row === nLayers + 1 ? "logit" : `L${row - 1}`;
      parts.push(text);
    });
    // token labels under their columns (text, never markup)
    tokens.forEach((token, p) => {
      const text = svgElement("text", { x: layout.columnX[p], y: layout.height - 6, "text-anchor": "middle", "font-size": 11, "font-family": "monospace" });
      text.dataset.testid = `graph-token-${p}`;
      text.textContent = tokenLabel(token);
      parts.push(text);
    });
    const largest = edges.reduce((m, e) => Math.max(m, Math.abs(e.weight)), 0);
    const nodeId = (row: number): number => nodes[row].node;
    lines = edges.map((edge) => {
      const stroke = edgeStroke(edge.weight, largest);
      const line = svgElement("line", {
        x1: layout.x[edge.source],
        y1: layout.y[edge.source],
        x2: layout.x[edge.target],
        y2: layout.y[edge.target],
        stroke: stroke.color,
        "stroke-width": stroke.width.toFixed(2),
        "stroke-opacity": stroke.opacity.toFixed(2),
      });
      line.dataset.testid = `edge-${nodeId(edge.source)}-${nodeId(edge.target)}`;
      line.dataset.weight = String(edge.weight);
      line.style.pointerEvents = "none";
      return line;
    });
    hits = edges.map((edge) => {
      if (nodes[edge.source].position === nodes[edge.target].position) return null;
      const hit = svgElement("line", {
        x1: layout.x[edge.source],
        y1: layout.y[edge.source],
        x2: layout.x[edge.target],
        y2: layout.y[edge.target],
        stroke: "transparent",
        "stroke-width": 7,
      });
      hit.dataset.testid = `edge-hit-${nodeId(edge.source)}-${nodeId(edge.target)}`;
      hit.style.cursor = "pointer";
      const title = svgElement("title");
      title.textContent = `${nodeLabel(nodes[edge.source])} → ${nodeLabel(nodes[edge.target])}: ${edge.weight.toPrecision(3)} (click: heads that carry it)`;
      hit.appendChild(title);
      listen(hit, "click", () => {
        model.set("selected_edge", [nodeId(edge.source), nodeId(edge.target)]);
        model.save_changes();
      });
      return hit;
    });
    const labels = model.get("logit_labels") ?? [];
    let logitRank = 0;
    circles = nodes.map((node) => {
      const circle = svgElement("circle", { cx: layout.x[node.row], cy: layout.y[node.row], r: layout.r[node.row].toFixed(2), fill: KIND_FILL[node.kind], stroke: "#444", "stroke-width": 0.6 });
      circle.dataset.testid = `node-${node.node}`;
      circle.dataset.kind = node.kind;
      circle.style.cursor = "pointer";
      let label: string | undefined;
      if (node.kind === "logit") {
        label = labels[logitRank];
        const text = svgElement("text", { x: layout.x[node.row], y: layout.y[node.row] - 9, "text-anchor": "middle", "font-size": 10, "font-family": "monospace" });
        text.dataset.testid = `logit-label-${logitRank}`;
        const full = tokenLabel({ text: label ?? "", kind: "text" });
        text.textContent = full.length > LOGIT_LABEL_CHARS ? `${full.slice(0, LOGIT_LABEL_CHARS - 1)}…` : full;
        parts.push(text);
        logitRank += 1;
      }
      const title = svgElement("title");
      title.textContent = `${nodeLabel(node, label)} · value ${formatActivation(node.value)} · influence ${node.influence.toPrecision(3)}`;
      circle.appendChild(title);
      listen(circle, "mouseenter", () => writeHover(node.node, node.position));
      listen(circle, "mouseleave", () => writeHover(model.get("selected_node"), -1));
      listen(circle, "click", () => {
        writeHover.cancel();
        model.set("selected_node", node.node);
        model.set("focused_node", node.node);
        model.save_changes();
      });
      return circle;
    });
    svg.replaceChildren(...parts, ...lines, ...hits.filter((h): h is SVGLineElement => h !== null), ...circles);
    slider.max = String(model.get("max_node_threshold"));
    slider.value = String(model.get("node_threshold"));
    applyVisibility(model.get("node_threshold"));
    highlight();
  };

  const highlight = (): void => {
    const focused = model.get("focused_node");
    const selected = model.get("selected_node");
    circles.forEach((circle, i) => {
      const id = nodes[i].node;
      circle.setAttribute("stroke", id === selected ? "#d4380d" : id === focused ? "#000" : "#444");
      circle.setAttribute("stroke-width", id === selected || id === focused ? "2" : "0.6");
    });
    const tokens = new Set(model.get("selected_tokens") ?? []);
    svg.querySelectorAll<SVGTextElement>("text[data-testid^='graph-token-']").forEach((text) => {
      const p = Number(text.dataset.testid?.slice("graph-token-".length));
      text.setAttribute("font-weight", tokens.has(p) ? "700" : "400");
    });
  };

  const drawCard = (): void => {
    const data = model.get("card") ?? {};
    card.dataset.node = String(data.node ?? -1);
    card.hidden = data.node === undefined;
    if (data.node === undefined) {
      card.replaceChildren();
      return;
    }
    const title = div(undefined, `${data.name ?? ""} · value ${formatActivation(data.value ?? 0)} · influence ${(data.influence ?? 0).toPrecision(3)}`);
    title.style.fontWeight = "600";
    if (data.label !== undefined) title.textContent += ` · "${data.label}" p=${(data.probability ?? 0).toFixed(3)}`;
    const parts: HTMLElement[] = [title];
    if (data.activations) {
      const tokens = shownTokens(model.get("tokens") ?? [], model.get("display_tokens"), model.get("token_kinds"));
      const top = data.activations.reduce((a, b) => Math.max(a, b), 0);
      const strip = div("card-activations", "activation on every token: ");
      tokens.forEach((token, p) => {
        const value = data.activations?.[p] ?? 0;
        const span = tokenChip(token, top > 0 ? value / top : 0);
        span.title = `${p}: ${formatActivation(value)}`;
        span.dataset.testid = `card-token-${p}`;
        span.dataset.activation = formatActivation(value);
        if (p === data.position) span.style.outline = "2px solid #f0a000";
        strip.append(span);
      });
      parts.push(strip);
    }
    for (const [testid, label, pairs] of [
      ["card-promoted", "promotes", data.promoted],
      ["card-suppressed", "suppresses", data.suppressed],
    ] as const) {
      if (!pairs) continue;
      const row = div(testid, `${label}: `);
      for (const [token, logit] of pairs) {
        const span = tokenChip({ text: token, kind: "text" }, 0);
        span.title = `logit ${logit}`;
        row.append(span);
      }
      parts.push(row);
    }
    if (data.note) parts.push(div("card-note", data.note));
    card.replaceChildren(...parts);
  };

  const drawHeads = (): void => {
    const data = model.get("edge_heads") ?? {};
    headsBox.hidden = data.source === undefined;
    headsBox.dataset.edge = data.source === undefined ? "" : `${data.source}-${data.target}`;
    if (data.source === undefined) {
      headsBox.replaceChildren();
      return;
    }
    if (data.note) {
      headsBox.replaceChildren(div(undefined, `edge ${data.source} → ${data.target}: ${data.note}`));
      return;
    }
    const rows = (data.heads ?? []).map((head, i) => `L${data.layers?.[i]}H${head} ${(data.values?.[i] ?? 0).toPrecision(3)} (moved ${(data.across?.[i] ?? 0).toPrecision(3)})`);
    const line = div(undefined, `edge ${(data.total ?? 0).toPrecision(3)}, query ${data.query} ← key ${data.key}; heads, the most moved between positions first: ${rows.join(", ")}`);
    headsBox.replaceChildren(line);
  };

  listen(slider, "input", () => {
    const value = Number(slider.value);
    applyVisibility(value);
    writeThreshold(value);
  });

  draw();
  drawCard();
  drawHeads();
  on("change:nodes", draw);
  on("change:edges", draw);
  on("change:node_threshold", () => {
    const value = model.get("node_threshold");
    if (Number(slider.value) !== value) slider.value = String(value);
    applyVisibility(value);
  });
  on("change:focused_node", highlight);
  on("change:selected_node", highlight);
  on("change:selected_tokens", highlight);
  on("change:card", drawCard);
  on("change:edge_heads", drawHeads);
  return () => {
    for (const cleanup of cleanups) cleanup();
    root.remove();
  };
}

export default { render };
