// Pure rules of the patching view (js/src/patching.ts): color range, cell geometry, and how a
// clicked cell maps to the shared selection and back. Python mirror of the site rule:
// llmasos_widgets/widgets/patching.py::site_to_selected_layer.

/** Symmetric range for a diverging scale: at least [-1, 1] (1 = the clean run). */
export function symmetricLimit(values: ArrayLike<number>): number {
  let limit = 1;
  for (let i = 0; i < values.length; i++) {
    const v = Math.abs(values[i]);
    if (Number.isFinite(v) && v > limit) limit = v;
  }
  return limit;
}

/** Values in [-limit, limit] mapped to [0, 1] (0.5 = no effect), NaN kept. */
export function toUnit(values: ArrayLike<number>, limit: number): Float32Array {
  const out = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = (values[i] / limit + 1) / 2;
  return out;
}

/** Cell width that fits `cols` columns into `maxWidth` pixels, between 4 and `preferred`. */
export function cellWidth(cols: number, maxWidth: number, preferred = 36): number {
  if (cols <= 0) return preferred;
  return Math.max(4, Math.min(preferred, Math.floor(maxWidth / cols)));
}

/** Residual site -> selected_layer: `after L{i}` (site i + 1) is decoder layer i; emb is -1. */
export function siteToSelectedLayer(site: number): number {
  return site - 1;
}

export interface CellSelection {
  selected_layer: number;
  selected_heads?: number[];
  selected_tokens?: number[];
}

/** The decoder layer a residual-map row stands for: `rowLayers[row]` when the map says
 * (direct logit attribution: emb, L0 attn, L0 MLP, ...), else the site rule. */
export function rowLayer(row: number, rowLayers: readonly number[] = []): number {
  return rowLayers.length > 0 ? (rowLayers[row] ?? -1) : siteToSelectedLayer(row);
}

/** What a click on a map cell selects. */
export function clickCell(map: "residual" | "heads", row: number, col: number, rowLayers: readonly number[] = []): CellSelection {
  if (map === "heads") return { selected_layer: row, selected_heads: [col] };
  return { selected_layer: rowLayer(row, rowLayers), selected_tokens: [col] };
}

/** Cells of a map to outline for the current selection ([row, col] pairs). */
export function selectedCells(
  map: "residual" | "heads",
  rows: number,
  cols: number,
  state: { selected_layer: number; selected_heads: readonly number[]; selected_tokens: readonly number[] },
  rowLayers: readonly number[] = [],
): [number, number][] {
  if (map === "heads") {
    if (state.selected_layer < 0 || state.selected_layer >= rows) return [];
    return state.selected_heads.filter((h) => h >= 0 && h < cols).map((h): [number, number] => [state.selected_layer, h]);
  }
  // the rows of the selected layer (-1, none or emb: the emb row); only tokens mark them
  const tokens = state.selected_tokens.filter((t) => t >= 0 && t < cols);
  const cells: [number, number][] = [];
  for (let row = 0; row < rows; row++) {
    if (rowLayer(row, rowLayers) === state.selected_layer) for (const t of tokens) cells.push([row, t]);
  }
  return cells;
}

/** "+0.98" style value text for tooltips. */
export function formatScore(v: number): string {
  if (!Number.isFinite(v)) return "n/a";
  return `${v >= 0 ? "+" : ""}${v.toFixed(3)}`;
}
