// Color scales for heatmaps and token coloring. Built in code from control points
// (no CDN, no color library). A scale is a 256-entry RGB lookup table so that a uint8
// quantized attention value maps to exactly one color (see lib/pattern.ts).

export type Rgb = readonly [number, number, number];

/** 256 colors, packed as [r0, g0, b0, r1, g1, b1, ...]. */
export interface ColorScale {
  readonly name: string;
  readonly lut: Uint8ClampedArray;
}

// Control points sampled from matplotlib's viridis / a white→blue ramp / a diverging
// blue-white-red ramp (values are public-domain color definitions).
const CONTROL_POINTS: Record<string, readonly Rgb[]> = {
  viridis: [
    [68, 1, 84],
    [72, 40, 120],
    [62, 74, 137],
    [49, 104, 142],
    [38, 130, 142],
    [31, 158, 137],
    [53, 183, 121],
    [109, 205, 89],
    [180, 222, 44],
    [253, 231, 37],
  ],
  blues: [
    [255, 255, 255],
    [222, 235, 247],
    [158, 202, 225],
    [66, 146, 198],
    [8, 81, 156],
    [8, 48, 107],
  ],
  diverging: [
    [33, 102, 172],
    [146, 197, 222],
    [247, 247, 247],
    [244, 165, 130],
    [178, 24, 43],
  ],
};

export const SCALE_NAMES = Object.keys(CONTROL_POINTS);

/** Linear interpolation between evenly spaced control points, 256 steps. */
export function buildScale(name: string): ColorScale {
  const points = CONTROL_POINTS[name];
  if (!points) {
    throw new Error(`unknown color scale '${name}'; valid: ${SCALE_NAMES.join(", ")}`);
  }
  const lut = new Uint8ClampedArray(256 * 3);
  const segments = points.length - 1;
  for (let i = 0; i < 256; i++) {
    const x = (i / 255) * segments;
    const s = Math.min(Math.floor(x), segments - 1);
    const f = x - s;
    for (let c = 0; c < 3; c++) {
      lut[i * 3 + c] = Math.round(points[s][c] + (points[s + 1][c] - points[s][c]) * f);
    }
  }
  return { name, lut };
}

const cache = new Map<string, ColorScale>();

/** Scales are immutable; build each once. */
export function getScale(name: string): ColorScale {
  let scale = cache.get(name);
  if (!scale) {
    scale = buildScale(name);
    cache.set(name, scale);
  }
  return scale;
}

/** Map a value in [0, 1] (clamped; NaN → -1) to a LUT index 0..255. */
export function unitToIndex(t: number): number {
  if (Number.isNaN(t)) return -1;
  return Math.round(Math.min(1, Math.max(0, t)) * 255);
}

export function colorAt(scale: ColorScale, t: number): Rgb {
  const i = Math.max(0, unitToIndex(t));
  return [scale.lut[i * 3], scale.lut[i * 3 + 1], scale.lut[i * 3 + 2]];
}

export function cssColor(scale: ColorScale, t: number): string {
  const [r, g, b] = colorAt(scale, t);
  return `rgb(${r}, ${g}, ${b})`;
}

/** Relative luminance test: dark backgrounds get white text. */
export function isDark(rgb: Rgb): boolean {
  return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] < 140;
}

export interface Domain {
  min: number;
  max: number;
}

/** Finite min/max of values; a constant or empty array gives a non-degenerate domain. */
export function finiteDomain(values: ArrayLike<number>): Domain {
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (Number.isFinite(v)) {
      if (v < min) min = v;
      if (v > max) max = v;
    }
  }
  if (min === Infinity) return { min: 0, max: 1 };
  if (max === min) return { min: min - 0.5, max: max + 0.5 };
  return { min, max };
}

/** Normalize to [0, 1] over the domain; non-finite stays NaN ("no data" in views). */
export function normalize(values: ArrayLike<number>, domain: Domain = finiteDomain(values)): Float32Array {
  const out = new Float32Array(values.length);
  const span = domain.max - domain.min;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    out[i] = Number.isFinite(v) ? (v - domain.min) / span : NaN;
  }
  return out;
}

/**
 * Attention weights are mostly tiny next to an attention sink, so views color them by
 * sqrt(weight): weak but real attention stays visible, order is preserved.
 */
export function attentionToUnit(weight: number, vmax = 1): number {
  if (!(vmax > 0)) return 0;
  return Math.sqrt(Math.min(1, Math.max(0, weight / vmax)));
}
