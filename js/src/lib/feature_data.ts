// Pure helpers of the FeatureWidget (js/src/features.ts): which latents a token has, and the
// histogram's bars. Kept apart from the DOM so vitest checks them alone.

/** Token `position`'s latents (most active first) from the [token, n] top_latents/top_values
 *  payloads; -1 entries (fewer active latents than n) are dropped. */
export function tokenLatents(
  latents: Float32Array,
  values: Float32Array,
  n: number,
  position: number,
): { latent: number; value: number }[] {
  const out: { latent: number; value: number }[] = [];
  if (position < 0 || (position + 1) * n > latents.length) return out;
  for (let j = 0; j < n; j++) {
    const latent = latents[position * n + j];
    if (latent < 0) break;
    out.push({ latent, value: values[position * n + j] });
  }
  return out;
}

/** Non-empty histogram bins as bars: x (bin index), height in [0, 1] of the tallest. */
export function histogramBars(counts: readonly number[]): { bin: number; count: number; height: number }[] {
  const top = Math.max(0, ...counts);
  if (top === 0) return [];
  return counts.flatMap((count, bin) => (count > 0 ? [{ bin, count, height: count / top }] : []));
}

/** An activation as shown next to a latent: 3 significant digits. */
export function formatActivation(value: number): string {
  return Number.isFinite(value) ? value.toPrecision(3) : String(value);
}
