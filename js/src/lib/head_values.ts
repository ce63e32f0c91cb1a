// What the layer × head grid shows: a precomputed head summary, or — while a token is hovered
// or the "brushed" metric is chosen — the attention flow of every head for the focus tokens.
// Flow is computed in the browser for heads whose patterns are loaded; the rest come from
// the kernel (one debounced request, cached by flowKey) or stay NaN ("not available").

import { type PatternStore } from "./pattern_store";
import { type FlowDirection, attentionFlow } from "./pattern";
import { type SelectionState, sortedUnique } from "./selection";

export const BRUSHED_METRIC = "brushed";

export interface FlowQuery {
  focus: number[];
  others: number[];
  direction: FlowDirection;
}

/**
 * The flow asked for by the current selection, or null when the grid shows a summary.
 * Hovering token t: flow between t and the brushed tokens (all non-sink tokens if none are
 * brushed). No hover and metric "brushed": flow of the brushed tokens themselves.
 */
export function flowQuery(state: SelectionState, direction: FlowDirection): FlowQuery | null {
  if (state.hovered_token >= 0) {
    const others = state.selected_tokens.filter((t) => t !== state.hovered_token);
    return { focus: [state.hovered_token], others, direction };
  }
  if (state.metric === BRUSHED_METRIC && state.selected_tokens.length > 0) {
    return { focus: sortedUnique(state.selected_tokens), others: [], direction };
  }
  return null;
}

export function flowKey(q: FlowQuery): string {
  return `${q.direction}|${q.focus.join(",")}|${q.others.join(",")}`;
}

export interface HeadValues {
  /** [layer, head] raw values; NaN = not available. */
  values: Float32Array;
  /** Heads that still need the kernel (no pattern loaded, no kernel value). */
  missing: number;
  label: string;
}

export function flowValues(
  q: FlowQuery,
  nLayers: number,
  nHeads: number,
  store: PatternStore,
  kernel: Float32Array | undefined,
): HeadValues {
  const values = new Float32Array(nLayers * nHeads);
  let missing = 0;
  for (let l = 0; l < nLayers; l++) {
    for (let h = 0; h < nHeads; h++) {
      const i = l * nHeads + h;
      const p = store.has(l, h) ? store.get(l, h) : undefined;
      const v = p ? attentionFlow(p, q.focus, q.others, q.direction) : (kernel?.[i] ?? NaN);
      if (!p && kernel === undefined) missing++;
      values[i] = v;
    }
  }
  const tokens = q.focus.length === 1 ? `token ${q.focus[0]}` : `${q.focus.length} tokens`;
  const target = q.others.length > 0 ? ` ${q.direction === "from" ? "to" : "from"} ${q.others.length} brushed token(s)` : "";
  return { values, missing, label: `attention ${q.direction} ${tokens}${target}` };
}
