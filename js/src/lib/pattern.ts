// Pure computations on quantized attention patterns (QuantizedPattern, lib/buffers.ts):
// row extraction, averaging over heads, attention flow between token sets and top-k keys.
// Nothing here touches the DOM.

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
 * "attention from brushed tokens" value, on the patterns the browser holds. Python's
 * `flow_values` (llmasos_widgets/views/_flow.py) is the reference: test/pattern.test.ts checks
 * this against it on cases Python writes (test/fixtures/flow_cases.ts).
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
