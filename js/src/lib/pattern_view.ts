// Pattern view for the selected head(s), at any T: the [query, key] matrix is never sent
// whole. The view asks the kernel for the region it shows pooled at its pixel resolution
// (`request_view`, see lib/pattern_lod.ts and widgets/_pattern_views.py) and paints what
// comes back; zoom (wheel, buttons, drag a rectangle) and pan (arrow keys, shift-drag) ask for
// the new region, so exact single cells are a few zooms away. The old image stays, cropped to
// the new region, until the detail arrives. Axes carry token labels wherever they fit; a
// legend gives the scale and what was pooled; hovering a cell shows its exact weight, or for a
// pooled block its range, what was pooled and its max with the argmax cell. Clicking sets the
// cell (the block's argmax when pooled) as `selected_cell`.
//
// DOM (stable for browser tests):
//   div.llmw-pattern-view[data-testid="pattern-view"][data-mode="average|side_by_side"]
//     div[data-testid="pattern-status"]              text: what is shown / loading
//     div[data-testid="pattern-pooling"]             e.g. "max over 23×23-token blocks"
//     button[data-testid="zoom-in" | "zoom-out" | "zoom-reset"]
//     div.llmw-pattern-panel > canvas[data-testid="pattern-y-axis"], canvas[data-testid="pattern-x-axis"],
//       canvas.llmw-pattern-matrix[data-testid="pattern-matrix"] (tabindex 0: arrow keys pan)
//        data-layer, data-heads="2,5" (the heads drawn in this matrix), data-n-tokens,
//        data-rows="q0,q1", data-cols="k0,k1" (the region), data-n-rows, data-n-cols (blocks),
//        data-exact, data-loaded-request: block r spans y in [r, r+1) * height / n-rows
//        data-scale-max (the color scale's max), data-sinks-excluded ("true" when attention
//        sinks were left out of it: setSinks)
//       canvas[data-testid="pattern-x-axis"][data-sinks="0,..."]: sink keys marked on the axis
//     div[data-testid="pattern-tooltip"]  data-query, data-key, data-weight, data-pooled,
//        data-block="q0,q1,k0,k1" (the hovered cell; query/key = argmax when pooled)
//     div[data-testid="legend"]                      (lib/legend.ts)
//     canvas[data-testid="line-view"]                (lib/line_view.ts)

import { type QuantizedPattern } from "./buffers";
import { type ColorScale, attentionToUnit } from "./colors";
import { drawMatrix, setupCanvas } from "./heatmap";
import { renderLegend, updateLegend } from "./legend";
import { LineView, truncatePieces } from "./line_view";
import {
  type CellInfo,
  type PooledView,
  type Region,
  type ViewRequestSpec,
  blockAtPixel,
  cellInfo,
  dragRegion,
  fullRegion,
  labelledBlocks,
  pan,
  pixelBlocks,
  poolingNote,
  requestShape,
  sameRegion,
  zoomAt,
} from "./pattern_lod";
import { type ShownToken, tokenLabel, tokenPieces } from "./token_text";
import { holdsSink, scaleMax } from "./sinks";

export const SINK_COLOR = "#8e44ad";

export { truncatePieces };
export type PatternMode = "average" | "side_by_side";

export const MAX_SIDE_BY_SIDE = 8;
const MATRIX_PX = 360;
const Y_AXIS_PX = 96;
const X_AXIS_PX = 72;
const LABEL_MIN_PX = 12;
const WHEEL_FACTOR = 1.5;
const BUTTON_FACTOR = 2;
const REQUEST_TIMEOUT_MS = 4000;

export interface PatternViewCallbacks {
  /** Pointer over query t of a matrix or token t of the line view (-1 on leave). */
  onHover(t: number): void;
  /** Ask the kernel for a pooled view; returns the request id the reply will carry. */
  requestView(spec: ViewRequestSpec): number;
  /** A cell was clicked: [query, key] (the block's argmax when pooled). */
  onSelectCell(cell: [number, number]): void;
}

