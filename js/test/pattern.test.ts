import { describe, expect, it } from "vitest";
import { type QuantizedPattern } from "../src/lib/buffers";
import { attentionFlow, attentionFromTokens, attentionToTokens, maxPool, meanRow, pooledMean, readRow, topK } from "../src/lib/pattern";

/** A lower-layout pattern whose decoded weights are exactly `rows` (levels = 255 * w / max). */
function pattern(rows: number[][], head = 0): QuantizedPattern {
  const n = rows.length;
  const rowScale = new Float32Array(rows.map((r) => Math.max(...r)));
  const q = new Uint8Array(rows.flatMap((r, i) => r.slice(0, i + 1).map((w) => Math.round((255 * w) / rowScale[i]))));
  return { layer: 0, head, n, lower: true, rowScale, q };
}

// Same matrix as tests/unit/test_attention_widget.py::test_attention_flow_definitions
const P = pattern([
  [1, 0, 0],
  [0.5, 0.5, 0],
  [0.2, 0.3, 0.5],
]);

describe("pattern rows", () => {
  it("reads a row and averages rows over heads", () => {
    expect(Array.from(readRow(P, 1))).toEqual([0.5, 0.5, 0]);
    const other = pattern([[1, 0, 0], [1, 0, 0], [0, 0, 1]], 1);
    const mean = meanRow([P, other], 2, new Float32Array(3));
    expect(mean[0]).toBeCloseTo(0.1, 2);
    expect(mean[2]).toBeCloseTo(0.75, 2);
  });
});

describe("attentionFlow (mirror of attention.py::attention_flow)", () => {
  it("from: into the other tokens, or everything but the sink and itself", () => {
    expect(attentionFlow(P, [2], [1], "from")).toBeCloseTo(0.3, 2);
    expect(attentionFlow(P, [2], [], "from")).toBeCloseTo(0.3, 2);
  });

  it("to: from later queries into the focus", () => {
    expect(attentionFlow(P, [1], [], "to")).toBeCloseTo(0.3, 2);
    expect(attentionFlow(P, [0, 1], [2], "to")).toBeCloseTo(0.5, 2);
  });

  it("no focus or no later query is NaN (not available), not zero", () => {
    expect(attentionFlow(P, [], [], "from")).toBeNaN();
    expect(attentionFlow(P, [2], [], "to")).toBeNaN();
  });
});

describe("token coloring values", () => {
  it("attention from the focus tokens over keys, and into them per query", () => {
    expect(Array.from(attentionFromTokens([P], [1, 2], 3)).map((v) => +v.toFixed(2))).toEqual([0.35, 0.4, 0.25]);
    expect(Array.from(attentionToTokens([P], [0], 3)).map((v) => +v.toFixed(2))).toEqual([1, 0.5, 0.2]);
  });
});

describe("topK and maxPool", () => {
  it("topK picks the largest above the threshold, ties by index", () => {
    expect(topK([0.1, 0.5, 0.5, 0.01, 0.9], 3, 0.05)).toEqual([4, 1, 2]);
    expect(topK([0.01, 0.02], 3, 0.05)).toEqual([]);
  });

  it("maxPool keeps a single sharp weight visible after downsampling", () => {
    const n = 8;
    const rows = Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => (j === 0 ? 1 : 0) * (i === 0 ? 1 : 0.9) + (i === 5 && j === 3 ? 0.1 : 0)));
    const pooled = maxPool([pattern(rows)], 4);
    expect(pooled.length).toBe(16);
    expect(pooled[2 * 4 + 1]).toBeCloseTo(0.1, 2); // (5, 3) lands in cell (2, 1)
    expect(pooled[0]).toBeCloseTo(1, 2);
    expect(pooled[3]).toBe(0);
  });

  it("pooledMean is the exact mean of heads when nothing is pooled", () => {
    const other = pattern([[1, 0, 0], [1, 0, 0], [0, 0, 1]], 1);
    const mean = pooledMean([P, other], 3);
    expect(mean[2 * 3 + 2]).toBeCloseTo(0.75, 2);
    expect(mean[1 * 3 + 0]).toBeCloseTo(0.75, 2);
    expect(pooledMean([P], 3)).toEqual(maxPool([P], 3));
  });
});
