// CompareDifferenceWidget front end (Python half: llmasos_widgets/widgets/compare.py).
// Model A vs model B on one text: the head summary of A, of B and B - A (diverging), how far
// each head's attention moved, saliency of the same target in both, and the logit-lens
// difference of the target's probability, [site, token]. Clicking a head sets
// selected_layer/selected_heads; clicking a heatmap cell sets selected_layer (its site) and
// selected_tokens; Python links them to both models' AttentionWidgets.
//
// Stable DOM hooks for browser tests:
//   div.llmw-compare[data-testid="compare-widget"]
//     select[data-testid="metric-select"]
//     div[data-testid="grid-a" | "grid-b" | "grid-diff" | "grid-moved"]  each holds a GridView
//       (div[data-testid="head-grid-view"] > canvas[data-testid="head-grid"]) and a legend
//     div[data-testid="map-saliency-a" | "map-saliency-b" | "map-lens"]
//       canvas[data-figure][data-rows][data-cols][data-cell-width][data-cell-height]

import type { RenderProps } from "@anywidget/types";
import { type TensorPayload, decodeTensor } from "./lib/buffers";
import { type ColorScale, finiteDomain, getScale } from "./lib/colors";
import { listenerScope, makeSelect } from "./lib/dom";
import { attachFigureExport } from "./lib/figures";
import { GridView } from "./lib/grid_view";
import { drawMatrix, outlineCells, setupCanvas } from "./lib/heatmap";
import { renderLegend, updateLegend } from "./lib/legend";
import { siteLabel } from "./lib/saliency_scale";
import { type SelectionState, clickHead, clickLayer } from "./lib/selection";

/** Traits of llmasos_widgets/widgets/compare.py (CompareDifferenceWidget), same names. */
export interface CompareModel extends SelectionState {
  tokens: string[];
  display_tokens: string[];
  token_kinds: string[];
  n_layers: number;
  n_heads: number;
  model_names: string[];
  summaries_a: Record<string, TensorPayload>;
  summaries_b: Record<string, TensorPayload>;
  attention_distance: TensorPayload;
  saliency_a: TensorPayload | Record<string, never>;
  saliency_b: TensorPayload | Record<string, never>;
  saliency_target: string;
  lens_difference: TensorPayload;
  lens_distance: TensorPayload;
  target_token: string;
}

const MAP_CELL_HEIGHT = 16;
const MAP_MAX_CELL_WIDTH = 36;
const MAP_MAX_WIDTH = 700;

function values(payload: TensorPayload | Record<string, never> | undefined): Float32Array | null {
  if (!payload || !("view" in payload)) return null;
  return decodeTensor(payload as TensorPayload).data as Float32Array;
}

/** Values to [0, 1]: sequential over [min, max], diverging symmetric around 0. */
export function toUnit(v: Float32Array, min: number, max: number, diverging: boolean): Float32Array {
  const out = new Float32Array(v.length);
  const bound = Math.max(Math.abs(min), Math.abs(max)) || 1;
  for (let i = 0; i < v.length; i++) {
    if (!Number.isFinite(v[i])) out[i] = NaN;
    else if (diverging) out[i] = 0.5 + v[i] / (2 * bound);
    else out[i] = max > min ? (v[i] - min) / (max - min) : 0;
  }
  return out;
}

/** Symmetric domain [-m, m] covering the values (m > 0). */
export function symmetricDomain(...arrays: Float32Array[]): { min: number; max: number } {
  let m = 0;
  for (const a of arrays) for (const v of a) if (Number.isFinite(v)) m = Math.max(m, Math.abs(v));
  if (m === 0) m = 1;
  return { min: -m, max: m };
}