interface Panel {
  element: HTMLDivElement;
  canvas: HTMLCanvasElement;
  xAxis: HTMLCanvasElement;
  yAxis: HTMLCanvasElement;
  base: HTMLCanvasElement; // the pooled image of `view`, redrawn only when a view arrives
  px: number;
}

export class PatternView {
  readonly element: HTMLDivElement;
  private readonly status: HTMLDivElement;
  private readonly pooling: HTMLDivElement;
  private readonly matrices: HTMLDivElement;
  private readonly tooltip: HTMLDivElement;
  private readonly legend: HTMLElement;
  private readonly lineView: LineView;
  private panels: Panel[] = [];
  private mode: PatternMode = "average";
  private layer = -1;
  private heads: number[] = [];
  private region: Region;
  private view: PooledView | null = null;
  private latestRequest = -1;
  private inFlight: { id: number; at: number } | null = null;
  private queued = false;
  private hovered = -1;
  private selectedCell: [number, number] | null = null;
  private sinks: number[] = [];
  private sinkNotes: ReadonlyMap<number, string> = new Map();
  private excludeSinks = false;
  private drag: { panel: Panel; x: number; y: number; shift: boolean; x1: number; y1: number } | null = null;
  private readonly cleanups: (() => void)[] = [];

  constructor(
    private tokens: readonly ShownToken[],
    private readonly scale: ColorScale,
    private readonly callbacks: PatternViewCallbacks,
  ) {
    this.region = fullRegion(tokens.length);
    this.element = document.createElement("div");
    this.element.className = "llmw-pattern-view";
    this.element.dataset.testid = "pattern-view";
    this.element.style.position = "relative";
    this.status = this.div("llmw-pattern-status", "pattern-status");
    this.pooling = this.div("llmw-pattern-pooling", "pattern-pooling");
    const zoomBar = this.div("llmw-zoom-bar", "zoom-bar");
    zoomBar.append(
      this.button("zoom-in", "+", "zoom in (or: wheel on the matrix, drag a rectangle)", () => this.zoom(BUTTON_FACTOR)),
      this.button("zoom-out", "−", "zoom out", () => this.zoom(1 / BUTTON_FACTOR)),
      this.button("zoom-reset", "reset", "whole pattern", () => this.setRegion(fullRegion(this.tokens.length))),
    );
    this.matrices = this.div("llmw-pattern-matrices", "pattern-matrices");
    this.tooltip = this.div("llmw-pattern-tooltip", "pattern-tooltip");
    this.tooltip.style.cssText =
      "position:absolute;display:none;pointer-events:none;z-index:5;background:rgba(255,255,255,0.96);border:1px solid #999;border-radius:3px;padding:3px 6px;font:11px ui-monospace,monospace;white-space:pre;color:#111";
    const legendHost = document.createElement("div");
    this.legend = renderLegend(legendHost, { label: "attention weight", units: "probability", min: 0, max: 1, scale: "sequential", colors: scale, transform: "sqrt" });
    this.lineView = new LineView(tokens, (t) => this.callbacks.onHover(t));
    this.element.append(this.status, zoomBar, this.pooling, this.matrices, legendHost, this.lineView.canvas, this.tooltip);
    this.listen(window, "mouseup", (e) => this.endDrag(e as MouseEvent));
    this.setStatus("Click a head in the grid (or a layer label) to see its attention pattern.");
  }

  private div(className: string, testid: string): HTMLDivElement {
    const el = document.createElement("div");
    el.className = className;
    el.dataset.testid = testid;
    return el;
  }

  private button(testid: string, text: string, title: string, onClick: () => void): HTMLButtonElement {
    const b = document.createElement("button");
    b.type = "button";
    b.dataset.testid = testid;
    b.textContent = text;
    b.title = title;
    this.listen(b, "click", onClick);
    return b;
  }

  private listen(target: EventTarget, type: string, handler: (e: Event) => void): void {
    target.addEventListener(type, handler, type === "wheel" ? { passive: false } : undefined);
    this.cleanups.push(() => target.removeEventListener(type, handler));
  }

