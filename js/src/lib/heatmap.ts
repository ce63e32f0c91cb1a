// Canvas drawing shared by the grid and pattern views: HiDPI setup, a cell grid with "no
// data" hatching, and a value matrix painted through ImageData (one pixel per cell, scaled
// up without smoothing) — thousands of cells cost one drawImage, not thousands of nodes.

import { type ColorScale, unitToIndex } from "./colors";

/** Size the canvas backing store for the device pixel ratio; drawing stays in CSS pixels. */
export function setupCanvas(canvas: HTMLCanvasElement, width: number, height: number): CanvasRenderingContext2D | null {
  const ratio = globalThis.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(width * ratio));
  const h = Math.max(1, Math.round(height * ratio));
  const cssWidth = `${width}px`;
  const cssHeight = `${height}px`;
  if (canvas.style.width !== cssWidth) canvas.style.width = cssWidth;
  if (canvas.style.height !== cssHeight) canvas.style.height = cssHeight;
  if (canvas.width === w && canvas.height === h) {
    // Same size (every hover redraws the same canvases): reset the context — cleared bitmap,
    // default state — without reallocating the backing store as `canvas.width = w` does.
    const ctx = canvas.getContext("2d");
    if (ctx && typeof ctx.reset === "function") {
      ctx.reset();
      ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
      return ctx;
    }
  }
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext("2d");
  ctx?.setTransform(ratio, 0, 0, ratio, 0, 0);
  return ctx;
}

/** RGBA pixels for unit values (row-major [rows, cols]); NaN becomes light grey. */
export function unitValuesToRgba(values: ArrayLike<number>, scale: ColorScale, out?: Uint8ClampedArray): Uint8ClampedArray {
  const rgba = out ?? new Uint8ClampedArray(values.length * 4);
  for (let i = 0; i < values.length; i++) {
    const idx = unitToIndex(values[i]);
    if (idx < 0) {
      rgba.set([230, 230, 230, 255], i * 4);
    } else {
      rgba[i * 4] = scale.lut[idx * 3];
      rgba[i * 4 + 1] = scale.lut[idx * 3 + 1];
      rgba[i * 4 + 2] = scale.lut[idx * 3 + 2];
      rgba[i * 4 + 3] = 255;
    }
  }
  return rgba;
}

/**
 * Paint [rows, cols] unit values into the rectangle (x, y, width, height) of ctx.
 * NaN cells are hatched ("not available yet").
 */
export function drawMatrix(
  ctx: CanvasRenderingContext2D,
  values: ArrayLike<number>,
  rows: number,
  cols: number,
  scale: ColorScale,
  rect: { x: number; y: number; width: number; height: number },
): void {
  if (rows === 0 || cols === 0) return;
  const image = new ImageData(unitValuesToRgba(values, scale) as Uint8ClampedArray<ArrayBuffer>, cols, rows);
  const offscreen = document.createElement("canvas");
  offscreen.width = cols;
  offscreen.height = rows;
  offscreen.getContext("2d")?.putImageData(image, 0, 0);
  ctx.save();
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(offscreen, rect.x, rect.y, rect.width, rect.height);
  ctx.restore();
  const cw = rect.width / cols;
  const ch = rect.height / rows;
  if (cw < 4 || ch < 4) return; // hatching is invisible below a few pixels
  // One path for all hatched cells: a stroke per cell costs ~1 ms per 100 cells, and a
  // whole grid can be "no data" while a token is hovered (every hover repaints the grid).
  ctx.save();
  ctx.strokeStyle = "rgba(0, 0, 0, 0.25)";
  ctx.lineWidth = 1;
  ctx.beginPath();
  let any = false;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      if (!Number.isNaN(values[r * cols + c])) continue;
      const x = rect.x + c * cw;
      const y = rect.y + r * ch;
      ctx.moveTo(x, y + ch);
      ctx.lineTo(x + cw, y);
      any = true;
    }
  }
  if (any) ctx.stroke();
  ctx.restore();
}

/** Outline cells, e.g. the selected heads. */
export function outlineCells(
  ctx: CanvasRenderingContext2D,
  cells: readonly [number, number][],
  cellW: number,
  cellH: number,
  color: string,
  lineWidth = 2,
): void {
  ctx.save();
  ctx.strokeStyle = color;
  ctx.lineWidth = lineWidth;
  for (const [r, c] of cells) {
    ctx.strokeRect(c * cellW + lineWidth / 2, r * cellH + lineWidth / 2, cellW - lineWidth, cellH - lineWidth);
  }
  ctx.restore();
}

/** Cell under a pointer event, or null outside [rows, cols]. */
export function cellAt(
  e: { offsetX: number; offsetY: number },
  rows: number,
  cols: number,
  cellW: number,
  cellH: number,
): [number, number] | null {
  const r = Math.floor(e.offsetY / cellH);
  const c = Math.floor(e.offsetX / cellW);
  if (r < 0 || c < 0 || r >= rows || c >= cols) return null;
  return [r, c];
}
