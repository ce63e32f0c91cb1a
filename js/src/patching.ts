// PatchingWidget front end (Python half: llmasos_widgets/widgets/patching.py).
// Also shows an ablation map (one head ablated at a time): the head map alone, no prompts.
// Two heatmaps of activation patching -- residual [site, position] and heads [layer, head],
// normalised so the clean run is 1 and the corrupted run 0 -- with a legend, the target and
// both prompts side by side (differing tokens marked). Also shows a direct logit attribution:
// components x token and heads at the target token, one text, and the selected head's
// contribution at every token as the text's colors. Clicking a cell writes the shared
// selection (lib/patching_map.ts: clickCell), which link_selection carries to other widgets;
// a selection made elsewhere is outlined here. Token strings are set as text, never HTML.
//
// Stable DOM hooks for browser tests:
//   div.llmw-patching[data-testid="patching-widget"][data-selected-layer][data-selected-heads][data-selected-tokens][data-colored-head]
//     div[data-testid="patching-target"]                      target, clean and corrupted values
//     div[data-testid="prompt-clean"|"prompt-corrupted"] > span[data-testid="clean-token-<i>"|"corrupted-token-<i>"][data-diff][data-contribution]
//     canvas[data-testid="residual-map"|"head-map"][data-figure][data-rows][data-cols][data-cell-width][data-cell-height]
//     div.llmw-legend[data-testid="legend"]                   lib/legend.ts

import type { RenderProps } from "@anywidget/types";
import { type TensorPayload, decodeTensor } from "./lib/buffers";
import { getScale } from "./lib/colors";
import { listenerScope } from "./lib/dom";
import { attachFigureExport } from "./lib/figures";
import { cellAt, drawMatrix, outlineCells, setupCanvas } from "./lib/heatmap";
import { renderLegend } from "./lib/legend";
import { cellWidth, clickCell, formatScore, selectedCells, symmetricLimit, toUnit } from "./lib/patching_map";
import type { SelectionState } from "./lib/selection";

/** Traits of llmasos_widgets/widgets/patching.py (PatchingWidget), same names. */
export interface PatchingModel extends SelectionState {
  tokens: string[];
  display_tokens: string[];
  corrupted_tokens: string[];
  differing: number[];
  site_names: string[];
  residual: TensorPayload | Record<string, never>;
  heads: TensorPayload | Record<string, never>;
  target: string;
  clean_value: number;
  corrupted_value: number;
  target_position: number;
  caption: string;
  head_title: string;
  residual_title: string;
  residual_layers: number[];
  head_positions: TensorPayload | Record<string, never>;
  legend: { label?: string; units?: string; note?: string };
}

const CELL_HEIGHT = 22;
const MAX_MAP_WIDTH = 720;
const SELECTED = "#ffb000";

interface MapView {
  kind: "residual" | "heads";
  canvas: HTMLCanvasElement;
  values: Float32Array;
  rows: number;
  cols: number;
  cw: number;
  limit: number;
  rowLabels: string[];
  colLabels: string[];
}

function text(tag: string, content: string, style = ""): HTMLElement {
  const node = document.createElement(tag);
  node.textContent = content; // data, never markup
  if (style) node.style.cssText = style;
  return node;
}

function hasData(p: TensorPayload | Record<string, never>): p is TensorPayload {
  return "shape" in p && Array.isArray((p as TensorPayload).shape);
}

/** Head `heads[0]` of `layer` in a `[layer, head, position]` payload, when exactly one head
 * is selected and the payload has it. */
function headRow(payload: TensorPayload | Record<string, never>, layer: number, heads: readonly number[]): Float32Array | null {
  if (!hasData(payload) || heads.length !== 1 || layer < 0) return null;
  const [nLayers, nHeads, nTokens] = payload.shape;
  const head = heads[0];
  if (layer >= nLayers || head < 0 || head >= nHeads) return null;
  const data = decodeTensor(payload).data as Float32Array;
  const start = (layer * nHeads + head) * nTokens;
  return data.subarray(start, start + nTokens);
}

