// Pure helpers of the SaliencyWidget view (js/src/saliency.ts; Python half
// llmasos_widgets/widgets/saliency.py): residual-site ↔ selected_layer mapping and the
// diverging color scale that keeps the sign of an attribution.

/** Residual site i (0 = embeddings) is the output of decoder layer i - 1 (0-based). */
export function siteToSelectedLayer(site: number): number {
  return site - 1;
}

/** selected_layer -1 (none) maps to the embeddings site 0. */
export function selectedLayerToSite(layer: number): number {
  return layer < 0 ? 0 : layer + 1;
}

/** Heatmap row that colors the tokens: the selected layer's site, else the embeddings row. */
export function activeRow(sites: readonly number[], selectedLayer: number): number {
  const wanted = sites.indexOf(selectedLayerToSite(selectedLayer));
  if (wanted >= 0) return wanted;
  const embeddings = sites.indexOf(0);
  return embeddings >= 0 ? embeddings : 0;
}

/**
 * Each row scaled by its own largest |score| into [0, 1] with 0 at 0.5: on the diverging
 * scale negative is blue, positive red, zero white. Rows are scaled separately because the
 * residual stream's magnitude grows with depth; the sign is kept (unsigned methods only use
 * the upper half). A row of zeros stays white.
 */
export function rowUnits(scores: ArrayLike<number>, rows: number, cols: number, exclude: readonly number[] = []): Float32Array {
  const out = new Float32Array(rows * cols);
  // `exclude` (attention sinks, lib/sinks.ts): the peak is taken over the other tokens, and
  // the excluded ones are capped at the scale's ends (one that is alone keeps its own peak)
  const skip = new Set(exclude.length < cols ? exclude : []);
  for (let r = 0; r < rows; r++) {
    let peak = 0;
    for (let c = 0; c < cols; c++) {
      if (skip.has(c)) continue;
      const v = Math.abs(scores[r * cols + c]);
      if (Number.isFinite(v) && v > peak) peak = v;
    }
    for (let c = 0; c < cols; c++) {
      const v = scores[r * cols + c];
      out[r * cols + c] = Number.isFinite(v) ? 0.5 + (peak > 0 ? (0.5 * Math.max(-1, Math.min(1, v / peak))) : 0) : NaN;
    }
  }
  return out;
}

/** Short, fixed-width rendering of a score for tooltips. */
export function formatScore(v: number): string {
  if (!Number.isFinite(v)) return "n/a";
  if (v === 0) return "0";
  const a = Math.abs(v);
  return a >= 1e-3 && a < 1e4 ? v.toFixed(4) : v.toExponential(2);
}

/** Residual site name, as everywhere in the package (llmasos_widgets/tracing/_anatomy.py
 * site_label): "emb" for the embeddings, else "after L<l>" for the output of decoder layer L<l>
 * (0-based, as in AttentionWidget). Sites and layers are never named alike. */
export function siteLabel(site: number): string {
  return site === 0 ? "emb" : `after L${siteToSelectedLayer(site)}`;
}
