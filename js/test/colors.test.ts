import { describe, expect, it } from "vitest";
import { attentionToUnit, buildScale, colorAt, finiteDomain, normalize, unitToIndex } from "../src/lib/colors";

describe("color scales", () => {
  it("starts and ends on the control points and has 256 entries", () => {
    const viridis = buildScale("viridis");
    expect(viridis.lut.length).toBe(256 * 3);
    expect(colorAt(viridis, 0)).toEqual([68, 1, 84]);
    expect(colorAt(viridis, 1)).toEqual([253, 231, 37]);
  });

  it("is monotone in lightness for the sequential blues ramp", () => {
    const blues = buildScale("blues");
    const light = (i: number) => blues.lut[i * 3] + blues.lut[i * 3 + 1] + blues.lut[i * 3 + 2];
    for (let i = 1; i < 256; i++) expect(light(i)).toBeLessThanOrEqual(light(i - 1));
  });

  it("rejects unknown names with the valid ones", () => {
    expect(() => buildScale("jet")).toThrow(/valid: viridis, blues, diverging/);
  });

  it("maps unit values to LUT indices with clamping; NaN is no data", () => {
    expect(unitToIndex(0)).toBe(0);
    expect(unitToIndex(1)).toBe(255);
    expect(unitToIndex(2)).toBe(255);
    expect(unitToIndex(-1)).toBe(0);
    expect(unitToIndex(0.5)).toBe(128);
    expect(unitToIndex(NaN)).toBe(-1);
  });
});

describe("normalize", () => {
  it("uses the finite min/max and keeps NaN", () => {
    const out = normalize([2, NaN, 4, 3, Infinity]);
    expect(Array.from(out.slice(0, 4))).toEqual([0, NaN, 1, 0.5]);
    expect(out[4]).toBeNaN();
  });

  it("gives constant and empty inputs a non-degenerate domain", () => {
    expect(finiteDomain([3, 3])).toEqual({ min: 2.5, max: 3.5 });
    expect(finiteDomain([])).toEqual({ min: 0, max: 1 });
    expect(Array.from(normalize([3, 3]))).toEqual([0.5, 0.5]);
  });

  it("colors attention by sqrt of its share of vmax", () => {
    expect(attentionToUnit(0.25, 1)).toBeCloseTo(0.5);
    expect(attentionToUnit(2, 1)).toBe(1);
    expect(attentionToUnit(0.1, 0)).toBe(0);
  });
});
