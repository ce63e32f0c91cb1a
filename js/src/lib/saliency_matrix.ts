// Saliency matrix of a generation (SaliencyWidget on an Explanation from generate(); Python
// half: llmasos_widgets/widgets/_generation_saliency.py). One row per generated token, one
// column per token of the sequence: row i attributes generated token i (its log-probability)
// to every earlier token, at the active residual site (the selected layer's, else the
// embeddings). Each row is scaled by its own largest |score|, as the [site, token] map.
// Clicking a row (or a generated token in the strip) sets `generated_token`, whose row is then
// the map above. Hidden when the widget shows no generation.
//
// DOM hooks for browser tests:
//   div[data-testid="saliency-matrix-view"][hidden]
//     canvas[data-testid="saliency-matrix"][data-figure="saliency-matrix"][data-rows][data-cols]
//       [data-cell-width][data-cell-height][data-site]
//     div[data-testid="matrix-row-<position>"][data-selected]   row labels (generated tokens)

import type { TensorPayload } from "./buffers";
import { decodeTensor } from "./buffers";
import { heatmapFrame } from "./dom";
import type { ColorScale } from "./colors";
import { drawMatrix, setupCanvas } from "./heatmap";
import { activeRow, formatScore, rowUnits, siteLabel } from "./saliency_scale";
import { type ShownToken, tokenLabel } from "./token_text";

/** The traits this view reads and writes (same names as the Python traits). */
export interface SaliencyMatrixModel {
  get(name: "generated_scores"): TensorPayload | Record<string, never> | undefined;
  get(name: "generated_token" | "prompt_length" | "selected_layer" | "hovered_token"): number;
  get(name: "sites"): number[];
  set(name: "generated_token", value: number): void;
  save_changes(): void;
}

const CELL_HEIGHT = 14;
const MAX_CELL_WIDTH = 28;
const MIN_CELL_WIDTH = 4;
const MAX_WIDTH = 900;

/** Rows of one site out of [generated, site, token] scores: [generated, token]. */
export function siteSlice(data: Float32Array, shape: readonly number[], siteIndex: number): Float32Array {
  const [rows, sites, cols] = shape;
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) out.set(data.subarray((r * sites + siteIndex) * cols, (r * sites + siteIndex + 1) * cols), r * cols);
  return out;
}

export interface SaliencyMatrixView {
  element: HTMLElement;
  /** Re-read the payload (after `generated_scores` or `sites` changed) and repaint. */
  update(): void;
  /** Repaint the selection (generated token, layer, hover) without decoding again. */
  paint(): void;
}

