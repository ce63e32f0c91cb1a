// Query·key breakdown panel of the AttentionWidget (kernel side: llmasos_widgets/widgets/_qk.py).
// When a pattern cell is selected (trait selected_cell), the kernel sets the `qk`
// trait: for each shown head the post-RoPE q and k of that cell and their per-dimension products
// q_d·k_d·scaling, which add up to the pre-softmax score. Dimensions are drawn in rotary pairs
// (i, i + d/2: the two coordinates RoPE rotates together), three bar rows per head: q, k and
// the product (red raises the score, blue lowers it).
//
// Stable DOM hooks for browser tests:
//   div[data-testid="qk-panel"][data-query][data-key][hidden]
//     div[data-testid="qk-head-<h>"][data-score][data-sum][data-weight]
//       svg[data-figure="qk-head-<h>"]

import { type TensorPayload, decodeTensor } from "./buffers";

/** The `qk` trait of AttentionWidget ({} when no cell is selected). */
export interface QkTrait {
  layer?: number;
  query?: number;
  key?: number;
  heads?: number[];
  kv_heads?: number[];
  scores?: number[];
  logits?: number[];
  weights?: number[];
  masked?: boolean;
  values?: TensorPayload;
}

interface QkModel {
  get(name: "qk"): QkTrait | undefined;
}

const SVG = "http://www.w3.org/2000/svg";
const BAR_W = 7;
const ROW_H = 34;
const LABEL_W = 56;
const ROWS = ["q", "k", "q·k·scale"];
const COLORS = ["#1f77b4", "#ff7f0e"];

/** Dimension order that puts each rotary pair side by side: 0, d/2, 1, d/2 + 1, ... */
export function pairedOrder(d: number): number[] {
  const half = Math.floor(d / 2);
  const order: number[] = [];
  for (let i = 0; i < half; i++) order.push(i, i + half);
  if (d % 2 === 1) order.push(d - 1);
  return order;
}

function svgEl<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  return el;
}

function headChart(head: number, values: Float32Array, d: number): SVGSVGElement {
  const order = pairedOrder(d);
  const width = LABEL_W + order.length * BAR_W + Math.floor(d / 2) * 2;
  const height = ROWS.length * ROW_H;
  const svg = svgEl("svg", { width, height, viewBox: `0 0 ${width} ${height}` });
  svg.dataset.figure = `qk-head-${head}`; // exportable (lib/figures.ts)
  const parts: SVGElement[] = [svgEl("rect", { x: 0, y: 0, width, height, fill: "white" })];
  ROWS.forEach((name, row) => {
    const data = values.subarray(row * d, (row + 1) * d);
    let scale = 0;
    for (const v of data) scale = Math.max(scale, Math.abs(v));
    const mid = row * ROW_H + ROW_H / 2;
    const label = svgEl("text", { x: 2, y: mid + 4, "font-size": 10, fill: "#444" });
    label.textContent = name;
    parts.push(label, svgEl("line", { x1: LABEL_W, y1: mid, x2: width, y2: mid, stroke: "#ccc" }));
    order.forEach((dim, slot) => {
      const v = data[dim];
      const h = scale > 0 ? (Math.abs(v) / scale) * (ROW_H / 2 - 2) : 0;
      const x = LABEL_W + slot * BAR_W + Math.floor(slot / 2) * 2; // a gap after each pair
      const fill = row < 2 ? COLORS[row] : v >= 0 ? "#d62728" : "#1f77b4";
      const bar = svgEl("rect", { x, y: v >= 0 ? mid - h : mid, width: BAR_W - 1, height: Math.max(h, 0.5), fill });
      const title = svgEl("title", {});
      title.textContent = `${name}[${dim}] = ${v.toPrecision(4)} (rotary pair ${dim % Math.floor(d / 2 || 1)})`;
      bar.appendChild(title);
      parts.push(bar);
    });
  });
  svg.replaceChildren(...parts);
  return svg;
}

/** Build the panel (hidden until a cell is selected); repaints on `change:qk`. */
export function mountQkPanel(model: QkModel, on: (event: string, handler: () => void) => void): HTMLElement {
  const panel = document.createElement("div");
  panel.className = "llmw-qk-panel";
  panel.dataset.testid = "qk-panel";
  panel.style.cssText = "margin:6px 0;font:12px system-ui,sans-serif;color:#333";

  const paint = (): void => {
    const qk = model.get("qk") ?? {};
    const heads = qk.heads ?? [];
    if (!qk.values || heads.length === 0) {
      panel.hidden = true;
      panel.replaceChildren();
      return;
    }
    const tensor = decodeTensor(qk.values);
    const data = tensor.data as Float32Array;
    const d = tensor.shape[2];
    panel.hidden = false;
    panel.dataset.query = String(qk.query);
    panel.dataset.key = String(qk.key);
    const title = document.createElement("div");
    title.style.fontWeight = "600";
    title.textContent =
      `query·key breakdown, layer ${qk.layer}, query ${qk.query} → key ${qk.key}` +
      (qk.masked ? " (masked: the key is not visible to this query)" : "") +
      " · dimensions in rotary pairs (i, i + d/2)";
    const blocks = heads.map((head, i) => {
      const values = data.subarray(i * 3 * d, (i + 1) * 3 * d);
      let sum = 0;
      for (let j = 0; j < d; j++) sum += values[2 * d + j];
      const block = document.createElement("div");
      block.dataset.testid = `qk-head-${head}`;
      block.dataset.score = String(qk.scores?.[i]);
      block.dataset.sum = String(sum);
      block.dataset.weight = String(qk.weights?.[i]);
      const caption = document.createElement("div");
      caption.textContent =
        `head ${head} (kv head ${qk.kv_heads?.[i]}): score ${(qk.scores?.[i] ?? NaN).toFixed(4)}` +
        ` = Σ q·k·scale, weight ${(qk.weights?.[i] ?? NaN).toFixed(4)}`;
      block.append(caption, headChart(head, values, d));
      return block;
    });
    panel.replaceChildren(title, ...blocks);
  };
  paint();
  on("change:qk", paint);
  return panel;
}
