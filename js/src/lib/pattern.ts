// Pure computations on quantized attention patterns (QuantizedPattern, lib/buffers.ts):
// row extraction, averaging over heads, attention flow between token sets, top-k keys and
// max-pooled downsampling for the matrix canvas. Nothing here touches the DOM.

import { type QuantizedPattern, rowOffset } from "./buffers";

/** Decoded weight of query i attending to key j. */
export function weight(p: QuantizedPattern, i: number, j: number): number {
  if (p.lower && j > i) return 0;
  return (p.q[rowOffset(p.n, p.lower, i) + j] * p.rowScale[i]) / 255;
}

/** Row i (attention from query i over all keys) into `out` (length n). */
export function readRow(p: QuantizedPattern, i: number, out: Float32Array = new Float32Array(p.n)): Float32Array {
  const start = rowOffset(p.n, p.lower, i);
  const len = p.lower ? i + 1 : p.n;
  const s = p.rowScale[i] / 255;
  for (let j = 0; j < len; j++) out[j] = p.q[start + j] * s;
  out.fill(0, len);
  return out;
}

/**
 * Mean of row i over several heads (the "averaged" pattern view). One pass per head over the
 * stored part of the row only (j <= i for causal patterns), no temporary arrays: the line view
 * calls it for every visible row of every hover with a whole layer selected.
 */
export function meanRow(patterns: readonly QuantizedPattern[], i: number, out: Float32Array): Float32Array {
  out.fill(0);
  if (patterns.length === 0) return out;
  let len = 0;
  for (const p of patterns) {
    const start = rowOffset(p.n, p.lower, i);
    const m = Math.min(out.length, p.lower ? i + 1 : p.n);
    const s = p.rowScale[i] / 255;
    const q = p.q;
    for (let j = 0; j < m; j++) out[j] += q[start + j] * s;
    if (m > len) len = m;
  }
  const k = patterns.length;
  for (let j = 0; j < len; j++) out[j] /= k;
  return out;
}

/** Attention from each query in `queries`, averaged over queries and heads: a value per key. */
export function attentionFromTokens(patterns: readonly QuantizedPattern[], queries: readonly number[], n: number): Float32Array {
  const out = new Float32Array(n);
  if (patterns.length === 0 || queries.length === 0) return out;
  const row = new Float32Array(n);
  for (const i of queries) {
    meanRow(patterns, i, row);
    for (let j = 0; j < n; j++) out[j] += row[j];
  }
  for (let j = 0; j < n; j++) out[j] /= queries.length;
  return out;
}

export type FlowDirection = "from" | "to";

/**
 * How much one head moves attention between the focus tokens and the rest — the grid's
 * "attention from brushed tokens" value. Mirrors `attention_flow()` in
 * llmasos_widgets/widgets/attention.py (kept identical so kernel and browser values agree).
 *   from: mean over queries q in `focus` of sum over keys k in `others` of A[q, k]
 *   to:   mean over queries q in `others` (q >= some focus token) of sum over k in focus of A[q, k]
 * `others` empty means "every token except the first (the usual attention sink) and itself".
 */
export function attentionFlow(
  p: QuantizedPattern,
  focus: readonly number[],
  others: readonly number[],
  direction: FlowDirection,
): number {
  if (focus.length === 0) return NaN;
  const n = p.n;
  const row = new Float32Array(n);
  if (direction === "from") {
    let total = 0;
    for (const q of focus) {
      readRow(p, q, row);
      if (others.length > 0) {
        for (const k of others) total += row[k];
      } else {
        let s = 0;
        for (let k = 1; k < n; k++) if (k !== q) s += row[k];
        total += s;
      }
    }
    return total / focus.length;
  }
  const focusSet = new Set(focus);
  const firstFocus = Math.min(...focus);
  const queries = others.length > 0 ? others : rangeArray(firstFocus, n).filter((q) => !focusSet.has(q));
  if (queries.length === 0) return NaN;
  let total = 0;
  for (const q of queries) {
    for (const k of focus) total += weight(p, q, k);
  }
  return total / queries.length;
}

export function rangeArray(start: number, end: number): number[] {
  const out: number[] = [];
  for (let i = start; i < end; i++) out.push(i);
  return out;
}

/** Indices of the k largest values (ties by lower index), ignoring values <= minValue. */
export function topK(values: ArrayLike<number>, k: number, minValue = 0): number[] {
  const picked: number[] = [];
  for (let j = 0; j < values.length; j++) {
    const v = values[j];
    if (!(v > minValue)) continue;
    if (picked.length < k) {
      picked.push(j);
      picked.sort((a, b) => values[b] - values[a] || a - b);
    } else if (v > values[picked[k - 1]]) {
      picked[k - 1] = j;
      picked.sort((a, b) => values[b] - values[a] || a - b);
    }
  }
  return picked;
}

/**
 * Downsample the (head-averaged) [n, n] pattern to [size, size] cells by max-pooling, so a
 * sharp single-token attention never disappears at T = 4096 on a 512 px canvas.
 * Callers pass size <= n.
 */
export function maxPool(patterns: readonly QuantizedPattern[], size: number): Float32Array {
  const n = patterns[0]?.n ?? 0;
  const out = new Float32Array(size * size);
  if (n === 0) return out;
  const cell = n / size;
  const row = new Float32Array(n);
  const causal = patterns.every((p) => p.lower);
  for (let i = 0; i < n; i++) {
    if (patterns.length === 1) readRow(patterns[0], i, row);
    else meanRow(patterns, i, row);
    const oy = Math.min(size - 1, Math.floor(i / cell)) * size;
    const len = causal ? i + 1 : n;
    for (let j = 0; j < len; j++) {
      const v = row[j];
      if (v === 0) continue;
      const o = oy + Math.min(size - 1, Math.floor(j / cell));
      if (v > out[o]) out[o] = v;
    }
  }
  return out;
}

/** Attention into the `keys` tokens from every query, averaged over keys and heads: a value per query. */
export function attentionToTokens(patterns: readonly QuantizedPattern[], keys: readonly number[], n: number): Float32Array {
  const out = new Float32Array(n);
  if (patterns.length === 0 || keys.length === 0) return out;
  for (const p of patterns) {
    for (let i = 0; i < n; i++) {
      for (const k of keys) out[i] += weight(p, i, k);
    }
  }
  const denom = patterns.length * keys.length;
  for (let i = 0; i < n; i++) out[i] /= denom;
  return out;
}

// Per-head pooled images, computed once per decoded pattern object.
const pooledCache = new WeakMap<QuantizedPattern, { size: number; pooled: Float32Array }>();

/**
 * Downsampled view of several heads: the mean of each head's max-pooled image. Each head is
 * pooled once and cached, so selecting a whole layer at T = 4096 costs one pass per head
 * instead of one pass per head per arriving pattern. Exact mean whenever n <= size.
 */
export function pooledMean(patterns: readonly QuantizedPattern[], size: number): Float32Array {
  const out = new Float32Array(size * size);
  for (const p of patterns) {
    let entry = pooledCache.get(p);
    if (!entry || entry.size !== size) {
      entry = { size, pooled: maxPool([p], size) };
      pooledCache.set(p, entry);
    }
    for (let i = 0; i < out.length; i++) out[i] += entry.pooled[i];
  }
  if (patterns.length > 1) for (let i = 0; i < out.length; i++) out[i] /= patterns.length;
  return out;
}
