// LogitLensWidget front end (Python half: llmasos_widgets/widgets/logit_lens.py).
// One SVG grid: rows are residual sites (emb, after L0, ...), columns are tokens, each cell the
// top-1 next token read off that site (as text) on a background shaded by its probability.
// Clicking a row label or a cell selects that row's layer (after L{i} = layer i, emb = none);
// clicking a column header or a cell brushes that token; hovering sets hovered_token (saved
// debounced). Selection traits are the shared ones (link_selection).
//
// Stable DOM hooks for browser tests:
//   div.llmw-logit-lens[data-testid="logit-lens-widget"]
//     svg[data-testid="logit-lens"][data-figure="logit-lens"][data-rows][data-cols]
//       text[data-testid="lens-row-<site>"][data-selected]       row label, click: select layer
//       text[data-testid="lens-col-<t>"][data-selected]          column header, click: brush token
//       g[data-testid="lens-cell-<site>-<t>"][data-prob]         cell: rect + text (top token)
//     div[data-testid="legend"]                                  lib/legend.ts

import type { RenderProps } from "@anywidget/types";
import { type TensorPayload, decodeTensor } from "./lib/buffers";
import { colorAt, cssColor, getScale, isDark } from "./lib/colors";
import { listenerScope } from "./lib/dom";
import { attachFigureExport } from "./lib/figures";
import { renderLegend } from "./lib/legend";
import { type SelectionState, clickToken, debounce } from "./lib/selection";

/** Traits of llmasos_widgets/widgets/logit_lens.py (LogitLensWidget), same names. */
export interface LogitLensModel extends SelectionState {
  tokens: string[];
  display_tokens: string[];
  token_kinds: string[];
  site_names: string[];
  lens_tokens: string[][];
  lens_probs: TensorPayload;
  n_layers: number;
  linked_tokens: number;
}

const SVG = "http://www.w3.org/2000/svg";
const CELL_W = 64;
const CELL_H = 20;
const LABEL_W = 70;
const HEADER_H = 22;
const HOVER_SAVE_MS = 120;
const MAX_CHARS = 9;

/** Row (residual site) <-> shared selected_layer: site i + 1 is "after L{i}" = layer i. */
export function siteToLayer(site: number): number {
  return site - 1;
}
export function layerToSite(layer: number): number {
  return layer + 1;
}

function svgEl<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  return el;
}

function shorten(text: string): string {
  const shown = text.replace(/\n/g, "⏎");
  return shown.length > MAX_CHARS ? `${shown.slice(0, MAX_CHARS - 1)}…` : shown;
}

