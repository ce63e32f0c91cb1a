// Browser-side cache of decoded head patterns, keyed "layer:head", bounded by bytes.
// Selected heads are never evicted; the least recently used others are, and the caller tells
// the kernel which keys it dropped (so the kernel sends them again when re-selected).

import { type QuantizedPattern } from "./buffers";

export const DEFAULT_BUDGET_BYTES = 256 * 1024 * 1024;

export function headKey(layer: number, head: number): string {
  return `${layer}:${head}`;
}

export function patternBytes(p: QuantizedPattern): number {
  return p.q.byteLength + p.rowScale.byteLength;
}

export class PatternStore {
  // Map iteration order is insertion order: re-inserting on use makes it an LRU list.
  private readonly entries = new Map<string, QuantizedPattern>();
  private bytes = 0;

  constructor(private readonly budgetBytes = DEFAULT_BUDGET_BYTES) {}

  get size(): number {
    return this.entries.size;
  }

  get totalBytes(): number {
    return this.bytes;
  }

  has(layer: number, head: number): boolean {
    return this.entries.has(headKey(layer, head));
  }

  get(layer: number, head: number): QuantizedPattern | undefined {
    const key = headKey(layer, head);
    const p = this.entries.get(key);
    if (p) {
      this.entries.delete(key);
      this.entries.set(key, p);
    }
    return p;
  }

  /** Loaded patterns of these heads, in the given order (missing ones skipped). */
  getMany(layer: number, heads: readonly number[]): QuantizedPattern[] {
    return heads.map((h) => this.get(layer, h)).filter((p): p is QuantizedPattern => p !== undefined);
  }

  /** Store a pattern; returns the [layer, head] pairs evicted to stay within budget. */
  put(p: QuantizedPattern, keep: ReadonlySet<string> = new Set()): [number, number][] {
    const key = headKey(p.layer, p.head);
    const old = this.entries.get(key);
    if (old) {
      this.bytes -= patternBytes(old);
      this.entries.delete(key);
    }
    this.entries.set(key, p);
    this.bytes += patternBytes(p);
    const evicted: [number, number][] = [];
    for (const [k, entry] of this.entries) {
      if (this.bytes <= this.budgetBytes) break;
      if (k === key || keep.has(k)) continue;
      this.entries.delete(k);
      this.bytes -= patternBytes(entry);
      evicted.push([entry.layer, entry.head]);
    }
    return evicted;
  }

  /** All loaded patterns (for browser-side per-head summaries). */
  all(): QuantizedPattern[] {
    return [...this.entries.values()];
  }
}
