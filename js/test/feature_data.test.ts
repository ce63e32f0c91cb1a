import { describe, expect, it } from "vitest";
import { formatActivation, histogramBars, tokenLatents } from "../src/lib/feature_data";

describe("tokenLatents", () => {
  const latents = new Float32Array([3, 7, -1, 5, -1, -1]);
  const values = new Float32Array([2.5, 1, 0, 0.5, 0, 0]);
  it("reads one token's row up to the first -1", () => {
    expect(tokenLatents(latents, values, 3, 0)).toEqual([
      { latent: 3, value: 2.5 },
      { latent: 7, value: 1 },
    ]);
    expect(tokenLatents(latents, values, 3, 1)).toEqual([{ latent: 5, value: 0.5 }]);
  });
  it("is empty for no token or one out of range", () => {
    expect(tokenLatents(latents, values, 3, -1)).toEqual([]);
    expect(tokenLatents(latents, values, 3, 2)).toEqual([]);
  });
});

describe("histogramBars", () => {
  it("keeps the non-empty bins scaled to the tallest", () => {
    expect(histogramBars([0, 2, 0, 4])).toEqual([
      { bin: 1, count: 2, height: 0.5 },
      { bin: 3, count: 4, height: 1 },
    ]);
    expect(histogramBars([0, 0])).toEqual([]);
  });
  it("formats activations", () => {
    expect(formatActivation(1.23456)).toBe("1.23");
  });
});