  setStatus(text: string): void {
    this.status.textContent = text;
  }

  get currentRegion(): Region {
    return { ...this.region };
  }

  /**
   * Show `heads` of `layer`. `patterns` are the whole quantized patterns the browser holds
   * (small texts only): they feed the line view; the matrix always comes from pooled views.
   */
  show(layer: number, heads: readonly number[], patterns: readonly QuantizedPattern[], mode: PatternMode): void {
    const changed = layer !== this.layer || mode !== this.mode || heads.join() !== this.heads.join();
    this.mode = mode;
    this.layer = layer;
    this.heads = [...heads];
    this.element.dataset.mode = mode;
    const shown = mode === "side_by_side" ? patterns.slice(0, MAX_SIDE_BY_SIDE) : patterns;
    this.lineView.setGroups(patterns.length === 0 ? [] : mode === "average" ? [[...patterns]] : shown.map((p) => [p]), mode === "side_by_side");
    this.lineView.canvas.style.display = patterns.length > 0 || this.tokens.length === 0 ? "" : "none";
    if (!changed) return;
    this.view = null;
    this.buildPanels();
    this.request();
  }

  private panelHeads(): number[][] {
    if (this.layer < 0 || this.heads.length === 0) return [];
    return this.mode === "average" ? [this.heads] : this.heads.slice(0, MAX_SIDE_BY_SIDE).map((h) => [h]);
  }

  private buildPanels(): void {
    this.panels.forEach((p) => p.element.remove());
    this.panels = [];
    const groups = this.panelHeads();
    const px = groups.length > 1 ? Math.max(120, Math.floor((2 * MATRIX_PX) / groups.length)) : MATRIX_PX;
    for (const group of groups) {
      const element = document.createElement("div");
      element.className = "llmw-pattern-panel";
      element.style.cssText = `display:grid;grid-template-columns:${Y_AXIS_PX}px ${px}px;grid-template-rows:${X_AXIS_PX}px ${px}px`;
      const corner = document.createElement("div");
      corner.style.cssText = "font-size:10px;color:#888;align-self:end;text-align:right;padding:2px";
      corner.textContent = "query \\ key";
      const xAxis = document.createElement("canvas");
      xAxis.dataset.testid = "pattern-x-axis";
      const yAxis = document.createElement("canvas");
      yAxis.dataset.testid = "pattern-y-axis";
      const canvas = document.createElement("canvas");
      canvas.className = "llmw-pattern-matrix";
      canvas.dataset.testid = "pattern-matrix";
      canvas.dataset.figure = "pattern"; // exportable (lib/figures.ts, contract C5)
      canvas.dataset.layer = String(this.layer);
      canvas.dataset.heads = group.join(",");
      canvas.dataset.nTokens = String(this.tokens.length);
      canvas.tabIndex = 0;
      canvas.title = `layer ${this.layer}, head(s) ${group.join(", ")}: rows = query, columns = key`;
      element.append(corner, xAxis, yAxis, canvas);
      const panel: Panel = { element, canvas, xAxis, yAxis, base: document.createElement("canvas"), px };
      this.wirePanel(panel);
      this.matrices.appendChild(element);
      this.panels.push(panel);
    }
    this.drawPanels();
  }

