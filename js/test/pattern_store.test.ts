import { describe, expect, it } from "vitest";
import { type QuantizedPattern } from "../src/lib/buffers";
import { PatternStore, headKey } from "../src/lib/pattern_store";

function fake(layer: number, head: number, bytes = 100): QuantizedPattern {
  return { layer, head, n: 1, lower: true, rowScale: new Float32Array(0), q: new Uint8Array(bytes) };
}

describe("PatternStore", () => {
  it("evicts least recently used patterns beyond the byte budget", () => {
    const store = new PatternStore(250);
    store.put(fake(0, 0));
    store.put(fake(0, 1));
    store.get(0, 0); // now 0:1 is the oldest
    expect(store.put(fake(0, 2))).toEqual([[0, 1]]);
    expect(store.has(0, 0) && store.has(0, 2)).toBe(true);
    expect(store.totalBytes).toBe(200);
  });

  it("never evicts the selected heads or the one just added", () => {
    const store = new PatternStore(150);
    const keep = new Set([headKey(1, 0), headKey(1, 1)]);
    store.put(fake(1, 0), keep);
    store.put(fake(1, 1), keep);
    expect(store.put(fake(1, 2), keep)).toEqual([]); // over budget, but all protected
    expect(store.size).toBe(3);
    expect(store.put(fake(1, 3), keep)).toEqual([[1, 2]]);
  });

  it("replacing a pattern does not double count", () => {
    const store = new PatternStore();
    store.put(fake(0, 0, 10));
    store.put(fake(0, 0, 30));
    expect(store.totalBytes).toBe(30);
    expect(store.getMany(0, [1, 0]).map((p) => p.head)).toEqual([0]);
  });
});
