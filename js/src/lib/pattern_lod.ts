// Level of detail for the pattern view (pure, no DOM): the region of the [query, key] matrix
// on screen, zoom / pan / drag-select math, the `view` message the kernel answers a
// `request_view` with (Python: llmasos_widgets/widgets/_pattern_views.py), and the mapping
// from canvas pixels to pooled blocks and token positions.

import { asBytes, asFloat32, inflate } from "./buffers";

/** Query rows [q0, q1) × key columns [k0, k1) on screen. */
export interface Region {
  q0: number;
  q1: number;
  k0: number;
  k1: number;
}

/** What a view asks the kernel for: the selected heads of a layer over `region`, pooled to
 * `shape` blocks (each head apart or their mean), a block's value its cells' max or sum. */
export interface ViewRequestSpec {
  layer: number;
  heads: number[];
  region: Region;
  shape: [number, number];
  combine: "mean" | "each";
  reduce: "max" | "sum";
}

/** The `request_view` message (Python: widgets/_pattern_views.py `ViewRequest.parse`), built
 * here only; the kernel's `view` reply carries `request_id` back. */
export function viewRequestMessage(requestId: number, spec: ViewRequestSpec): Record<string, unknown> {
  const { region } = spec;
  return {
    type: "request_view",
    request_id: requestId,
    layer: spec.layer,
    heads: spec.heads,
    rows: [region.q0, region.q1],
    cols: [region.k0, region.k1],
    shape: spec.shape,
    combine: spec.combine,
    reduce: spec.reduce,
  };
}

/** Smallest span a zoom reaches: a few cells, each then wide enough for its token label. */
export const MIN_SPAN = 4;

export function fullRegion(n: number): Region {
  return { q0: 0, q1: n, k0: 0, k1: n };
}

export function sameRegion(a: Region, b: Region): boolean {
  return a.q0 === b.q0 && a.q1 === b.q1 && a.k0 === b.k0 && a.k1 === b.k1;
}

/** [start, start + span) moved inside [0, n), span clamped to [min(MIN_SPAN, n), n]. */
function clampSpan(start: number, span: number, n: number): [number, number] {
  const s = Math.max(Math.min(MIN_SPAN, n), Math.min(n, Math.round(span)));
  const a = Math.max(0, Math.min(n - s, Math.round(start)));
  return [a, a + s];
}

/**
 * Zoom by `factor` (> 1 in, < 1 out) keeping the token under the pointer in place; fx, fy in
 * [0, 1] are the pointer's position across the columns and down the rows.
 */
export function zoomAt(region: Region, n: number, factor: number, fx = 0.5, fy = 0.5): Region {
  const rows = region.q1 - region.q0;
  const cols = region.k1 - region.k0;
  const newRows = rows / factor;
  const newCols = cols / factor;
  const [q0, q1] = clampSpan(region.q0 + fy * (rows - newRows), newRows, n);
  const [k0, k1] = clampSpan(region.k0 + fx * (cols - newCols), newCols, n);
  return { q0, q1, k0, k1 };
}

/** Pan by fractions of the visible span (dx across keys, dy down queries). */
export function pan(region: Region, n: number, dx: number, dy: number): Region {
  const rows = region.q1 - region.q0;
  const cols = region.k1 - region.k0;
  const [q0, q1] = clampSpan(region.q0 + dy * rows, rows, n);
  const [k0, k1] = clampSpan(region.k0 + dx * cols, cols, n);
  return { q0, q1, k0, k1 };
}

/** Token position under pixel `p` of an axis `px` pixels long showing [start, stop). */
export function pixelToToken(p: number, px: number, start: number, stop: number): number {
  const t = start + Math.floor((p / px) * (stop - start));
  return Math.max(start, Math.min(stop - 1, t));
}

/** The region a drag from (x0, y0) to (x1, y1) (canvas pixels of a px-sized matrix) covers. */
export function dragRegion(region: Region, n: number, px: number, x0: number, y0: number, x1: number, y1: number): Region {
  const qa = pixelToToken(Math.min(y0, y1), px, region.q0, region.q1);
  const qb = pixelToToken(Math.max(y0, y1), px, region.q0, region.q1) + 1;
  const ka = pixelToToken(Math.min(x0, x1), px, region.k0, region.k1);
  const kb = pixelToToken(Math.max(x0, x1), px, region.k0, region.k1) + 1;
  const [q0, q1] = clampSpan(qa, qb - qa, n);
  const [k0, k1] = clampSpan(ka, kb - ka, n);
  return { q0, q1, k0, k1 };
}

