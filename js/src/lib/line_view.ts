// Head-view style line view of the selected head(s): query tokens left, key tokens right, a
// line per strong attention weight. Only a window of LINE_ROWS tokens is drawn, and only each
// query's top-k keys. It reads whole quantized patterns, which the kernel sends only up to
// `full_pattern_limit` tokens (AttentionWidget); above that it says so and stays empty.
//
// DOM (stable for browser tests):
//   canvas.llmw-line-view[data-testid="line-view"]
//      data-window-start, data-window-size, data-row-height: token i (in the window) is on
//      the row y = (i - start + 0.5) * row height

import { type QuantizedPattern } from "./buffers";
import { setupCanvas } from "./heatmap";
import { meanRow, readRow, topK } from "./pattern";
import { type ShownToken, type TokenPiece, tokenPieces } from "./token_text";

const LINE_ROWS = 36;
const LINE_ROW_PX = 16;
const LINE_WIDTH_PX = 380;
const LINES_PER_QUERY = 4;
const MIN_LINE_WEIGHT = 0.02;
export const HEAD_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

export class LineView {
  readonly canvas: HTMLCanvasElement;
  private groups: QuantizedPattern[][] = [];
  private sideBySide = false;
  private hovered = -1;
  private windowStart = 0;
  // top keys per (group, query row): rows are re-read only when the patterns change
  private lineCache = new Map<number, [number, number][]>();
  private rowBuffer = new Float32Array(0);
  private readonly cleanups: (() => void)[] = [];

  constructor(
    private tokens: readonly ShownToken[],
    onHover: (t: number) => void,
  ) {
    this.canvas = document.createElement("canvas");
    this.canvas.className = "llmw-line-view";
    this.canvas.dataset.testid = "line-view";
    this.canvas.dataset.figure = "line"; // exportable (lib/figures.ts)
    this.listen("mousemove", (e) => {
      const t = this.windowStart + Math.floor((e as MouseEvent).offsetY / LINE_ROW_PX);
      if (t < this.windowEnd()) onHover(t);
    });
    this.listen("mouseleave", () => onHover(-1));
    this.listen("wheel", (e) => {
      const w = e as WheelEvent;
      w.preventDefault();
      this.scrollTo(this.windowStart + Math.sign(w.deltaY) * 3);
      this.draw();
    });
  }

  private listen(type: string, handler: (e: Event) => void): void {
    this.canvas.addEventListener(type, handler, type === "wheel" ? { passive: false } : undefined);
    this.cleanups.push(() => this.canvas.removeEventListener(type, handler));
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

  /** Keep token t inside the window, centering it when it was outside. */
  reveal(t: number): void {
    if (t < 0) return;
    if (t < this.windowStart || t >= this.windowEnd()) this.scrollTo(t - Math.floor(this.windowSize() / 2));
  }

  setGroups(groups: QuantizedPattern[][], sideBySide: boolean): void {
    this.groups = groups;
    this.sideBySide = sideBySide;
    this.lineCache.clear();
    this.draw();
  }

  setHovered(t: number): void {
    this.hovered = t;
    this.reveal(t);
    if (this.canvas.style.display !== "none") this.draw(); // hidden above full_pattern_limit
  }

  draw(): void {
    const start = this.windowStart;
    const end = this.windowEnd();
    const rows = end - start;
    const canvas = this.canvas;
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
      const color = this.sideBySide ? HEAD_COLORS[g % HEAD_COLORS.length] : "#1f77b4";
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
    this.canvas.remove();
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
export function drawPieces(ctx: CanvasRenderingContext2D, pieces: readonly TokenPiece[], x: number, y: number, align: "left" | "right", color: string): void {
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
