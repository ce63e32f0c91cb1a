import { describe, expect, it } from "vitest";
import { symmetricDomain, toUnit } from "../src/compare";

describe("compare view color mapping", () => {
  it("maps a difference symmetrically: 0 is the middle of the diverging scale", () => {
    const diff = new Float32Array([-0.5, 0, 0.25, NaN]);
    const { min, max } = symmetricDomain(diff);
    expect([min, max]).toEqual([-0.5, 0.5]);
    const unit = toUnit(diff, min, max, true);
    expect(Array.from(unit.subarray(0, 3))).toEqual([0, 0.5, 0.75]);
    expect(Number.isNaN(unit[3])).toBe(true);
  });

  it("gives identical models (all zeros) a non-degenerate domain, colored as no change", () => {
    const zeros = new Float32Array(4);
    const { min, max } = symmetricDomain(zeros);
    expect([min, max]).toEqual([-1, 1]);
    expect(Array.from(toUnit(zeros, min, max, true))).toEqual([0.5, 0.5, 0.5, 0.5]);
  });

  it("maps sequential values over [min, max]", () => {
    expect(Array.from(toUnit(new Float32Array([0, 0.5, 1]), 0, 1, false))).toEqual([0, 0.5, 1]);
  });
});