  private wirePanel(panel: Panel): void {
    const { canvas } = panel;
    this.listen(canvas, "mousemove", (e) => this.onMove(panel, e as MouseEvent));
    this.listen(canvas, "mouseleave", () => {
      this.tooltip.style.display = "none";
      this.callbacks.onHover(-1);
    });
    this.listen(canvas, "mousedown", (e) => {
      const m = e as MouseEvent;
      if (m.button !== 0) return;
      m.preventDefault();
      canvas.focus();
      this.drag = { panel, x: m.offsetX, y: m.offsetY, x1: m.offsetX, y1: m.offsetY, shift: m.shiftKey };
    });
    this.listen(canvas, "wheel", (e) => {
      const w = e as WheelEvent;
      w.preventDefault();
      if (w.deltaY === 0) return;
      this.zoom(w.deltaY < 0 ? WHEEL_FACTOR : 1 / WHEEL_FACTOR, w.offsetX / panel.px, w.offsetY / panel.px);
    });
    this.listen(canvas, "keydown", (e) => {
      const k = e as KeyboardEvent;
      const step: Record<string, [number, number]> = { ArrowLeft: [-0.25, 0], ArrowRight: [0.25, 0], ArrowUp: [0, -0.25], ArrowDown: [0, 0.25] };
      const move = step[k.key];
      if (move) {
        k.preventDefault();
        this.setRegion(pan(this.region, this.tokens.length, move[0], move[1]));
      } else if (k.key === "+" || k.key === "=") this.zoom(BUTTON_FACTOR);
      else if (k.key === "-") this.zoom(1 / BUTTON_FACTOR);
      else if (k.key === "0") this.setRegion(fullRegion(this.tokens.length));
    });
  }

  private onMove(panel: Panel, e: MouseEvent): void {
    if (this.drag) {
      this.drag.x1 = e.offsetX;
      this.drag.y1 = e.offsetY;
      this.drawOverlay(this.drag.panel);
      return;
    }
    const info = this.cellAtPixel(panel, e.offsetX, e.offsetY);
    if (!info) {
      this.tooltip.style.display = "none";
      return;
    }
    this.showTooltip(info, panel, e.offsetX, e.offsetY);
    const t = info.pooled ? (info.query >= 0 ? info.query : info.q0) : info.q0;
    this.callbacks.onHover(t);
  }

  /** The cell of the current view under a pixel of a panel (null: no data there yet). */
  cellAtPixel(panel: Panel, x: number, y: number): CellInfo | null {
    const view = this.view;
    if (!view || !sameRegion(view.region, this.region)) return null;
    const index = this.panels.indexOf(panel);
    const { q0, q1, k0, k1 } = view.region;
    const row = blockAtPixel(y, panel.px, view.rowEdges, q0, q1);
    const col = blockAtPixel(x, panel.px, view.colEdges, k0, k1);
    if (row < 0 || col < 0 || index < 0 || index >= view.nPanels) return null;
    return cellInfo(view, index, row, col);
  }

  /**
   * Attention sinks (trait `attention_sinks`): marked on the key axis and in the tooltip;
   * with `exclude` the color scale's max is taken over the other keys' columns, and the sink
   * cells are drawn at the top color (capped). Sinks are never hidden.
   */
  setSinks(notes: ReadonlyMap<number, string>, exclude: boolean): void {
    const positions = [...notes.keys()].sort((a, b) => a - b);
    const changed = positions.join() !== this.sinks.join() || exclude !== this.excludeSinks;
    this.sinks = positions;
    this.sinkNotes = notes;
    this.excludeSinks = exclude;
    if (changed) this.drawPanels();
  }

  private label(t: number): string {
    const token = this.tokens[t];
    return token ? JSON.stringify(tokenLabel(token)) : "?";
  }

  private showTooltip(info: CellInfo, panel: Panel, x: number, y: number): void {
    const tip = this.tooltip;
    const w = formatWeight(info.value);
    let text: string;
    if (!info.pooled) {
      text = `query ${info.q0} ${this.label(info.q0)}\nkey   ${info.k0} ${this.label(info.k0)}\nweight ${w}`;
    } else {
      const what = this.view?.reduce === "sum" ? "sum" : "max";
      const size = `${info.q1 - info.q0}×${info.k1 - info.k0}`;
      const heads = this.view && this.view.combine === "mean" && this.view.heads.length > 1 ? ` (mean of ${this.view.heads.length} heads' block ${what})` : "";
      text = `queries ${info.q0}–${info.q1 - 1} × keys ${info.k0}–${info.k1 - 1}\n${what} of ${size} weights${heads}: ${w}`;
      if (info.query >= 0 && what === "max") text += `\nat query ${info.query} ${this.label(info.query)}, key ${info.key} ${this.label(info.key)}`;
      if (what === "max") text += "\n(zoom in for single cells; click: select the max cell)";
    }
    const sinkKeys = this.sinks.filter((j) => j >= info.k0 && j < info.k1);
    if (sinkKeys.length > 0) text += `\nkey ${sinkKeys.join(", ")}: ${this.sinkNotes.get(sinkKeys[0]) ?? "attention sink"}`;
    tip.textContent = text;
    tip.dataset.query = String(info.query);
    tip.dataset.key = String(info.key);
    tip.dataset.weight = String(info.value);
    tip.dataset.pooled = String(info.pooled);
    tip.dataset.block = [info.q0, info.q1, info.k0, info.k1].join(",");
    const hostRect = this.element.getBoundingClientRect();
    const rect = panel.canvas.getBoundingClientRect();
    tip.style.left = `${rect.left - hostRect.left + x + 14}px`;
    tip.style.top = `${rect.top - hostRect.top + y + 14}px`;
    tip.style.display = "block";
  }