/** Pooled shape to ask for: one block per canvas pixel at most, one per token at least. */
export function requestShape(region: Region, px: number): [number, number] {
  return [Math.min(px, region.q1 - region.q0), Math.min(px, region.k1 - region.k0)];
}

/** A `view` message decoded (weights per block, block edges, argmax cells). */
export interface PooledView {
  requestId: number;
  layer: number;
  heads: number[];
  combine: "mean" | "each";
  reduce: "max" | "sum";
  exact: boolean;
  region: Region;
  nRows: number;
  nCols: number;
  nPanels: number;
  /** float32 [panel, row, col] */
  values: Float32Array;
  rowEdges: Int32Array;
  colEdges: Int32Array;
  /** absolute query / key of each block's max, [panel, row, col]; -1: empty block; null when exact */
  argQuery: Int32Array | null;
  argKey: Int32Array | null;
}

/** Metadata of a {"type": "view"} message (AttentionWidget.view_message). */
export interface ViewMessage {
  type: "view";
  request_id: number;
  layer: number;
  heads: number[];
  combine: "mean" | "each";
  rows: [number, number];
  cols: [number, number];
  reduce: "max" | "sum";
  exact: boolean;
  n_rows: number;
  n_cols: number;
  n_panels: number;
  arg_dtype: "uint8" | "uint16" | "int32";
  encodings: ("deflate" | "raw")[];
}

type Source = DataView | ArrayBuffer | ArrayBufferView;

function int32(bytes: Uint8Array): Int32Array {
  if (bytes.byteLength % 4 !== 0) throw new Error(`int32 buffer has ${bytes.byteLength} bytes`);
  return bytes.byteOffset % 4 === 0 ? new Int32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4) : new Int32Array(bytes.slice().buffer);
}

/** Block offsets (uint8 / uint16 / int32, the dtype's max = empty) back to absolute positions. */
export function absoluteArgmax(bytes: Uint8Array, dtype: ViewMessage["arg_dtype"], edges: Int32Array, axis: "row" | "col", rows: number, cols: number, panels: number): Int32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const size = dtype === "uint8" ? 1 : dtype === "uint16" ? 2 : 4;
  const empty = dtype === "uint8" ? 0xff : dtype === "uint16" ? 0xffff : 0x7fffffff;
  const count = rows * cols * panels;
  if (bytes.byteLength !== count * size) throw new Error(`argmax buffer has ${bytes.byteLength} bytes, expected ${count * size}`);
  const out = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const off = size === 1 ? view.getUint8(i) : size === 2 ? view.getUint16(i * 2, true) : view.getInt32(i * 4, true);
    const cell = i % (rows * cols);
    const start = axis === "row" ? edges[Math.floor(cell / cols)] : edges[cell % cols];
    out[i] = off === empty ? -1 : start + off;
  }
  return out;
}

export async function decodeViewMessage(msg: ViewMessage, buffers: readonly Source[]): Promise<PooledView> {
  if (buffers.length !== msg.encodings.length || (buffers.length !== 3 && buffers.length !== 5)) {
    throw new Error(`view message needs 3 or 5 buffers (as encodings says), got ${buffers.length}`);
  }
  const raw = await Promise.all(buffers.map((b, i) => (msg.encodings[i] === "deflate" ? inflate(asBytes(b)) : Promise.resolve(asBytes(b)))));
  const { n_rows: rows, n_cols: cols, n_panels: panels } = msg;
  const values = asFloat32(raw[0]);
  const rowEdges = int32(raw[1]);
  const colEdges = int32(raw[2]);
  if (values.length !== rows * cols * panels || rowEdges.length !== rows + 1 || colEdges.length !== cols + 1) {
    throw new Error(`view ${msg.request_id}: buffer sizes do not fit ${panels}×${rows}×${cols}`);
  }
  const argQuery = raw.length === 5 ? absoluteArgmax(raw[3], msg.arg_dtype, rowEdges, "row", rows, cols, panels) : null;
  const argKey = raw.length === 5 ? absoluteArgmax(raw[4], msg.arg_dtype, colEdges, "col", rows, cols, panels) : null;
  return {
    requestId: msg.request_id,
    layer: msg.layer,
    heads: msg.heads,
    combine: msg.combine,
    reduce: msg.reduce,
    exact: msg.exact,
    region: { q0: msg.rows[0], q1: msg.rows[1], k0: msg.cols[0], k1: msg.cols[1] },
    nRows: rows,
    nCols: cols,
    nPanels: panels,
    values,
    rowEdges,
    colEdges,
    argQuery,
    argKey,
  };
}

