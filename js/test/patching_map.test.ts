import { describe, expect, it } from "vitest";
import { cellWidth, clickCell, selectedCells, siteToSelectedLayer, symmetricLimit, toUnit } from "../src/lib/patching_map";

describe("patching map rules", () => {
  it("colors symmetrically around no effect, at least over [-1, 1]", () => {
    expect(symmetricLimit([0.2, -0.5, 0.9])).toBe(1);
    expect(symmetricLimit([0.2, -1.5, Number.NaN])).toBe(1.5);
    expect(Array.from(toUnit([-1, 0, 1], 1))).toEqual([0, 0.5, 1]);
  });

  it("maps a residual cell to the layer whose output the site is, and a head cell to its head", () => {
    expect(siteToSelectedLayer(0)).toBe(-1); // emb belongs to no decoder layer
    expect(clickCell("residual", 2, 5)).toEqual({ selected_layer: 1, selected_tokens: [5] });
    expect(clickCell("heads", 1, 3)).toEqual({ selected_layer: 1, selected_heads: [3] });
  });

  it("outlines the cells of the current selection and nothing out of range", () => {
    const state = { selected_layer: 1, selected_heads: [0, 3, 9], selected_tokens: [2, 40] };
    expect(selectedCells("heads", 3, 4, state)).toEqual([[1, 0], [1, 3]]);
    expect(selectedCells("residual", 4, 6, state)).toEqual([[2, 2]]);
    expect(selectedCells("heads", 3, 4, { ...state, selected_layer: -1 })).toEqual([]);
  });

  it("maps a logit-attribution component row to its layer (emb, L0 attn, L0 MLP, L1 attn, ...)", () => {
    const rowLayers = [-1, 0, 0, 1, 1];
    expect(clickCell("residual", 0, 2, rowLayers)).toEqual({ selected_layer: -1, selected_tokens: [2] });
    expect(clickCell("residual", 4, 3, rowLayers)).toEqual({ selected_layer: 1, selected_tokens: [3] });
    const state = { selected_layer: 1, selected_heads: [], selected_tokens: [3] };
    expect(selectedCells("residual", 5, 6, state, rowLayers)).toEqual([[3, 3], [4, 3]]); // attn and MLP rows
    expect(selectedCells("residual", 5, 6, { ...state, selected_layer: -1 }, rowLayers)).toEqual([[0, 3]]);
  });

  it("fits wide maps by narrowing cells, never below 4 px", () => {
    expect(cellWidth(6, 720)).toBe(36);
    expect(cellWidth(100, 720)).toBe(7);
    expect(cellWidth(1000, 720)).toBe(4);
  });
});