function render({ model, el }: RenderProps<PatchingModel>): () => void {
  const root = document.createElement("div");
  root.className = "llmw-patching";
  root.dataset.testid = "patching-widget";
  root.style.cssText = "font:12px var(--jp-ui-font-family, system-ui, sans-serif);display:flex;flex-direction:column;gap:8px";
  el.appendChild(root);
  const { cleanups, on, listen } = listenerScope(model);
  cleanups.push(attachFigureExport(root, model));
  const maps: MapView[] = [];

  const write = (selection: Record<string, unknown>): void => {
    for (const [name, value] of Object.entries(selection)) model.set(name as keyof PatchingModel, value as never);
    model.save_changes();
  };

  const paint = (view: MapView): void => {
    const ctx = setupCanvas(view.canvas, view.cols * view.cw, view.rows * CELL_HEIGHT);
    if (!ctx) return;
    const rect = { x: 0, y: 0, width: view.cols * view.cw, height: view.rows * CELL_HEIGHT };
    drawMatrix(ctx, toUnit(view.values, view.limit), view.rows, view.cols, getScale("diverging"), rect);
    const state = { selected_layer: model.get("selected_layer"), selected_heads: model.get("selected_heads"), selected_tokens: model.get("selected_tokens") };
    outlineCells(ctx, selectedCells(view.kind, view.rows, view.cols, state, model.get("residual_layers") ?? []), view.cw, CELL_HEIGHT, SELECTED);
  };

  const highlight = (): void => {
    root.dataset.selectedLayer = String(model.get("selected_layer"));
    root.dataset.selectedHeads = model.get("selected_heads").join(",");
    root.dataset.selectedTokens = model.get("selected_tokens").join(",");
    for (const view of maps) paint(view);
    const tokens = new Set(model.get("selected_tokens"));
    for (const span of root.querySelectorAll<HTMLElement>("[data-token-index]")) {
      span.style.outline = tokens.has(Number(span.dataset.tokenIndex)) ? `2px solid ${SELECTED}` : "";
    }
    colorByHead();
  };

  // direct logit attribution: the selected head's contribution at every token, as the text's
  // background (the same diverging scale); no color when no single head is selected
  const colorByHead = (): void => {
    const payload = model.get("head_positions");
    const spans = root.querySelectorAll<HTMLElement>('[data-testid^="clean-token-"]');
    const [layer, heads] = [model.get("selected_layer"), model.get("selected_heads")];
    const row = headRow(payload, layer, heads);
    root.dataset.coloredHead = row ? `${layer},${heads[0]}` : "";
    const limit = row ? symmetricLimit(row) : 1;
    const colors = getScale("diverging");
    spans.forEach((span, i) => {
      const base = span.dataset.diff === "true" ? "#fde2b8" : "#f3f3f3";
      if (!row || i >= row.length) {
        span.style.background = base;
        delete span.dataset.contribution;
        return;
      }
      const unit = Math.max(0, Math.min(1, (row[i] / limit + 1) / 2));
      const k = Math.round(unit * 255) * 3;
      span.style.background = `rgb(${colors.lut[k]}, ${colors.lut[k + 1]}, ${colors.lut[k + 2]})`;
      span.dataset.contribution = formatScore(row[i]);
      span.title = `position ${i}: L${layer}H${heads[0]} contributes ${formatScore(row[i])}`;
    });
  };

  const prompt = (name: "clean" | "corrupted", tokens: string[], differing: Set<number>, label = `${name}:`): HTMLElement => {
    const row = document.createElement("div");
    row.dataset.testid = `prompt-${name}`;
    row.style.cssText = "display:flex;flex-wrap:wrap;gap:3px;align-items:baseline";
    row.appendChild(text("span", label, "width:70px;color:#555"));
    tokens.forEach((token, i) => {
      const span = text("span", token, "padding:1px 3px;border-radius:3px;cursor:pointer;background:#f3f3f3");
      span.dataset.testid = `${name}-token-${i}`;
      span.dataset.tokenIndex = String(i);
      span.dataset.diff = String(differing.has(i));
      if (differing.has(i)) span.style.cssText += ";background:#fde2b8;font-weight:600;border-bottom:2px solid #e08a00";
      span.title = differing.has(i) ? `position ${i}: differs between the prompts` : `position ${i}`;
      listen(span, "click", () => write({ selected_tokens: [i] }));
      row.appendChild(span);
    });
    return row;
  };

  const mapBlock = (view: MapView, title: string, rowTitle: string, colTitle: string): HTMLElement => {
    const block = document.createElement("div");
    block.appendChild(text("div", title, "font-weight:600;margin-bottom:2px"));
    const grid = document.createElement("div");
    grid.style.cssText = "display:inline-grid;grid-template-columns:max-content max-content;column-gap:4px";
    const rowLabels = document.createElement("div");
    view.rowLabels.forEach((label) => rowLabels.appendChild(text("div", label, `height:${CELL_HEIGHT}px;line-height:${CELL_HEIGHT}px;text-align:right;color:#555`)));
    const canvas = view.canvas;
    canvas.dataset.testid = view.kind === "residual" ? "residual-map" : "head-map";
    canvas.dataset.figure = view.kind === "residual" ? "patching-residual" : "patching-heads";
    canvas.dataset.rows = String(view.rows);
    canvas.dataset.cols = String(view.cols);
    canvas.dataset.cellWidth = String(view.cw);
    canvas.dataset.cellHeight = String(CELL_HEIGHT);
    canvas.style.cursor = "pointer";
    const cell = (e: MouseEvent): [number, number] | null => cellAt(e, view.rows, view.cols, view.cw, CELL_HEIGHT);
    listen(canvas, "click", (e) => {
      const hit = cell(e as MouseEvent);
      if (hit) write({ ...clickCell(view.kind, hit[0], hit[1], model.get("residual_layers") ?? []) });
    });
    listen(canvas, "mousemove", (e) => {
      const hit = cell(e as MouseEvent);
      canvas.title = hit
        ? `${rowTitle} ${view.rowLabels[hit[0]]}, ${colTitle} ${view.colLabels[hit[1]]}: ${formatScore(view.values[hit[0] * view.cols + hit[1]])}`
        : "";
    });
    const colLabels = document.createElement("div");
    colLabels.style.cssText = "display:flex";
    view.colLabels.forEach((label) => colLabels.appendChild(text("div", view.cw >= 18 ? label : "", `width:${view.cw}px;overflow:hidden;text-align:center;color:#555;font-size:10px;white-space:nowrap`)));
    grid.append(rowLabels, canvas, document.createElement("div"), colLabels);
    block.appendChild(grid);
    paint(view);
    return block;
  };

  const build = (): void => {
    maps.length = 0;
    const differing = new Set(model.get("differing"));
    const header = text("div", model.get("caption"));
    header.dataset.testid = "patching-target";
    const prompts = document.createElement("div");
    prompts.style.cssText = "display:flex;flex-direction:column;gap:3px";
    const corrupted = model.get("corrupted_tokens");
    if (corrupted.length > 0) prompts.append(prompt("clean", model.get("display_tokens"), differing), prompt("corrupted", corrupted, differing));
    else prompts.append(prompt("clean", model.get("display_tokens"), differing, "text:")); // one text (logit attribution)
    const children: HTMLElement[] = model.get("tokens").length > 0 ? [header, prompts] : [header];
    const residual = model.get("residual");
    const heads = model.get("heads");
    const decoded = [hasData(residual) ? decodeTensor(residual) : null, hasData(heads) ? decodeTensor(heads) : null];
    const limit = Math.max(...decoded.map((d) => (d ? symmetricLimit(d.data as Float32Array) : 1)));
    const tokens = model.get("display_tokens");
    if (decoded[0]) {
      const [rows, cols] = decoded[0].shape;
      const view: MapView = { kind: "residual", canvas: document.createElement("canvas"), values: decoded[0].data as Float32Array, rows, cols, cw: cellWidth(cols, MAX_MAP_WIDTH), limit, rowLabels: model.get("site_names"), colLabels: tokens };
      maps.push(view);
      children.push(mapBlock(view, model.get("residual_title") || "residual stream: site × token (click: that layer and token)", "site", "token"));
    }
    if (decoded[1]) {
      const [rows, cols] = decoded[1].shape;
      const view: MapView = { kind: "heads", canvas: document.createElement("canvas"), values: decoded[1].data as Float32Array, rows, cols, cw: cellWidth(cols, MAX_MAP_WIDTH), limit, rowLabels: Array.from({ length: rows }, (_, l) => `L${l}`), colLabels: Array.from({ length: cols }, (_, h) => `H${h}`) };
      maps.push(view);
      children.push(mapBlock(view, model.get("head_title"), "layer", "head"));
    }
    root.replaceChildren(...children);
    const legend = model.get("legend") ?? {};
    renderLegend(root, {
      label: legend.label ?? "effect",
      units: legend.units ?? "",
      min: -limit,
      max: limit,
      scale: "diverging",
      note: legend.note,
    });
    highlight();
  };

  build();
  for (const name of ["residual", "heads", "display_tokens", "corrupted_tokens", "caption", "legend", "residual_title", "residual_layers", "head_positions"]) on(`change:${name}`, build);
  for (const name of ["selected_layer", "selected_heads", "selected_tokens"]) on(`change:${name}`, highlight);

  return () => {
    for (const cleanup of cleanups.splice(0)) cleanup();
    root.remove();
  };
}

export default { render };