/** Block holding token t (edges[b] <= t < edges[b + 1]); -1 outside the edges. */
export function blockOfToken(edges: ArrayLike<number>, t: number): number {
  const last = edges.length - 1;
  if (last < 1 || t < edges[0] || t >= edges[last]) return -1;
  let lo = 0;
  let hi = last - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (edges[mid] <= t) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/**
 * Block shown at pixel p of an axis px long showing tokens [start, stop): the block of the
 * token under the pixel, so blocks of unequal size (the kernel's last block is often shorter)
 * sit exactly where their tokens are; -1 outside.
 */
export function blockAtPixel(p: number, px: number, edges: ArrayLike<number>, start: number, stop: number): number {
  if (p < 0 || p >= px) return -1;
  return blockOfToken(edges, pixelToToken(p, px, start, stop));
}

/** blockAtPixel for every pixel of an axis (painting resamples blocks onto pixels). */
export function pixelBlocks(px: number, edges: ArrayLike<number>, start: number, stop: number): Int32Array {
  const out = new Int32Array(px);
  for (let p = 0; p < px; p++) out[p] = blockAtPixel(p + 0.5, px, edges, start, stop);
  return out;
}

/** What one cell of a view holds, for the tooltip and clicks. */
export interface CellInfo {
  /** query rows [q0, q1) and key columns [k0, k1) of the block */
  q0: number;
  q1: number;
  k0: number;
  k1: number;
  value: number;
  /** the single cell (exact), or the block's argmax; -1 for an empty block */
  query: number;
  key: number;
  pooled: boolean;
}

export function cellInfo(view: PooledView, panel: number, row: number, col: number): CellInfo {
  const i = panel * view.nRows * view.nCols + row * view.nCols + col;
  const q0 = view.rowEdges[row];
  const q1 = view.rowEdges[row + 1];
  const k0 = view.colEdges[col];
  const k1 = view.colEdges[col + 1];
  const pooled = q1 - q0 > 1 || k1 - k0 > 1;
  let query = q0;
  let key = k0;
  if (pooled) {
    query = view.argQuery ? view.argQuery[i] : -1;
    key = view.argKey ? view.argKey[i] : -1;
  }
  return { q0, q1, k0, k1, value: view.values[i], query, key, pooled };
}

/** Typical block size of a view along each axis (rounded), for "max over 16×16 blocks". */
export function blockSize(view: Pick<PooledView, "region" | "nRows" | "nCols">): [number, number] {
  const { q0, q1, k0, k1 } = view.region;
  return [Math.max(1, Math.round((q1 - q0) / view.nRows)), Math.max(1, Math.round((k1 - k0) / view.nCols))];
}

/** Says what a view shows, e.g. "max over 23×23-token blocks" or "exact: one cell per token pair". */
export function poolingNote(view: Pick<PooledView, "region" | "nRows" | "nCols" | "exact" | "reduce" | "nPanels" | "heads" | "combine">): string {
  const heads = view.combine === "mean" && view.heads.length > 1 ? `mean over ${view.heads.length} heads of ` : "";
  if (view.exact) return `${heads ? heads.replace(/ of $/, ": ") : ""}exact: one cell per (query, key) pair`;
  const [r, c] = blockSize(view);
  const what = view.reduce === "max" ? "max" : "sum";
  return `${heads}${what} over ${r}×${c}-token blocks`;
}

/**
 * Axis labels that fit: every `step`-th block gets its first token's label, with step the
 * smallest power-of-two number of blocks at least `minPx` pixels apart. Returns block indices.
 */
export function labelledBlocks(count: number, px: number, minPx: number): number[] {
  if (count <= 0) return [];
  const blockPx = px / count;
  let step = 1;
  while (step * blockPx < minPx) step *= 2;
  const out: number[] = [];
  for (let b = 0; b < count; b += step) out.push(b);
  return out;
}