function render({ model, el }: RenderProps<CompareModel>): () => void {
  const scope = listenerScope(model);
  const get = <K extends keyof CompareModel>(k: K): CompareModel[K] => model.get(k);
  const nLayers = get("n_layers");
  const nHeads = get("n_heads");
  const nTokens = get("tokens").length;
  const [nameA, nameB] = get("model_names");
  const root = document.createElement("div");
  root.className = "llmw-compare";
  root.dataset.testid = "compare-widget";
  root.style.cssText = "font:12px system-ui,sans-serif;color:#222";

  const select = (layer: number, heads: number[]): void => {
    model.set("selected_layer", layer);
    model.set("selected_heads", heads);
    model.save_changes();
  };
  const callbacks = {
    onHeadClick(layer: number, head: number, mods: object) {
      const next = clickHead({ layer: get("selected_layer"), heads: get("selected_heads") }, layer, head, mods);
      select(next.layer, next.heads);
    },
    onLayerClick(layer: number) {
      const next = clickLayer(layer, nHeads);
      select(next.layer, next.heads);
    },
  };

  // ---- head grids --------------------------------------------------------------------
  const { wrap: metricWrap, select: metricSelect } = makeSelect("metric-select", "head summary");
  const controls = document.createElement("div");
  controls.append(metricWrap);
  const gridRow = document.createElement("div");
  gridRow.style.cssText = "display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start;margin:6px 0";
  const grids = new Map<string, { view: GridView; legend: HTMLElement; caption: HTMLElement }>();
  for (const which of ["a", "b", "diff", "moved"]) {
    const box = document.createElement("div");
    box.dataset.testid = `grid-${which}`;
    const caption = document.createElement("div");
    caption.style.fontWeight = "600";
    const view = new GridView(nLayers, nHeads, getScale(which === "diff" ? "diverging" : "viridis"), callbacks);
    view.canvas.dataset.figure = `grid-${which}`;
    box.append(caption, view.element);
    const legend = renderLegend(box, { label: "", units: "", min: 0, max: 1, scale: "sequential" });
    gridRow.appendChild(box);
    grids.set(which, { view, legend, caption });
  }

  // ---- [site, token] maps --------------------------------------------------------------
  const mapsRow = document.createElement("div");
  mapsRow.style.cssText = "display:flex;flex-direction:column;gap:8px;margin:6px 0";
  const cellWidth = Math.max(4, Math.min(MAP_MAX_CELL_WIDTH, Math.floor(MAP_MAX_WIDTH / Math.max(1, nTokens))));
  const nSites = nLayers + 1;
  const maps = new Map<string, { canvas: HTMLCanvasElement; legend: HTMLElement; unit: Float32Array; scale: ColorScale }>();

  const addMap = (which: string, title: string, unit: Float32Array, scale: ColorScale, legend: Parameters<typeof renderLegend>[1]) => {
    const box = document.createElement("div");
    box.dataset.testid = `map-${which}`;
    const caption = document.createElement("div");
    caption.style.fontWeight = "600";
    caption.textContent = title;
    const body = document.createElement("div");
    body.style.cssText = `display:inline-grid;grid-template-columns:auto ${nTokens * cellWidth}px;column-gap:4px`;
    const labels = document.createElement("div");
    for (let s = nSites - 1; s >= 0; s--) {
      const label = document.createElement("div");
      label.textContent = siteLabel(s);
      label.style.cssText = `height:${MAP_CELL_HEIGHT}px;line-height:${MAP_CELL_HEIGHT}px;text-align:right;color:#555`;
      labels.appendChild(label);
    }
    const canvas = document.createElement("canvas");
    canvas.dataset.figure = `${which}`;
    canvas.dataset.rows = String(nSites);
    canvas.dataset.cols = String(nTokens);
    canvas.dataset.cellWidth = String(cellWidth);
    canvas.dataset.cellHeight = String(MAP_CELL_HEIGHT);
    const tokenRow = document.createElement("div");
    tokenRow.style.cssText = "grid-column:2;display:flex;overflow:hidden";
    get("display_tokens").forEach((text, t) => {
      const span = document.createElement("span");
      span.textContent = text; // token text is data, never markup
      span.title = `token ${t}`;
      span.style.cssText = `width:${cellWidth}px;flex:none;overflow:hidden;font-size:10px;text-align:center`;
      tokenRow.appendChild(span);
    });
    body.append(labels, canvas, tokenRow);
    box.append(caption, body);
    const legendEl = renderLegend(box, legend);
    mapsRow.appendChild(box);
    maps.set(which, { canvas, legend: legendEl, unit, scale });
    scope.listen(canvas, "click", (e) => {
      const m = e as MouseEvent;
      const rect = canvas.getBoundingClientRect();
      const col = Math.floor((m.clientX - rect.left) / cellWidth);
      const row = Math.floor((m.clientY - rect.top) / MAP_CELL_HEIGHT);
      if (col < 0 || col >= nTokens || row < 0 || row >= nSites) return;
      const site = nSites - 1 - row; // drawn with the last site on top
      model.set("selected_layer", site - 1);
      model.set("selected_tokens", [col]);
      model.save_changes();
    });
  };

  /** Rows flipped so the output site is on top, like the saliency widget. */
  const flipRows = (v: Float32Array): Float32Array => {
    const out = new Float32Array(v.length);
    for (let s = 0; s < nSites; s++) out.set(v.subarray(s * nTokens, (s + 1) * nTokens), (nSites - 1 - s) * nTokens);
    return out;
  };

  const salA = values(get("saliency_a"));
  const salB = values(get("saliency_b"));
  if (salA && salB) {
    const signed = Array.from(salA).some((v) => v < 0) || Array.from(salB).some((v) => v < 0);
    const dom = signed ? symmetricDomain(salA, salB) : { min: 0, max: Math.max(finiteDomain(salA).max, finiteDomain(salB).max) };
    const scale = getScale(signed ? "diverging" : "viridis");
    const legend = { label: "saliency", units: "", min: dom.min, max: dom.max, scale: (signed ? "diverging" : "sequential") as "diverging" | "sequential", note: `${get("saliency_target")}; one scale for A and B` };
    addMap("saliency-a", `A (${nameA}): saliency`, flipRows(toUnit(salA, dom.min, dom.max, signed)), scale, legend);
    addMap("saliency-b", `B (${nameB}): saliency`, flipRows(toUnit(salB, dom.min, dom.max, signed)), scale, legend);
  }
  const lens = values(get("lens_difference"));
  if (lens) {
    const dom = symmetricDomain(lens);
    addMap("lens", `logit lens: B − A probability of '${get("target_token")}' as the next token`, flipRows(toUnit(lens, dom.min, dom.max, true)), getScale("diverging"), {
      label: "Δ probability (B − A)",
      units: "probability",
      min: dom.min,
      max: dom.max,
      scale: "diverging",
      note: "read at each residual site through each model's own head",
    });
  }

  const drawMaps = (): void => {
    const layer = get("selected_layer");
    const tokens = get("selected_tokens");
    for (const { canvas, unit, scale } of maps.values()) {
      const width = nTokens * cellWidth;
      const height = nSites * MAP_CELL_HEIGHT;
      const ctx = setupCanvas(canvas, width, height);
      if (!ctx) continue;
      drawMatrix(ctx, unit, nSites, nTokens, scale, { x: 0, y: 0, width, height });
      const row = nSites - 1 - (layer + 1);
      const cells: [number, number][] = tokens.map((t) => [row, t]);
      outlineCells(ctx, cells, cellWidth, MAP_CELL_HEIGHT, "#d62728");
    }
  };

  const drawGrids = (): void => {
    const metric = get("metric");
    const a = values(get("summaries_a")[metric]);
    const b = values(get("summaries_b")[metric]);
    const moved = values(get("attention_distance"));
    const layer = get("selected_layer");
    const heads = get("selected_heads");
    if (a && b) {
      const dom = finiteDomain(new Float32Array([...a, ...b]));
      for (const [which, v, name] of [["a", a, nameA], ["b", b, nameB]] as const) {
        const g = grids.get(which)!;
        g.caption.textContent = `${which.toUpperCase()} (${name}): ${metric}`;
        g.view.setValues(toUnit(v, dom.min, dom.max, false), v, getScale("viridis"));
        updateLegend(g.legend, { label: metric, units: "", min: dom.min, max: dom.max, scale: "sequential", note: "one scale for A and B" });
      }
      const diff = b.map((v, i) => v - a[i]);
      const dd = symmetricDomain(diff);
      const g = grids.get("diff")!;
      g.caption.textContent = `B − A: ${metric}`;
      g.view.setValues(toUnit(diff, dd.min, dd.max, true), diff, getScale("diverging"));
      updateLegend(g.legend, { label: `Δ ${metric} (B − A)`, units: "", min: dd.min, max: dd.max, scale: "diverging" });
    }
    if (moved) {
      const g = grids.get("moved")!;
      g.caption.textContent = "attention moved";
      g.view.setValues(toUnit(moved, 0, 1, false), moved, getScale("viridis"));
      updateLegend(g.legend, { label: "total-variation distance", units: "0..1", min: 0, max: 1, scale: "sequential", note: "A vs B rows, mean over queries" });
    }
    for (const { view } of grids.values()) view.setSelection(layer, heads);
  };

  const fillMetrics = (): void => {
    const names = Object.keys(get("summaries_a"));
    metricSelect.replaceChildren(
      ...names.map((n) => {
        const option = document.createElement("option");
        option.value = n;
        option.textContent = n.replace(/_/g, " ");
        return option;
      }),
    );
    metricSelect.value = get("metric");
  };
  scope.listen(metricSelect, "change", () => {
    model.set("metric", metricSelect.value);
    model.save_changes();
  });

  root.append(controls, gridRow, mapsRow);
  el.appendChild(root);
  const detachFigures = attachFigureExport(root, model, { widget: "compare" }); // save_figure on the difference panel
  fillMetrics();
  drawGrids();
  drawMaps();
  scope.on("change:metric", () => {
    metricSelect.value = get("metric");
    drawGrids();
  });
  scope.on("change:selected_layer", () => {
    drawGrids();
    drawMaps();
  });
  scope.on("change:selected_heads", drawGrids);
  scope.on("change:selected_tokens", drawMaps);
  return () => {
    scope.cleanups.splice(0).forEach((fn) => fn());
    for (const { view } of grids.values()) view.destroy();
    detachFigures();
    root.remove();
  };
}

export default { render };
