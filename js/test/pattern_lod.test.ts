import { deflateSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { formatTick, niceTicks, tickPosition } from "../src/lib/legend";
import {
  MIN_SPAN,
  blockAtPixel,
  blockOfToken,
  cellInfo,
  decodeViewMessage,
  dragRegion,
  fullRegion,
  labelledBlocks,
  pan,
  pixelBlocks,
  pixelToToken,
  poolingNote,
  requestShape,
  zoomAt,
  type ViewMessage,
} from "../src/lib/pattern_lod";
import { layoutLines, lineOf, overviewToken, visibleLines } from "../src/lib/token_strip";

describe("zoom and pan", () => {
  it("zooms around the pointer, keeping the token under it in place", () => {
    const r = zoomAt(fullRegion(8192), 8192, 2, 0.25, 0.75);
    expect(r).toEqual({ q0: 3072, q1: 7168, k0: 1024, k1: 5120 });
    // the token under the pointer before (fraction 0.25 of 0..8192 = 2048) is still there
    expect(pixelToToken(90, 360, r.k0, r.k1)).toBe(2048);
    expect(pixelToToken(90, 360, 0, 8192)).toBe(2048);
  });

  it("never leaves [0, T), never goes below MIN_SPAN tokens, zooms out to the whole text", () => {
    let r = fullRegion(1000);
    for (let i = 0; i < 40; i++) r = zoomAt(r, 1000, 2, 1, 1);
    expect(r).toEqual({ q0: 1000 - MIN_SPAN, q1: 1000, k0: 1000 - MIN_SPAN, k1: 1000 });
    for (let i = 0; i < 40; i++) r = zoomAt(r, 1000, 0.5, 0, 0);
    expect(r).toEqual(fullRegion(1000));
    expect(zoomAt(fullRegion(3), 3, 4)).toEqual(fullRegion(3)); // shorter than MIN_SPAN
  });

  it("pans by fractions of the span and stops at the edges", () => {
    const r = { q0: 100, q1: 200, k0: 0, k1: 40 };
    expect(pan(r, 1000, 0.25, -0.5)).toEqual({ q0: 50, q1: 150, k0: 10, k1: 50 });
    expect(pan(r, 1000, -1, 100)).toEqual({ q0: 900, q1: 1000, k0: 0, k1: 40 });
  });

  it("maps a dragged rectangle to the tokens it covers", () => {
    // 360 px over 0..720: 2 tokens per pixel
    expect(dragRegion(fullRegion(720), 720, 360, 10, 100, 20, 50)).toEqual({ q0: 100, q1: 201, k0: 20, k1: 41 });
  });

  it("asks for one block per pixel at most and one per token at least", () => {
    expect(requestShape(fullRegion(8192), 360)).toEqual([360, 360]);
    expect(requestShape({ q0: 10, q1: 30, k0: 0, k1: 500 }, 360)).toEqual([20, 360]);
  });
});

describe("view messages", () => {
  const msg = (extra: Partial<ViewMessage> = {}): ViewMessage => ({
    type: "view",
    request_id: 7,
    layer: 1,
    heads: [2],
    combine: "mean",
    rows: [0, 10],
    cols: [0, 10],
    reduce: "max",
    exact: false,
    n_rows: 2,
    n_cols: 2,
    n_panels: 1,
    arg_dtype: "uint8",
    encodings: ["raw", "raw", "deflate", "raw", "raw"],
    ...extra,
  });
  const bytes = (a: ArrayBufferView): DataView => new DataView(a.buffer, a.byteOffset, a.byteLength);

  it("decodes values, edges and argmax offsets (255 = empty block) to absolute cells", async () => {
    const values = new Float32Array([0.5, 0, 0.25, 0.75]);
    const rowEdges = new Int32Array([0, 4, 10]);
    const colEdges = new Int32Array([0, 6, 10]);
    const argQ = new Uint8Array([3, 255, 1, 5]);
    const argK = new Uint8Array([0, 255, 2, 3]);
    const deflated = new Uint8Array(deflateSync(new Uint8Array(colEdges.buffer)));
    const view = await decodeViewMessage(msg(), [bytes(values), bytes(rowEdges), bytes(deflated), bytes(argQ), bytes(argK)]);
    expect([...view.argQuery!]).toEqual([3, -1, 5, 9]);
    expect([...view.argKey!]).toEqual([0, -1, 2, 9]);
    expect(view.region).toEqual({ q0: 0, q1: 10, k0: 0, k1: 10 });
    const cell = cellInfo(view, 0, 1, 1);
    expect(cell).toEqual({ q0: 4, q1: 10, k0: 6, k1: 10, value: 0.75, query: 9, key: 9, pooled: true });
    expect(poolingNote(view)).toBe("max over 5×5-token blocks");
  });

  it("exact views carry no argmax: a cell is its own (query, key)", async () => {
    const view = await decodeViewMessage(msg({ rows: [5, 7], cols: [2, 4], exact: true, encodings: ["raw", "raw", "raw"] }), [
      bytes(new Float32Array([0.1, 0.2, 0.3, 0.4])),
      bytes(new Int32Array([5, 6, 7])),
      bytes(new Int32Array([2, 3, 4])),
    ]);
    expect(view.argQuery).toBeNull();
    expect(cellInfo(view, 0, 1, 0)).toMatchObject({ query: 6, key: 2, pooled: false, value: Math.fround(0.3) });
    expect(poolingNote({ ...view, heads: [0, 1], combine: "mean" })).toBe("mean over 2 heads: exact: one cell per (query, key) pair");
  });

  it("refuses buffers that do not fit the shape", async () => {
    await expect(decodeViewMessage(msg({ encodings: ["raw", "raw", "raw"] }), [bytes(new Float32Array(3)), bytes(new Int32Array(3)), bytes(new Int32Array(3))])).rejects.toThrow(/do not fit/);
  });
});

describe("pixels, blocks and labels", () => {
  it("maps pixels to the block of the token under them, also for an unequal last block", () => {
    const edges = Int32Array.from({ length: 358 }, (_, b) => Math.min(8192, b * 23)); // 357 blocks, the last of 4 tokens
    expect(blockOfToken(edges, 8000)).toBe(347);
    expect(blockOfToken(edges, 8191)).toBe(356);
    expect(blockOfToken(edges, 8192)).toBe(-1);
    const y = ((8000 + 0.5) / 8192) * 360; // where token 8000 is drawn
    expect(blockAtPixel(y, 360, edges, 0, 8192)).toBe(347);
    expect(blockAtPixel(-1, 360, edges, 0, 8192)).toBe(-1);
    expect(blockAtPixel(360, 360, edges, 0, 8192)).toBe(-1);
    const blocks = pixelBlocks(360, edges, 0, 8192);
    expect([blocks[0], blocks[359]]).toEqual([0, 355]); // the 4-token last block is under a pixel wide
    expect(pixelBlocks(4, [10, 11, 12], 10, 12)).toEqual(Int32Array.from([0, 0, 1, 1])); // exact: 2 px per cell
  });

  it("labels every block wide enough, else every 2^k-th", () => {
    expect(labelledBlocks(20, 360, 12)).toHaveLength(20); // 18 px each
    expect(labelledBlocks(360, 360, 12)).toEqual(Array.from({ length: 23 }, (_, i) => i * 16)); // 1 px each
  });
});

describe("legend ticks", () => {
  it("are round numbers inside the range", () => {
    expect(niceTicks(0, 1)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(niceTicks(0, 0.37)).toEqual([0, 0.1, 0.2, 0.3]);
    expect(niceTicks(-1, 1)).toEqual([-1, -0.5, 0, 0.5, 1]);
    expect(niceTicks(2.3, 7.9)).toEqual([3, 4, 5, 6, 7]);
    expect(niceTicks(3, 3)).toEqual([3]);
    expect(niceTicks(NaN, 1)).toEqual([]);
  });

  it("sit where the heatmap colors the value (sqrt scale for attention)", () => {
    expect(tickPosition(0.25, 0, 1, "sqrt")).toBe(0.5);
    expect(tickPosition(0.25, 0, 1)).toBe(0.25);
    expect(tickPosition(5, 0, 1)).toBe(1);
    expect([formatTick(0.2), formatTick(12345), formatTick(0.00012), formatTick(0)]).toEqual(["0.2", "1e+4", "1e-4", "0"]);
  });
});

describe("virtual token strip math", () => {
  it("wraps tokens into lines and finds a token's line", () => {
    const starts = layoutLines([30, 30, 30, 50, 10], 70, 2);
    expect([...starts]).toEqual([0, 2, 3]);
    expect([0, 1, 2, 3, 4].map((t) => lineOf(starts, t))).toEqual([0, 0, 1, 2, 2]);
    expect([...layoutLines([100], 10)]).toEqual([0]); // a token wider than the strip gets its own line
  });

  it("renders the visible lines plus overscan, clamped to the text", () => {
    expect(visibleLines(0, 132, 1000, 22, 6)).toEqual([0, 12]);
    expect(visibleLines(22 * 500, 132, 1000, 22, 6)).toEqual([494, 512]);
    expect(visibleLines(22 * 998, 132, 1000, 22, 6)).toEqual([992, 1000]);
  });

  it("maps overview bar clicks to tokens", () => {
    expect(overviewToken(0, 800, 8192)).toBe(0);
    expect(overviewToken(400, 800, 8192)).toBe(4096);
    expect(overviewToken(800, 800, 8192)).toBe(8191);
  });
});
