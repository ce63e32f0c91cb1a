import { afterEach, describe, expect, it, vi } from "vitest";
import { type PooledView, type ViewRequestSpec, viewRequestMessage } from "../src/lib/pattern_lod";
import type { FlowDirection } from "../src/lib/pattern";
import type { SelectionState } from "../src/lib/selection";
import { StripRows } from "../src/lib/strip_rows";

const selection: SelectionState = { selected_layer: 1, selected_heads: [0, 2], selected_tokens: [], hovered_token: 3, metric: "entropy" };

function rows(direction: FlowDirection, n = 6) {
  const asked: ViewRequestSpec[] = [];
  let painted = 0;
  const strip = new StripRows(
    {
      nTokens: () => n,
      direction: () => direction,
      requestView: (spec) => asked.push(spec) + 100, // request ids 101, 102, ...
      disposed: () => false,
      onRow: () => (painted += 1),
    },
    10,
  );
  return { strip, asked, painted: () => painted };
}

function view(region: PooledView["region"], nRows: number, nCols: number, values: number[]): PooledView {
  return { region, nRows, nCols, values: Float32Array.from(values) } as PooledView;
}

afterEach(() => vi.useRealTimers());

describe("request_view", () => {
  it("is one message with the region as [start, stop) rows and columns", () => {
    const spec: ViewRequestSpec = { layer: 2, heads: [1], region: { q0: 0, q1: 8, k0: 2, k1: 6 }, shape: [4, 2], combine: "each", reduce: "sum" };
    expect(viewRequestMessage(7, spec)).toEqual({
      type: "request_view",
      request_id: 7,
      layer: 2,
      heads: [1],
      rows: [0, 8],
      cols: [2, 6],
      shape: [4, 2],
      combine: "each",
      reduce: "sum",
    });
  });
});

describe("strip rows above full_pattern_limit", () => {
  it("asks once for the focus token's row (from) and keeps the reply", () => {
    vi.useFakeTimers();
    const { strip, asked, painted } = rows("from");
    expect(strip.values(selection, 3)).toBeNull();
    expect(strip.values(selection, 3)).toBeNull(); // debounced: one request
    vi.advanceTimersByTime(10);
    expect(asked).toEqual([{ layer: 1, heads: [0, 2], region: { q0: 3, q1: 4, k0: 0, k1: 6 }, shape: [1, 6], combine: "mean", reduce: "max" }]);
    expect(strip.receive(999, view({ q0: 0, q1: 1, k0: 0, k1: 6 }, 1, 6, [0, 0, 0, 0, 0, 0]))).toBe(false);
    expect(strip.receive(101, view({ q0: 3, q1: 4, k0: 0, k1: 6 }, 1, 6, [0.5, 0.1, 0.2, 0.2, 0, 0]))).toBe(true);
    expect(painted()).toBe(1);
    expect(Array.from(strip.values(selection, 3) ?? [])).toEqual(Array.from(Float32Array.from([0.5, 0.1, 0.2, 0.2, 0, 0])));
    expect(strip.values(selection, 4)).toBeNull(); // another token: asked again
  });

  it("asks for the column from the token on (to) and places it at the token", () => {
    vi.useFakeTimers();
    const { strip, asked } = rows("to");
    strip.values(selection, 3);
    vi.advanceTimersByTime(10);
    expect(asked[0]).toMatchObject({ region: { q0: 3, q1: 6, k0: 3, k1: 4 }, shape: [3, 1] });
    strip.receive(101, view({ q0: 3, q1: 6, k0: 3, k1: 4 }, 3, 1, [0.25, 0.5, 0.75]));
    expect(Array.from(strip.values(selection, 3) ?? [])).toEqual([0, 0, 0, 0.25, 0.5, 0.75]);
  });
});