  private endDrag(e: MouseEvent): void {
    const drag = this.drag;
    if (!drag) return;
    this.drag = null;
    const rect = drag.panel.canvas.getBoundingClientRect();
    const x1 = e.target === drag.panel.canvas ? e.offsetX : e.clientX - rect.left;
    const y1 = e.target === drag.panel.canvas ? e.offsetY : e.clientY - rect.top;
    const px = drag.panel.px;
    const moved = Math.abs(x1 - drag.x) > 4 || Math.abs(y1 - drag.y) > 4;
    if (!moved) {
      const info = this.cellAtPixel(drag.panel, drag.x, drag.y);
      this.drawOverlay(drag.panel);
      if (info && info.query >= 0 && info.key >= 0) this.callbacks.onSelectCell([info.query, info.key]);
      return;
    }
    if (drag.shift) {
      this.setRegion(pan(this.region, this.tokens.length, -(x1 - drag.x) / px, -(y1 - drag.y) / px));
    } else {
      const clamp = (v: number): number => Math.max(0, Math.min(px - 1, v));
      this.setRegion(dragRegion(this.region, this.tokens.length, px, clamp(drag.x), clamp(drag.y), clamp(x1), clamp(y1)));
    }
  }

  /** Zoom by `factor` around (fx, fy) in [0, 1] of the matrix. */
  zoom(factor: number, fx = 0.5, fy = 0.5): void {
    this.setRegion(zoomAt(this.region, this.tokens.length, factor, fx, fy));
  }

  setRegion(region: Region): void {
    if (sameRegion(region, this.region)) return;
    const old = this.region;
    this.region = region;
    this.tooltip.style.display = "none";
    // preview: the old image cropped to the new region until the detail arrives
    for (const panel of this.panels) this.drawPreview(panel, old);
    this.drawAxes();
    this.request();
  }

  private request(): void {
    if (this.layer < 0 || this.heads.length === 0 || this.tokens.length === 0) return;
    const now = performance.now();
    if (this.inFlight && now - this.inFlight.at < REQUEST_TIMEOUT_MS) {
      this.queued = true; // one request at a time; the latest region is asked next
      return;
    }
    this.queued = false;
    const px = this.panels[0]?.px ?? MATRIX_PX;
    const id = this.callbacks.requestView({
      layer: this.layer,
      heads: this.mode === "average" ? [...this.heads] : this.heads.slice(0, MAX_SIDE_BY_SIDE),
      region: { ...this.region },
      shape: requestShape(this.region, px),
      combine: this.mode === "average" ? "mean" : "each",
      reduce: "max",
    });
    this.latestRequest = id;
    this.inFlight = { id, at: now };
    this.setStatus(this.statusText(true));
  }

  /** A decoded `view` reply; stale ones (another selection or region) are dropped. */
  receiveView(view: PooledView): void {
    if (this.inFlight?.id === view.requestId) this.inFlight = null;
    const current = view.requestId === this.latestRequest && view.layer === this.layer && sameRegion(view.region, this.region);
    if (current) {
      this.view = view;
      this.drawPanels();
    }
    if (this.queued || (!current && this.inFlight === null && !(this.view && sameRegion(this.view.region, this.region)))) this.request();
    this.setStatus(this.statusText(this.inFlight !== null));
  }

