// Layer × head grid: one canvas cell per head, colored by a per-head value; DOM labels per
// layer (clickable) and per head column.
//
// DOM (stable for browser tests):
//   div.llmw-grid[data-testid="head-grid-view"]
//     div.llmw-layer-label[data-testid="layer-label-<l>"][data-layer="<l>"]   (click: select layer)
//     div.llmw-head-label[data-testid="head-label-<h>"]
//     canvas.llmw-grid-canvas[data-testid="head-grid"]
//        data-cell-size="<css px>" data-n-layers data-n-heads: cell (l, h) is centered at
//        x = (h + 0.5) * cell, y = (l + 0.5) * cell relative to the canvas

import { type ColorScale } from "./colors";
import { cellAt, drawMatrix, outlineCells, setupCanvas } from "./heatmap";
import { type Modifiers } from "./selection";

export interface GridCallbacks {
  onHeadClick(layer: number, head: number, mods: Modifiers): void;
  onLayerClick(layer: number): void;
}

export class GridView {
  readonly element: HTMLDivElement;
  readonly canvas: HTMLCanvasElement;
  private readonly cell: number;
  private values: Float32Array;
  private raw: Float32Array;
  private layer = -1;
  private heads: number[] = [];
  private readonly layerLabels: HTMLDivElement[] = [];
  private readonly cleanups: (() => void)[] = [];

  constructor(
    private readonly nLayers: number,
    private readonly nHeads: number,
    private scale: ColorScale,
    private readonly callbacks: GridCallbacks,
  ) {
    this.cell = Math.max(8, Math.min(22, Math.floor(380 / Math.max(1, nHeads))));
    this.values = new Float32Array(nLayers * nHeads).fill(NaN);
    this.raw = this.values;
    this.element = document.createElement("div");
    this.element.className = "llmw-grid";
    this.element.dataset.testid = "head-grid-view";
    this.element.style.gridTemplateColumns = `auto ${nHeads * this.cell}px`;
    this.element.style.setProperty("--llmw-cell", `${this.cell}px`);

    const corner = document.createElement("div");
    corner.className = "llmw-grid-corner";
    corner.textContent = "L \\ H";
    const headRow = document.createElement("div");
    headRow.className = "llmw-head-labels";
    for (let h = 0; h < nHeads; h++) {
      const label = document.createElement("div");
      label.className = "llmw-head-label";
      label.dataset.testid = `head-label-${h}`;
      label.textContent = nHeads > 16 && h % 4 !== 0 ? "" : String(h);
      headRow.appendChild(label);
    }
    const layerColumn = document.createElement("div");
    layerColumn.className = "llmw-layer-labels";
    for (let l = 0; l < nLayers; l++) {
      const label = document.createElement("div");
      label.className = "llmw-layer-label";
      label.dataset.testid = `layer-label-${l}`;
      label.dataset.layer = String(l);
      label.textContent = `L${l}`;
      label.title = `select all heads of layer ${l}`;
      layerColumn.appendChild(label);
      this.layerLabels.push(label);
    }
    this.canvas = document.createElement("canvas");
    this.canvas.className = "llmw-grid-canvas";
    this.canvas.dataset.testid = "head-grid";
    this.canvas.dataset.figure = "grid"; // exportable (lib/figures.ts)
    this.canvas.dataset.cellSize = String(this.cell);
    this.canvas.dataset.nLayers = String(nLayers);
    this.canvas.dataset.nHeads = String(nHeads);
    this.element.append(corner, headRow, layerColumn, this.canvas);

    this.listen(layerColumn, "click", (e) => {
      const layer = (e.target as HTMLElement).closest?.(".llmw-layer-label") as HTMLElement | null;
      if (layer?.dataset.layer !== undefined) this.callbacks.onLayerClick(Number(layer.dataset.layer));
    });
    this.listen(this.canvas, "click", (e) => {
      const m = e as MouseEvent;
      const hit = cellAt(m, nLayers, nHeads, this.cell, this.cell);
      if (hit) this.callbacks.onHeadClick(hit[0], hit[1], { shiftKey: m.shiftKey, ctrlKey: m.ctrlKey, metaKey: m.metaKey });
    });
    this.listen(this.canvas, "mousemove", (e) => {
      const hit = cellAt(e as MouseEvent, nLayers, nHeads, this.cell, this.cell);
      const v = hit ? this.raw[hit[0] * nHeads + hit[1]] : NaN;
      this.canvas.title = hit ? `layer ${hit[0]}, head ${hit[1]}: ${Number.isNaN(v) ? "not loaded" : v.toPrecision(3)}` : "";
    });
    this.draw();
  }

  private listen(target: EventTarget, type: string, handler: (e: Event) => void): void {
    target.addEventListener(type, handler);
    this.cleanups.push(() => target.removeEventListener(type, handler));
  }

  /** `unit`: [layer, head] values in [0, 1] for color (NaN = no data); `raw` for tooltips. */
  setValues(unit: Float32Array, raw: Float32Array, scale: ColorScale = this.scale): void {
    // every hover sets values; at long T they stay "no data" (hatched) until the kernel's
    // flow arrives, and repainting 1024 hatched cells per hover costs a few ms
    const same = scale === this.scale && sameValues(unit, this.values);
    this.values = unit;
    this.raw = raw;
    this.scale = scale;
    if (!same) this.draw();
  }

  setSelection(layer: number, heads: readonly number[]): void {
    this.layer = layer;
    this.heads = [...heads];
    this.layerLabels.forEach((label, l) => label.classList.toggle("llmw-layer-label--selected", l === layer));
    this.draw();
  }

  private draw(): void {
    const width = this.nHeads * this.cell;
    const height = this.nLayers * this.cell;
    const ctx = setupCanvas(this.canvas, width, height);
    if (!ctx) return; // no 2D context (e.g. jsdom without canvas)
    ctx.clearRect(0, 0, width, height);
    drawMatrix(ctx, this.values, this.nLayers, this.nHeads, this.scale, { x: 0, y: 0, width, height });
    if (this.layer >= 0) {
      outlineCells(ctx, this.heads.map((h) => [this.layer, h] as [number, number]), this.cell, this.cell, "#d62728");
    }
  }

  destroy(): void {
    this.cleanups.splice(0).forEach((fn) => fn());
    this.element.remove();
  }
}

/** Equal arrays, NaN equal to NaN. */
export function sameValues(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i] && !(Number.isNaN(a[i]) && Number.isNaN(b[i]))) return false;
  }
  return true;
}
