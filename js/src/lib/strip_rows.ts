// The token strip's hover colors above full_pattern_limit, where the browser holds no whole
// patterns: one focus token's exact row ("from": its attention to every key) or column ("to":
// every later query's attention to it) under the selected heads, asked of the kernel as a
// `request_view` (lib/pattern_lod.ts) and kept until the selection, the token or the direction
// changes.

import type { FlowDirection } from "./pattern";
import type { PooledView, ViewRequestSpec } from "./pattern_lod";
import { type SelectionState, debounce } from "./selection";

/** What the strip rows need of their widget. */
export interface StripRowsHost {
  nTokens(): number;
  direction(): FlowDirection;
  /** Send a `request_view`; returns its request id. */
  requestView(spec: ViewRequestSpec): number;
  disposed(): boolean;
  /** A row arrived: paint the strip again. */
  onRow(): void;
}

export class StripRows {
  /** request id -> the key of the row it asks for */
  private readonly pending = new Map<number, string>();
  private row: { key: string; values: Float32Array } | null = null;
  private readonly ask: ((s: SelectionState, t: number) => void) & { cancel(): void };

  constructor(private readonly host: StripRowsHost, requestMs: number) {
    this.ask = debounce((s: SelectionState, t: number) => this.request(s, t), requestMs);
  }

  /** The row of focus token `t` under selection `s`, or null while it is asked for. */
  values(s: SelectionState, t: number): Float32Array | null {
    if (this.row && this.row.key === this.key(s, t)) return this.row.values;
    this.ask(s, t);
    return null;
  }

  /** Keep `view` if it answers request `id` of the strip (true), else leave it (false). */
  receive(id: number, view: PooledView): boolean {
    const key = this.pending.get(id);
    this.pending.delete(id);
    if (key === undefined) return false;
    const values = new Float32Array(this.host.nTokens());
    if (view.nRows === 1) values.set(view.values.subarray(0, Math.min(values.length, view.nCols)), view.region.k0);
    else values.set(view.values.subarray(0, view.nRows), view.region.q0);
    this.row = { key, values };
    this.host.onRow();
    return true;
  }

  cancel(): void {
    this.ask.cancel();
  }

  private key(s: SelectionState, t: number): string {
    return `${s.selected_layer}|${s.selected_heads.join(",")}|${t}|${this.host.direction()}`;
  }

  private request(s: SelectionState, t: number): void {
    const key = this.key(s, t);
    if (this.host.disposed() || this.row?.key === key || [...this.pending.values()].includes(key)) return;
    const n = this.host.nTokens();
    const from = this.host.direction() !== "to";
    const region = from ? { q0: t, q1: t + 1, k0: 0, k1: n } : { q0: t, q1: n, k0: t, k1: t + 1 };
    const shape: [number, number] = from ? [1, n] : [n - t, 1];
    const id = this.host.requestView({ layer: s.selected_layer, heads: s.selected_heads, region, shape, combine: "mean", reduce: "max" });
    this.pending.set(id, key);
  }
}