  private statusText(loading: boolean): string {
    if (this.layer < 0 || this.heads.length === 0) return "Click a head in the grid (or a layer label) to see its attention pattern.";
    const n = this.heads.length;
    const what = n === 1 ? "1 head" : this.mode === "average" ? `mean of ${n} heads` : `${Math.min(n, MAX_SIDE_BY_SIDE)} heads side by side`;
    const more = this.mode === "side_by_side" && n > MAX_SIDE_BY_SIDE ? ` (first ${MAX_SIDE_BY_SIDE})` : "";
    const { q0, q1, k0, k1 } = this.region;
    const where = `queries ${q0}–${q1 - 1}, keys ${k0}–${k1 - 1} of ${this.tokens.length}`;
    return `Layer ${this.layer}, heads ${this.heads.join(", ")}: ${what}${more}; ${where}${loading ? " — loading…" : ""}`;
  }

  /** The color scale's max, and whether sink columns were left out of it. */
  private vmax(view: PooledView): [number, boolean] {
    return scaleMax(view.values, view.nCols, view.colEdges, this.sinks, this.excludeSinks);
  }

  private drawPanels(): void {
    const view = this.view;
    const ready = view !== null && sameRegion(view.region, this.region);
    const [vmax, sinksLeftOut] = ready ? this.vmax(view) : [1, false];
    this.panels.forEach((panel, p) => {
      const { canvas, px } = panel;
      canvas.dataset.rows = `${this.region.q0},${this.region.q1}`;
      canvas.dataset.cols = `${this.region.k0},${this.region.k1}`;
      const ctx = setupCanvas(panel.base, px, px);
      if (!ctx) return;
      if (ready && p < view.nPanels) {
        // one image pixel per canvas pixel, each showing the block of the tokens under it
        const { q0, q1, k0, k1 } = view.region;
        const rows = Math.min(px, q1 - q0);
        const cols = Math.min(px, k1 - k0);
        const rowBlock = pixelBlocks(rows, view.rowEdges, q0, q1);
        const colBlock = pixelBlocks(cols, view.colEdges, k0, k1);
        const offset = p * view.nRows * view.nCols;
        const unit = new Float32Array(rows * cols);
        for (let y = 0; y < rows; y++) {
          const base = offset + rowBlock[y] * view.nCols;
          for (let x = 0; x < cols; x++) {
            const b = rowBlock[y] >= 0 && colBlock[x] >= 0 ? base + colBlock[x] : -1;
            unit[y * cols + x] = b >= 0 ? attentionToUnit(view.values[b], vmax) : NaN;
          }
        }
        drawMatrix(ctx, unit, rows, cols, this.scale, { x: 0, y: 0, width: px, height: px });
        canvas.dataset.nRows = String(view.nRows);
        canvas.dataset.nCols = String(view.nCols);
        canvas.dataset.exact = String(view.exact);
        canvas.dataset.loadedRequest = String(view.requestId);
        canvas.dataset.scaleMax = String(vmax);
        canvas.dataset.sinksExcluded = String(sinksLeftOut);
      } else {
        ctx.fillStyle = "#eee";
        ctx.fillRect(0, 0, px, px);
      }
      this.drawOverlay(panel);
    });
    if (ready) {
      const note = poolingNote(view);
      this.pooling.textContent = note;
      const sum = view.reduce === "sum";
      updateLegend(this.legend, {
        label: sum ? "block total weight" : view.exact ? "attention weight" : "block max weight",
        units: sum ? "sum of probabilities" : "probability",
        min: 0,
        max: vmax,
        scale: "sequential",
        colors: this.scale,
        transform: "sqrt",
        note: `${note}; color ∝ √weight${this.sinkLegendNote(view, sinksLeftOut)}`,
      });
    }
    this.drawAxes();
  }

