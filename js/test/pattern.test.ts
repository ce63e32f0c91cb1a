import { describe, expect, it } from "vitest";
import { type QuantizedPattern } from "../src/lib/buffers";
import { type FlowDirection, attentionFlow, attentionFromTokens, attentionToTokens, meanRow, readRow, topK } from "../src/lib/pattern";
import { FLOW_FIXTURE } from "./fixtures/flow_cases";

/** A lower-layout pattern whose decoded weights are exactly `rows` (levels = 255 * w / max). */
function pattern(rows: number[][], head = 0): QuantizedPattern {
  const n = rows.length;
  const rowScale = new Float32Array(rows.map((r) => Math.max(...r)));
  const q = new Uint8Array(rows.flatMap((r, i) => r.slice(0, i + 1).map((w) => Math.round((255 * w) / rowScale[i]))));
  return { layer: 0, head, n, lower: true, rowScale, q };
}

// Test-only references (the pattern view pools in Python: llmasos_widgets/views/).

/**
 * Downsample the (head-averaged) [n, n] pattern to [size, size] cells by max-pooling, so a
 * sharp single-token attention never disappears at T = 4096 on a 512 px canvas.
 * Callers pass size <= n.
 */
function maxPool(patterns: readonly QuantizedPattern[], size: number): Float32Array {
  const n = patterns[0]?.n ?? 0;
  const out = new Float32Array(size * size);
  if (n === 0) return out;
  const cell = n / size;
  const row = new Float32Array(n);
  const causal = patterns.every((p) => p.lower);
  for (let i = 0; i < n; i++) {
    if (patterns.length === 1) readRow(patterns[0], i, row);
    else meanRow(patterns, i, row);
    const oy = Math.min(size - 1, Math.floor(i / cell)) * size;
    const len = causal ? i + 1 : n;
    for (let j = 0; j < len; j++) {
      const v = row[j];
      if (v === 0) continue;
      const o = oy + Math.min(size - 1, Math.floor(j / cell));
      if (v > out[o]) out[o] = v;
    }
  }
  return out;
}


// Per-head pooled images, computed once per decoded pattern object.
const pooledCache = new WeakMap<QuantizedPattern, { size: number; pooled: Float32Array }>();

/**
 * Downsampled view of several heads: the mean of each head's max-pooled image. Each head is
 * pooled once and cached, so selecting a whole layer at T = 4096 costs one pass per head
 * instead of one pass per head per arriving pattern. Exact mean whenever n <= size.
 */
function pooledMean(patterns: readonly QuantizedPattern[], size: number): Float32Array {
  const out = new Float32Array(size * size);
  for (const p of patterns) {
    let entry = pooledCache.get(p);
    if (!entry || entry.size !== size) {
      entry = { size, pooled: maxPool([p], size) };
      pooledCache.set(p, entry);
    }
    for (let i = 0; i < out.length; i++) out[i] += entry.pooled[i];
  }
  if (patterns.length > 1) for (let i = 0; i < out.length; i++) out[i] /= patterns.length;
  return out;
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

describe("attentionFlow agrees with Python's views.flow_values", () => {
  // the bundled model's patterns as the widget sends them, and Python's flow of each case
  // (written by tests/unit/test_flow_fixture.py); the browser's value differs only by the
  // quantization: at most rowScale / 510 per cell, summed over at most n cells per row
  const { n, patterns, cases } = FLOW_FIXTURE;
  const heads: QuantizedPattern[] = patterns.map((p, head) => ({
    layer: 0,
    head,
    n,
    lower: true,
    rowScale: new Float32Array(p.rowScale),
    q: new Uint8Array(p.levels.flatMap((row, i) => row.slice(0, i + 1))),
  }));
  for (const c of cases) {
    it(`${c.direction} ${JSON.stringify(c.focus)} / ${JSON.stringify(c.others)}`, () => {
      heads.forEach((p, h) => {
        const bound = (n * Math.max(...p.rowScale)) / 510 + 1e-6;
        expect(Math.abs(attentionFlow(p, c.focus, c.others, c.direction as FlowDirection) - c.python[h])).toBeLessThanOrEqual(bound);
      });
    });
  }
});

describe("attentionFlow definitions", () => {
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
