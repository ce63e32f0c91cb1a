// Pattern view for the selected head(s): the [query, key] matrix on canvas (each head
// max-pooled to at most 512 cells per side, then averaged) and a head-view style line view (query tokens left, key tokens
// right, a line per strong attention weight). Several heads are averaged into one matrix or
// drawn side by side (at most MAX_SIDE_BY_SIDE); in the line view side-by-side heads get one
// color each. Only a window of tokens is drawn in the line view, and only each query's
// top-k keys, so T = 4096 stays interactive.
//
// DOM (stable for browser tests):
//   div.llmw-pattern-view[data-testid="pattern-view"][data-mode="average|side_by_side"]
//     div[data-testid="pattern-status"]              text: what is shown / loading
//     canvas.llmw-pattern-matrix[data-testid="pattern-matrix"]
//        data-layer, data-heads="2,5" (the heads drawn in this matrix), data-n-tokens
//        query row i spans y in [i, i+1) * height / n_tokens
//     canvas.llmw-line-view[data-testid="line-view"]
//        data-window-start, data-window-size, data-row-height: token i (in the window) is on
//        the row y = (i - start + 0.5) * row height

import { type ColorScale, attentionToUnit } from "./colors";
import { type QuantizedPattern } from "./buffers";
import { drawMatrix, setupCanvas } from "./heatmap";
import { meanRow, pooledMean, readRow, topK } from "./pattern";
import { type ShownToken, type TokenPiece, tokenPieces } from "./token_strip";

export type PatternMode = "average" | "side_by_side";

export const MAX_SIDE_BY_SIDE = 8;
const MATRIX_PX = 360;
const MAX_POOLED = 512;
const LINE_ROWS = 36;
const LINE_ROW_PX = 16;
const LINE_WIDTH_PX = 380;
const LINES_PER_QUERY = 4;
const MIN_LINE_WEIGHT = 0.02;
const HEAD_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

interface MatrixPanel {
  canvas: HTMLCanvasElement;
  base: HTMLCanvasElement; // the pattern image, redrawn only when the patterns change
  size: number;
}

export interface PatternViewCallbacks {
  /** Pointer over query row t of a matrix or token t of the line view (-1 on leave). */
  onHover(t: number): void;
}

export class PatternView {
  readonly element: HTMLDivElement;
  private readonly status: HTMLDivElement;
  private readonly matrices: HTMLDivElement;
  private readonly lineCanvas: HTMLCanvasElement;
  private panels: MatrixPanel[] = [];
  private groups: QuantizedPattern[][] = [];
  private mode: PatternMode = "average";
  private hovered = -1;
  private windowStart = 0;
  // Line view: top keys per (group, query row) — rows are re-read only when the patterns
  // change, not on every hover (a whole layer at T = 2048 is 32 heads × T per row).
  private lineCache = new Map<number, [number, number][]>();
  private rowBuffer = new Float32Array(0);
  private readonly cleanups: (() => void)[] = [];

  constructor(
    private tokens: readonly ShownToken[],
    private readonly scale: ColorScale,
    private readonly callbacks: PatternViewCallbacks,
  ) {
    this.element = document.createElement("div");
    this.element.className = "llmw-pattern-view";
    this.element.dataset.testid = "pattern-view";
    this.status = document.createElement("div");
    this.status.className = "llmw-pattern-status";
    this.status.dataset.testid = "pattern-status";
    this.matrices = document.createElement("div");
    this.matrices.className = "llmw-pattern-matrices";
    this.lineCanvas = document.createElement("canvas");
    this.lineCanvas.className = "llmw-line-view";
    this.lineCanvas.dataset.testid = "line-view";
    this.lineCanvas.dataset.figure = "line"; // exportable (lib/figures.ts)
    this.element.append(this.status, this.matrices, this.lineCanvas);

    this.listen(this.matrices, "mousemove", (e) => {
      const m = e as MouseEvent;
      const canvas = m.target as HTMLElement;
      if (!(canvas instanceof HTMLCanvasElement)) return;
      const rect = canvas.getBoundingClientRect();
      const t = Math.floor(((m.clientY - rect.top) / rect.height) * this.tokens.length);
      if (t >= 0 && t < this.tokens.length) this.callbacks.onHover(t);
    });
    this.listen(this.matrices, "mouseleave", () => this.callbacks.onHover(-1));
    this.listen(this.lineCanvas, "mousemove", (e) => {
      const t = this.windowStart + Math.floor((e as MouseEvent).offsetY / LINE_ROW_PX);
      if (t < this.windowEnd()) this.callbacks.onHover(t);
    });
    this.listen(this.lineCanvas, "mouseleave", () => this.callbacks.onHover(-1));
    this.listen(this.lineCanvas, "wheel", (e) => {
      const w = e as WheelEvent;
      w.preventDefault();
      this.scrollTo(this.windowStart + Math.sign(w.deltaY) * 3);
      this.drawLines();
    });
    this.setStatus("Click a head in the grid (or a layer label) to see its attention pattern.");
  }