export function mountSaliencyMatrix(
  model: SaliencyMatrixModel,
  listen: (target: EventTarget, type: string, handler: (e: Event) => void) => void,
  tokens: () => readonly ShownToken[],
  scale: ColorScale,
): SaliencyMatrixView {
  const element = document.createElement("div");
  element.className = "llmw-saliency-matrix";
  element.dataset.testid = "saliency-matrix-view";
  const title = document.createElement("div");
  title.className = "llmw-saliency-caption";
  const { element: body, labels, canvas } = heatmapFrame("saliency-matrix", "saliency-matrix", "pointer");
  element.append(title, body);

  let data: Float32Array = new Float32Array(0);
  let shape: number[] = [0, 0, 0];
  let cellWidth = MAX_CELL_WIDTH;
  let rowLabels: HTMLDivElement[] = [];

  const promptLength = (): number => model.get("prompt_length") ?? -1;

  const update = (): void => {
    const payload = model.get("generated_scores");
    const has = payload !== undefined && "view" in payload;
    element.hidden = !has;
    if (!has) {
      data = new Float32Array(0);
      shape = [0, 0, 0];
      return;
    }
    const tensor = decodeTensor(payload as TensorPayload);
    data = tensor.data as Float32Array;
    shape = [...tensor.shape];
    rowLabels = Array.from({ length: shape[0] }, (_, i) => {
      const position = promptLength() + i;
      const label = document.createElement("div");
      label.className = "llmw-saliency-row-label";
      label.dataset.testid = `matrix-row-${position}`;
      label.dataset.position = String(position);
      label.style.height = `${CELL_HEIGHT}px`;
      label.style.lineHeight = `${CELL_HEIGHT}px`;
      label.title = `generated token ${position}: click to show its map`;
      return label;
    });
    labels.replaceChildren(...rowLabels);
    paint();
  };

  const paint = (): void => {
    const [rows, , cols] = shape;
    if (rows === 0) return;
    const sites = model.get("sites") ?? [];
    const siteIndex = activeRow(sites, model.get("selected_layer"));
    const units = rowUnits(siteSlice(data, shape, siteIndex), rows, cols);
    cellWidth = Math.max(MIN_CELL_WIDTH, Math.min(MAX_CELL_WIDTH, Math.floor(MAX_WIDTH / Math.max(cols, 1))));
    const width = cols * cellWidth;
    const height = rows * CELL_HEIGHT;
    Object.assign(canvas.dataset, {
      rows: String(rows),
      cols: String(cols),
      cellWidth: String(cellWidth),
      cellHeight: String(CELL_HEIGHT),
      site: String(sites[siteIndex] ?? 0),
    });
    const ctx = setupCanvas(canvas, width, height);
    if (!ctx) return;
    ctx.clearRect(0, 0, width, height);
    drawMatrix(ctx, units, rows, cols, scale, { x: 0, y: 0, width, height });
    const selected = model.get("generated_token") - promptLength();
    if (selected >= 0 && selected < rows) {
      ctx.save();
      ctx.strokeStyle = "rgba(255, 170, 0, 0.9)";
      ctx.lineWidth = 2;
      ctx.strokeRect(1, selected * CELL_HEIGHT + 1, width - 2, CELL_HEIGHT - 2);
      ctx.restore();
    }
    const shown = tokens(); // the strip's tokens may be (re)built after this view
    rowLabels.forEach((label, i) => {
      const position = promptLength() + i;
      label.textContent = shown[position] ? tokenLabel(shown[position]) : String(position); // text only
      label.dataset.selected = String(i === selected);
    });
    title.textContent = `saliency of each generated token (rows) to every token (columns) at ${siteLabel(sites[siteIndex] ?? 0)}; rows scaled by their largest |score|`;
  };

  const choose = (row: number): void => {
    if (row < 0 || row >= shape[0]) return;
    model.set("generated_token", promptLength() + row);
    model.save_changes();
  };
  const cellOf = (e: MouseEvent): [number, number] | null => {
    const r = Math.floor(e.offsetY / CELL_HEIGHT);
    const c = Math.floor(e.offsetX / cellWidth);
    return r >= 0 && c >= 0 && r < shape[0] && c < shape[2] ? [r, c] : null;
  };
  listen(canvas, "click", (e) => {
    const cell = cellOf(e as MouseEvent);
    if (cell) choose(cell[0]);
  });
  listen(canvas, "mousemove", (e) => {
    const cell = cellOf(e as MouseEvent);
    if (!cell) return;
    const [r, c] = cell;
    const shown = tokens();
    const siteIndex = activeRow(model.get("sites") ?? [], model.get("selected_layer"));
    const value = data[(r * shape[1] + siteIndex) * shape[2] + c];
    const name = (t: number): string => JSON.stringify(shown[t] ? tokenLabel(shown[t]) : "");
    canvas.title = `generated ${name(promptLength() + r)} ← token ${c} ${name(c)}: ${formatScore(value)}`;
  });
  listen(labels, "click", (e) => {
    const label = (e.target as HTMLElement).closest?.("[data-position]") as HTMLElement | null;
    if (label?.dataset.position !== undefined) choose(Number(label.dataset.position) - promptLength());
  });
  update();
  return { element, update, paint };
}
