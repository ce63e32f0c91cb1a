import { describe, expect, it } from "vitest";
import { FlowCache } from "../src/lib/flow_cache";

const values = (v: number) => new Float32Array([v]);

describe("FlowCache", () => {
  it("asks once per key while a reply is due, and not again once it arrived", () => {
    const cache = new FlowCache(4, 1000);
    const id = cache.request("a", 0);
    expect(id).not.toBeNull();
    expect(cache.request("a", 500)).toBeNull();
    expect(cache.resolve(id as number, values(1))).toBe(true);
    expect(cache.get("a")).toEqual(values(1));
    expect(cache.request("a", 5000)).toBeNull();
    expect(cache.pendingCount).toBe(0);
  });

  it("asks again for a lost reply after the retry time, and drops the late first reply", () => {
    const cache = new FlowCache(4, 1000);
    const first = cache.request("a", 0) as number;
    const second = cache.request("a", 1500);
    expect(second).not.toBeNull();
    expect(second).not.toBe(first);
    expect(cache.resolve(first, values(1))).toBe(false);
    expect(cache.resolve(second as number, values(2))).toBe(true);
    expect(cache.get("a")).toEqual(values(2));
  });

  it("keeps at most `capacity` entries and pending requests, least recently used first out", () => {
    const cache = new FlowCache(2, 1000);
    for (const key of ["a", "b"]) cache.resolve(cache.request(key, 0) as number, values(1));
    cache.get("a"); // a is now more recent than b
    cache.resolve(cache.request("c", 0) as number, values(3));
    expect(cache.size).toBe(2);
    expect(cache.get("b")).toBeUndefined();
    expect(cache.get("a")).toEqual(values(1));
    const ids = ["d", "e", "f"].map((key) => cache.request(key, 0) as number);
    expect(cache.pendingCount).toBe(2);
    expect(cache.resolve(ids[0], values(4))).toBe(false); // the oldest was given up
    expect(cache.resolve(ids[2], values(6))).toBe(true);
  });
});