  private listen(target: EventTarget, type: string, handler: (e: Event) => void): void {
    target.addEventListener(type, handler, type === "wheel" ? { passive: false } : undefined);
    this.cleanups.push(() => target.removeEventListener(type, handler));
  }

  setStatus(text: string): void {
    this.status.textContent = text;
  }

  private windowSize(): number {
    return Math.min(LINE_ROWS, this.tokens.length);
  }

  private windowEnd(): number {
    return Math.min(this.tokens.length, this.windowStart + this.windowSize());
  }

  private scrollTo(start: number): void {
    this.windowStart = Math.max(0, Math.min(this.tokens.length - this.windowSize(), start));
  }

  /** Keep token t inside the line view's window, centering it when it was outside. */
  reveal(t: number): void {
    if (t < 0) return;
    if (t < this.windowStart || t >= this.windowEnd()) this.scrollTo(t - Math.floor(this.windowSize() / 2));
  }

  /** Show the patterns of `heads` in `layer`; missing ones (still loading) are skipped. */
  show(layer: number, heads: readonly number[], patterns: readonly QuantizedPattern[], mode: PatternMode): void {
    this.mode = mode;
    this.element.dataset.mode = mode;
    const shown = mode === "side_by_side" ? patterns.slice(0, MAX_SIDE_BY_SIDE) : patterns;
    this.groups = patterns.length === 0 ? [] : mode === "average" ? [[...patterns]] : shown.map((p) => [p]);
    this.lineCache.clear();
    this.panels.forEach((panel) => panel.canvas.remove());
    this.panels = [];
    const missing = heads.length - patterns.length;
    if (layer < 0 || heads.length === 0) {
      this.setStatus("Click a head in the grid (or a layer label) to see its attention pattern.");
    } else {
      const what =
        heads.length === 1 ? "1 head" : mode === "average" ? `mean of ${patterns.length} heads` : `${shown.length} heads side by side`;
      const more = mode === "side_by_side" && patterns.length > MAX_SIDE_BY_SIDE ? ` (first ${MAX_SIDE_BY_SIDE})` : "";
      const loading = missing > 0 ? ` — loading ${missing} pattern(s)…` : "";
      this.setStatus(`Layer ${layer}, heads ${heads.join(", ")}: ${what}${more}${loading}`);
    }
    const px = this.groups.length > 1 ? Math.max(120, Math.floor((2 * MATRIX_PX) / this.groups.length)) : MATRIX_PX;
    for (const group of this.groups) {
      const canvas = document.createElement("canvas");
      canvas.className = "llmw-pattern-matrix";
      canvas.dataset.testid = "pattern-matrix";
      canvas.dataset.figure = "pattern"; // exportable (lib/figures.ts)
      canvas.dataset.layer = String(layer);
      canvas.dataset.heads = group.map((p) => p.head).join(",");
      canvas.dataset.nTokens = String(group[0].n);
      const size = Math.min(group[0].n, MAX_POOLED);
      const base = document.createElement("canvas");
      const ctx = setupCanvas(base, px, px);
      if (ctx) {
        const pooled = pooledMean(group, size);
        let vmax = 0;
        for (const v of pooled) vmax = Math.max(vmax, v);
        const unit = pooled.map((v) => attentionToUnit(v, vmax));
        drawMatrix(ctx, unit, size, size, this.scale, { x: 0, y: 0, width: px, height: px });
      }
      canvas.title = `layer ${layer}, head(s) ${canvas.dataset.heads}: rows = query, columns = key`;
      this.matrices.appendChild(canvas);
      this.panels.push({ canvas, base, size: px });
    }
    this.drawOverlays();
    this.drawLines();
  }

  setHovered(t: number): void {
    this.hovered = t;
    this.reveal(t);
    this.drawOverlays();
    this.drawLines();
  }

  setTokens(tokens: readonly ShownToken[]): void {
    this.tokens = tokens;
    this.lineCache.clear();
    this.scrollTo(this.windowStart);
  }

  /** Matrix image + the hovered token's row (query) and column (key) outlined. */
  private drawOverlays(): void {
    const n = this.tokens.length;
    for (const panel of this.panels) {
      const ctx = setupCanvas(panel.canvas, panel.size, panel.size);
      if (!ctx) continue;
      ctx.drawImage(panel.base, 0, 0, panel.size, panel.size);
      if (this.hovered < 0 || n === 0) continue;
      const step = panel.size / n;
      const pos = this.hovered * step;
      const band = Math.max(step, 2);
      ctx.save();
      ctx.strokeStyle = "#d62728";
      ctx.lineWidth = 1;
      ctx.strokeRect(0, pos, panel.size, band);
      ctx.strokeStyle = "#ff9896";
      ctx.strokeRect(pos, 0, band, panel.size);
      ctx.restore();
    }
  }