  private sinkLegendNote(view: PooledView, leftOut: boolean): string {
    const shown = this.sinks.filter((j) => j >= view.region.k0 && j < view.region.k1);
    if (shown.length === 0) return "";
    const keys = `key${shown.length > 1 ? "s" : ""} ${shown.join(", ")}`;
    if (leftOut) return `; scale max over the keys that are not attention sinks: sink ${keys} capped at the top color`;
    return `; ${keys}: attention sink${shown.length > 1 ? "s" : ""} (▼ on the key axis)`;
  }

  private drawPreview(panel: Panel, old: Region): void {
    const ctx = setupCanvas(panel.canvas, panel.px, panel.px);
    if (!ctx) return;
    const { px, base } = panel;
    const s = base.width / px;
    const fx = px / (old.k1 - old.k0);
    const fy = px / (old.q1 - old.q0);
    const r = this.region;
    ctx.fillStyle = "#eee";
    ctx.fillRect(0, 0, px, px);
    ctx.imageSmoothingEnabled = false;
    const sx = (r.k0 - old.k0) * fx;
    const sy = (r.q0 - old.q0) * fy;
    const sw = (r.k1 - r.k0) * fx;
    const sh = (r.q1 - r.q0) * fy;
    // drawImage clips nothing outside the source: map only the overlap
    const x0 = Math.max(0, sx);
    const y0 = Math.max(0, sy);
    const x1 = Math.min(px, sx + sw);
    const y1 = Math.min(px, sy + sh);
    if (x1 <= x0 || y1 <= y0 || base.width === 0) return;
    ctx.drawImage(base, x0 * s, y0 * s, (x1 - x0) * s, (y1 - y0) * s, ((x0 - sx) / sw) * px, ((y0 - sy) / sh) * px, ((x1 - x0) / sw) * px, ((y1 - y0) / sh) * px);
  }

  /** Base image + hovered token's row and column, the selected cell and a drag rectangle. */
  private drawOverlay(panel: Panel): void {
    const { px } = panel;
    const ctx = setupCanvas(panel.canvas, px, px);
    if (!ctx) return;
    ctx.drawImage(panel.base, 0, 0, px, px);
    const { q0, q1, k0, k1 } = this.region;
    const fy = px / (q1 - q0);
    const fx = px / (k1 - k0);
    ctx.save();
    ctx.lineWidth = 1;
    const t = this.hovered;
    if (t >= q0 && t < q1) {
      ctx.strokeStyle = "#d62728";
      ctx.strokeRect(0, (t - q0) * fy, px, Math.max(fy, 2));
    }
    if (t >= k0 && t < k1) {
      ctx.strokeStyle = "#ff9896";
      ctx.strokeRect((t - k0) * fx, 0, Math.max(fx, 2), px);
    }
    const cell = this.selectedCell;
    if (cell && cell[0] >= q0 && cell[0] < q1 && cell[1] >= k0 && cell[1] < k1) {
      ctx.strokeStyle = "#ffffff";
      ctx.lineWidth = 2;
      const size = Math.max(6, fx);
      ctx.strokeRect((cell[1] - k0) * fx + fx / 2 - size / 2, (cell[0] - q0) * fy + fy / 2 - size / 2, size, size);
    }
    const drag = this.drag;
    if (drag && drag.panel === panel) {
      ctx.strokeStyle = "#111";
      ctx.setLineDash([4, 3]);
      ctx.strokeRect(Math.min(drag.x, drag.x1), Math.min(drag.y, drag.y1), Math.abs(drag.x1 - drag.x), Math.abs(drag.y1 - drag.y));
    }
    ctx.restore();
  }