function render({ model, el }: RenderProps<LogitLensModel>): () => void {
  const root = document.createElement("div");
  root.className = "llmw-logit-lens";
  root.dataset.testid = "logit-lens-widget";
  root.style.cssText = "font:12px system-ui,sans-serif;color:#222;overflow-x:auto";
  el.appendChild(root);
  const { cleanups, on, listen } = listenerScope(model);
  const scale = getScale("blues");

  const svg = svgEl("svg", {});
  svg.dataset.testid = "logit-lens";
  svg.dataset.figure = "logit-lens"; // exportable (lib/figures.ts)
  svg.style.display = "block";
  const caption = document.createElement("div");
  caption.style.color = "#666";
  caption.textContent = "top-1 next token read from each residual site through the model's final norm and unembedding";
  const legendHost = document.createElement("div");
  renderLegend(legendHost, { label: "probability of the top token", units: "probability", min: 0, max: 1, scale: "sequential", colors: scale });
  root.append(svg, legendHost, caption);
  cleanups.push(attachFigureExport(root, model));

  const saveHover = debounce(() => model.save_changes(), HOVER_SAVE_MS);
  cleanups.push(() => saveHover.flush());
  const setHover = (t: number): void => {
    if (model.get("hovered_token") === t) return;
    model.set("hovered_token", t);
    saveHover();
  };
  const limit = (): number => {
    const linked = model.get("linked_tokens") ?? -1;
    return linked < 0 ? Infinity : linked;
  };
  const selectLayer = (site: number): void => {
    model.set("selected_layer", siteToLayer(site));
    model.save_changes();
  };
  const selectToken = (t: number, e: MouseEvent): void => {
    model.set("selected_tokens", clickToken(model.get("selected_tokens") ?? [], t, t, e));
    model.save_changes();
  };

  let rowLabels: SVGTextElement[] = [];
  let colLabels: SVGTextElement[] = [];
  let highlights: SVGGElement = svgEl("g", {});

  const build = (): void => {
    const names = model.get("site_names") ?? [];
    const lens = model.get("lens_tokens") ?? [];
    const shown = model.get("display_tokens") ?? model.get("tokens") ?? [];
    const rows = names.length;
    const cols = shown.length;
    const payload = model.get("lens_probs");
    const probs = payload ? (decodeTensor(payload).data as Float32Array) : new Float32Array(rows * cols);
    const width = LABEL_W + cols * CELL_W;
    const height = HEADER_H + rows * CELL_H;
    for (const [k, v] of Object.entries({ width, height, viewBox: `0 0 ${width} ${height}` })) svg.setAttribute(k, String(v));
    svg.dataset.rows = String(rows);
    svg.dataset.cols = String(cols);
    const parts: SVGElement[] = [svgEl("rect", { x: 0, y: 0, width, height, fill: "white" })];
    colLabels = shown.map((token, t) => {
      const label = svgEl("text", { x: LABEL_W + (t + 0.5) * CELL_W, y: HEADER_H - 6, "text-anchor": "middle", "font-weight": 600, cursor: "pointer" });
      label.dataset.testid = `lens-col-${t}`;
      label.textContent = shorten(token); // token text, never markup
      const title = svgEl("title", {});
      title.textContent = `token ${t}: ${JSON.stringify(model.get("tokens")?.[t] ?? token)}`;
      label.appendChild(title);
      return label;
    });
    rowLabels = names.map((name, site) => {
      // rows top to bottom: emb first, the model's output last (reading order of the stack)
      const label = svgEl("text", { x: LABEL_W - 6, y: HEADER_H + (site + 0.5) * CELL_H + 4, "text-anchor": "end", cursor: "pointer" });
      label.dataset.testid = `lens-row-${site}`;
      label.dataset.site = String(site);
      label.textContent = name;
      return label;
    });
    parts.push(...colLabels, ...rowLabels);
    for (let site = 0; site < rows; site++) {
      for (let t = 0; t < cols; t++) {
        const p = probs[site * cols + t];
        const group = svgEl("g", { cursor: "pointer" });
        group.dataset.testid = `lens-cell-${site}-${t}`;
        group.dataset.site = String(site);
        group.dataset.token = String(t);
        group.dataset.prob = String(p);
        const x = LABEL_W + t * CELL_W;
        const y = HEADER_H + site * CELL_H;
        group.appendChild(svgEl("rect", { x, y, width: CELL_W - 1, height: CELL_H - 1, fill: cssColor(scale, p) }));
        const text = svgEl("text", { x: x + CELL_W / 2, y: y + CELL_H / 2 + 4, "text-anchor": "middle", fill: isDark(colorAt(scale, p)) ? "white" : "#111" });
        const top = lens[site]?.[t] ?? "";
        text.textContent = shorten(top); // predicted token as text, never markup
        const title = svgEl("title", {});
        title.textContent = `${names[site]} after token ${t}: ${JSON.stringify(top)} p = ${p.toFixed(3)}`;
        group.append(text, title);
        parts.push(group);
      }
    }
    highlights = svgEl("g", { "pointer-events": "none" });
    parts.push(highlights);
    svg.replaceChildren(...parts);
    paintSelection();
  };

  const paintSelection = (): void => {
    const rows = rowLabels.length;
    const cols = colLabels.length;
    const site = layerToSite(model.get("selected_layer"));
    const selected = new Set(model.get("selected_tokens") ?? []);
    const hovered = model.get("hovered_token");
    const boxes: SVGElement[] = [];
    const box = (x: number, y: number, w: number, h: number, color: string): void => {
      boxes.push(svgEl("rect", { x: x + 1, y: y + 1, width: w - 2, height: h - 2, fill: "none", stroke: color, "stroke-width": 2 }));
    };
    rowLabels.forEach((label, r) => {
      label.dataset.selected = String(r === site && model.get("selected_layer") >= 0);
      label.setAttribute("font-weight", r === site ? "700" : "400");
    });
    if (model.get("selected_layer") >= 0 && site < rows) box(LABEL_W, HEADER_H + site * CELL_H, cols * CELL_W, CELL_H, "rgba(255, 170, 0, 0.95)");
    colLabels.forEach((label, t) => {
      label.dataset.selected = String(selected.has(t));
      if (selected.has(t)) box(LABEL_W + t * CELL_W, HEADER_H, CELL_W, rows * CELL_H, "#d62728");
    });
    if (hovered >= 0 && hovered < cols) box(LABEL_W + hovered * CELL_W, HEADER_H, CELL_W, rows * CELL_H, "#111");
    highlights.replaceChildren(...boxes);
  };

  const targetOf = (e: Event): HTMLElement | null => (e.target as Element).closest?.("[data-testid]") as HTMLElement | null;
  listen(svg, "click", (e) => {
    const hit = targetOf(e);
    const id = hit?.dataset.testid ?? "";
    if (id.startsWith("lens-row-")) selectLayer(Number(hit?.dataset.site));
    else if (id.startsWith("lens-col-")) {
      const t = Number(id.slice("lens-col-".length));
      if (t < limit() || limit() === Infinity) selectToken(t, e as MouseEvent);
    } else if (id.startsWith("lens-cell-")) {
      model.set("selected_layer", siteToLayer(Number(hit?.dataset.site)));
      selectToken(Number(hit?.dataset.token), e as MouseEvent);
    }
  });
  listen(svg, "mousemove", (e) => {
    const hit = targetOf(e);
    const token = hit?.dataset.token ?? (hit?.dataset.testid?.startsWith("lens-col-") ? hit.dataset.testid.slice(9) : undefined);
    setHover(token === undefined ? -1 : Number(token));
  });
  listen(svg, "mouseleave", () => setHover(-1));

  build();
  for (const name of ["site_names", "lens_tokens", "lens_probs", "display_tokens", "tokens"]) on(`change:${name}`, build);
  for (const name of ["selected_layer", "selected_tokens", "hovered_token"]) on(`change:${name}`, paintSelection);
  return () => {
    for (const cleanup of cleanups) cleanup();
    root.remove();
  };
}

export default { render };