  private drawLines(): void {
    const start = this.windowStart;
    const end = this.windowEnd();
    const rows = end - start;
    const canvas = this.lineCanvas;
    canvas.dataset.windowStart = String(start);
    canvas.dataset.windowSize = String(rows);
    canvas.dataset.rowHeight = String(LINE_ROW_PX);
    const ctx = setupCanvas(canvas, LINE_WIDTH_PX, Math.max(1, rows) * LINE_ROW_PX);
    if (!ctx) return;
    ctx.clearRect(0, 0, LINE_WIDTH_PX, rows * LINE_ROW_PX);
    const leftX = 140;
    const rightX = LINE_WIDTH_PX - 140;
    ctx.font = "11px ui-monospace, monospace";
    ctx.textBaseline = "middle";
    for (let t = start; t < end; t++) {
      const y = (t - start + 0.5) * LINE_ROW_PX;
      const token = this.tokens[t];
      const pieces = token ? truncatePieces(tokenPieces(token), 16) : [];
      const color = t === this.hovered ? "#d62728" : "#333";
      drawPieces(ctx, pieces, leftX - 6, y, "right", color);
      drawPieces(ctx, pieces, rightX + 6, y, "left", color);
    }
    if (this.groups.length === 0) return;
    const hoverInWindow = this.hovered >= start && this.hovered < end;
    this.groups.forEach((_group, g) => {
      const color = this.mode === "side_by_side" ? HEAD_COLORS[g % HEAD_COLORS.length] : "#1f77b4";
      for (let i = start; i < end; i++) {
        const strong = !hoverInWindow || i === this.hovered;
        for (const [j, w] of this.lines(g, i)) {
          const into = hoverInWindow && j === this.hovered;
          if (j < start || j >= end) continue;
          ctx.globalAlpha = Math.min(1, w) * (strong || into ? 1 : 0.12);
          ctx.strokeStyle = color;
          ctx.lineWidth = 1 + 2 * w;
          ctx.beginPath();
          ctx.moveTo(leftX, (i - start + 0.5) * LINE_ROW_PX);
          ctx.lineTo(rightX, (j - start + 0.5) * LINE_ROW_PX);
          ctx.stroke();
        }
      }
    });
    ctx.globalAlpha = 1;
  }

  /** Top keys [key, weight] of query i in group g, cached until the patterns change. */
  private lines(g: number, i: number): [number, number][] {
    const key = g * this.tokens.length + i;
    let cached = this.lineCache.get(key);
    if (!cached) {
      const group = this.groups[g];
      const n = this.tokens.length;
      if (this.rowBuffer.length !== n) this.rowBuffer = new Float32Array(n);
      const row = this.rowBuffer;
      if (group.length === 1) readRow(group[0], i, row);
      else meanRow(group, i, row);
      cached = topK(row, LINES_PER_QUERY, MIN_LINE_WEIGHT).map((j): [number, number] => [j, row[j]]);
      this.lineCache.set(key, cached);
    }
    return cached;
  }

  destroy(): void {
    this.cleanups.splice(0).forEach((fn) => fn());
    this.element.remove();
  }
}

/** At most `max` characters of a label, "…" marking a cut. */
export function truncatePieces(pieces: readonly TokenPiece[], max: number): TokenPiece[] {
  const total = pieces.reduce((n, p) => n + [...p.text].length, 0);
  if (total <= max) return [...pieces];
  const out: TokenPiece[] = [];
  let left = max - 1;
  for (const piece of pieces) {
    const chars = [...piece.text].slice(0, left);
    if (chars.length > 0) out.push({ text: chars.join(""), quiet: piece.quiet });
    left -= chars.length;
    if (left <= 0) break;
  }
  out.push({ text: "…", quiet: false });
  return out;
}

/** A label on canvas, quiet runs (whitespace marks, continuation) faded as in the strip. */
function drawPieces(ctx: CanvasRenderingContext2D, pieces: readonly TokenPiece[], x: number, y: number, align: "left" | "right", color: string): void {
  ctx.textAlign = "left";
  ctx.fillStyle = color;
  const widths = pieces.map((p) => ctx.measureText(p.text).width);
  let at = align === "left" ? x : x - widths.reduce((a, b) => a + b, 0);
  pieces.forEach((piece, i) => {
    ctx.globalAlpha = piece.quiet ? 0.45 : 1;
    ctx.fillText(piece.text, at, y);
    at += widths[i];
  });
  ctx.globalAlpha = 1;
}