  /** Token labels along both axes, at every block where they fit (LABEL_MIN_PX apart). */
  private drawAxes(): void {
    const view = this.view && sameRegion(this.view.region, this.region) ? this.view : null;
    for (const panel of this.panels) {
      const { px } = panel;
      const { q0, q1, k0, k1 } = this.region;
      const rowEdges = view ? view.rowEdges : null;
      const colEdges = view ? view.colEdges : null;
      const nRows = view ? view.nRows : Math.min(px, q1 - q0);
      const nCols = view ? view.nCols : Math.min(px, k1 - k0);
      const start = (edges: Int32Array | null, b: number, from: number, to: number, count: number): number =>
        edges ? edges[b] : from + Math.floor((b * (to - from)) / count);
      // pixel of a block's middle, where its tokens are drawn
      const middle = (edges: Int32Array | null, b: number, from: number, to: number, count: number): number =>
        edges ? (((edges[b] + edges[b + 1]) / 2 - from) / (to - from)) * px : ((b + 0.5) * px) / count;
      const y = setupCanvas(panel.yAxis, Y_AXIS_PX, px);
      if (y) {
        y.font = "10px ui-monospace, monospace";
        y.textBaseline = "middle";
        y.fillStyle = "#333";
        const rows = labelledBlocks(nRows, px, LABEL_MIN_PX);
        for (const b of rows) {
          const t = start(rowEdges, b, q0, q1, nRows);
          this.axisLabel(y, t, Y_AXIS_PX - 3, middle(rowEdges, b, q0, q1, nRows), t === this.hovered);
        }
        panel.yAxis.dataset.labels = String(rows.length);
      }
      const x = setupCanvas(panel.xAxis, px, X_AXIS_PX);
      if (x) {
        x.font = "10px ui-monospace, monospace";
        x.textBaseline = "middle";
        const cols = labelledBlocks(nCols, px, LABEL_MIN_PX);
        for (const b of cols) {
          const t = start(colEdges, b, k0, k1, nCols);
          x.save();
          x.translate(middle(colEdges, b, k0, k1, nCols), X_AXIS_PX - 3);
          x.rotate(-Math.PI / 2);
          this.axisLabel(x, t, 0, 0, t === this.hovered, "left");
          x.restore();
        }
        panel.xAxis.dataset.labels = String(cols.length);
        // attention sinks: a marker over each sink key in view, whether or not its label fits
        const marked = this.sinks.filter((j) => j >= k0 && j < k1);
        x.fillStyle = SINK_COLOR;
        for (const j of marked) {
          const cx = ((j + 0.5 - k0) / (k1 - k0)) * px;
          x.beginPath();
          x.moveTo(cx - 4, 0);
          x.lineTo(cx + 4, 0);
          x.lineTo(cx, 7);
          x.closePath();
          x.fill();
        }
        panel.xAxis.dataset.sinks = marked.join(",");
      }
    }
  }

  private axisLabel(ctx: CanvasRenderingContext2D, t: number, x: number, y: number, hovered: boolean, align: "left" | "right" = "right"): void {
    const token = this.tokens[t];
    const text = `${truncatePieces(token ? tokenPieces(token) : [], 9)
      .map((p) => p.text)
      .join("")} ${t}`;
    ctx.fillStyle = hovered ? "#d62728" : holdsSink(this.sinks, t, t + 1) ? SINK_COLOR : "#333";
    ctx.textAlign = align === "right" ? "right" : "left";
    ctx.fillText(align === "right" ? text : `${t} ${text.slice(0, text.lastIndexOf(" "))}`, align === "right" ? x : x + 3, y);
  }

  setHovered(t: number): void {
    this.hovered = t;
    this.panels.forEach((panel) => this.drawOverlay(panel));
    this.lineView.setHovered(t);
  }

  setSelectedCell(cell: readonly number[]): void {
    this.selectedCell = cell.length === 2 ? [cell[0], cell[1]] : null;
    this.panels.forEach((panel) => this.drawOverlay(panel));
  }

  destroy(): void {
    this.cleanups.splice(0).forEach((fn) => fn());
    this.lineView.destroy();
    this.element.remove();
  }
}

/** A weight as the kernel computed it (float32, shortest round-trip digits). */
export function formatWeight(v: number): string {
  if (!Number.isFinite(v)) return "n/a";
  return String(Math.fround(v));
}
