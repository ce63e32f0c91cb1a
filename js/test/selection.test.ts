import { afterEach, describe, expect, it, vi } from "vitest";
import { brushTokens, clickHead, clickLayer, clickToken, debounce, focusTokens, tokenRange } from "../src/lib/selection";

describe("head selection merging", () => {
  const current = { layer: 2, heads: [1, 3] };

  it("plain click selects only that head", () => {
    expect(clickHead(current, 2, 5)).toEqual({ layer: 2, heads: [5] });
  });

  it("shift/ctrl/meta-click adds a head of the same layer, sorted", () => {
    expect(clickHead(current, 2, 0, { shiftKey: true })).toEqual({ layer: 2, heads: [0, 1, 3] });
    expect(clickHead(current, 2, 2, { ctrlKey: true })).toEqual({ layer: 2, heads: [1, 2, 3] });
    expect(clickHead(current, 2, 4, { metaKey: true })).toEqual({ layer: 2, heads: [1, 3, 4] });
  });

  it("modified click on a selected head toggles it off", () => {
    expect(clickHead(current, 2, 3, { shiftKey: true })).toEqual({ layer: 2, heads: [1] });
    expect(clickHead({ layer: 2, heads: [1] }, 2, 1, { ctrlKey: true })).toEqual({ layer: 2, heads: [] });
  });

  it("modified click on another layer starts over there", () => {
    expect(clickHead(current, 0, 3, { shiftKey: true })).toEqual({ layer: 0, heads: [3] });
  });

  it("layer label selects every head of the layer", () => {
    expect(clickLayer(1, 4)).toEqual({ layer: 1, heads: [0, 1, 2, 3] });
  });
});

describe("token brushing", () => {
  it("ranges are inclusive in either direction", () => {
    expect(tokenRange(5, 2)).toEqual([2, 3, 4, 5]);
    expect(tokenRange(3, 3)).toEqual([3]);
  });

  it("drag replaces the selection, modified drag extends it", () => {
    expect(brushTokens([0, 9], 6, 4)).toEqual([4, 5, 6]);
    expect(brushTokens([0, 5], 6, 4, { shiftKey: true })).toEqual([0, 4, 5, 6]);
  });

  it("click selects, re-click clears, ctrl toggles, shift extends from the anchor", () => {
    expect(clickToken([1, 2], 4, -1)).toEqual([4]);
    expect(clickToken([4], 4, 4)).toEqual([]);
    expect(clickToken([1, 4], 2, 1, { ctrlKey: true })).toEqual([1, 2, 4]);
    expect(clickToken([1, 2, 4], 2, 1, { metaKey: true })).toEqual([1, 4]);
    expect(clickToken([2], 5, 2, { shiftKey: true })).toEqual([2, 3, 4, 5]);
    expect(clickToken([], 5, -1, { shiftKey: true })).toEqual([5]);
  });

  it("the hovered token is the focus, else the brushed tokens", () => {
    expect(focusTokens({ hovered_token: 3, selected_tokens: [1, 2] })).toEqual([3]);
    expect(focusTokens({ hovered_token: -1, selected_tokens: [1, 2] })).toEqual([1, 2]);
  });
});

describe("debounce", () => {
  afterEach(() => vi.useRealTimers());

  it("writes once, with the last value, after the pause", () => {
    vi.useFakeTimers();
    const calls: number[] = [];
    const write = debounce((t: number) => calls.push(t), 100);
    write(1);
    vi.advanceTimersByTime(50);
    write(2);
    write(3);
    vi.advanceTimersByTime(99);
    expect(calls).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(calls).toEqual([3]);
  });

  it("flush writes now, cancel drops the pending write", () => {
    vi.useFakeTimers();
    const calls: number[] = [];
    const write = debounce((t: number) => calls.push(t), 100);
    write(1);
    write.flush();
    write(2);
    write.cancel();
    vi.advanceTimersByTime(500);
    expect(calls).toEqual([1]);
  });
});
