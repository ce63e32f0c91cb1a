import { describe, expect, it } from "vitest";
import { type QuantizedPattern } from "../src/lib/buffers";
import { flowKey, flowQuery, flowValues } from "../src/lib/head_values";
import { PatternStore } from "../src/lib/pattern_store";
import { type SelectionState } from "../src/lib/selection";

const base: SelectionState = { selected_layer: -1, selected_heads: [], selected_tokens: [], hovered_token: -1, metric: "entropy" };

function identity(layer: number, head: number, n: number): QuantizedPattern {
  const q = new Uint8Array((n * (n + 1)) / 2);
  for (let i = 0; i < n; i++) q[(i * (i + 1)) / 2 + i] = 255;
  return { layer, head, n, lower: true, rowScale: new Float32Array(n).fill(1), q };
}

describe("flowQuery", () => {
  it("summary metrics without hover need no flow", () => {
    expect(flowQuery(base, "from")).toBeNull();
    expect(flowQuery({ ...base, metric: "brushed" }, "from")).toBeNull();
  });

  it("hover: from the hovered token to the other brushed tokens", () => {
    expect(flowQuery({ ...base, hovered_token: 4, selected_tokens: [1, 4] }, "to")).toEqual({ focus: [4], others: [1], direction: "to" });
  });

  it("brushed metric: flow of the brushed tokens", () => {
    const q = flowQuery({ ...base, metric: "brushed", selected_tokens: [3, 2] }, "from");
    expect(q).toEqual({ focus: [2, 3], others: [], direction: "from" });
    expect(flowKey(q!)).toBe("from|2,3|");
  });
});

describe("flowValues", () => {
  it("uses loaded patterns, then kernel values, else NaN and counts what is missing", () => {
    const store = new PatternStore();
    store.put(identity(0, 1, 3));
    const q = { focus: [2], others: [2], direction: "from" as const };
    const noKernel = flowValues(q, 2, 2, store, undefined);
    expect(noKernel.values[1]).toBeCloseTo(1);
    expect(noKernel.missing).toBe(3);
    expect(Number.isNaN(noKernel.values[0])).toBe(true);
    const kernel = new Float32Array([0.1, 0.2, 0.3, NaN]);
    const withKernel = flowValues(q, 2, 2, store, kernel);
    expect(Array.from(withKernel.values.slice(0, 3)).map((v) => +v.toFixed(2))).toEqual([0.1, 1, 0.3]);
    expect(withKernel.missing).toBe(0);
    expect(withKernel.label).toBe("attention from token 2 to 1 brushed token(s)");
  });
});
