// The selection shared by every view and widget. Field names are the snake_case traits of
// llmasos_widgets/widgets/_base.py (SelectionWidget), synced both ways with the kernel and
// linked between widgets by llmasos_widgets/widgets/_selection.py (link_selection).
// The functions here are the pure click/drag rules; views call them and write the result.

export interface SelectionState {
  /** Layer whose heads are selected; -1 = none. */
  selected_layer: number;
  /** Head indices within selected_layer, sorted, unique. */
  selected_heads: number[];
  /** Brushed token positions, sorted, unique. */
  selected_tokens: number[];
  /** Token under the pointer; -1 = none. */
  hovered_token: number;
  /** Name of the value a view colors by (widget specific). */
  metric: string;
}

export const SELECTION_TRAITS = [
  "selected_layer",
  "selected_heads",
  "selected_tokens",
  "hovered_token",
  "metric",
] as const;

export interface Modifiers {
  shiftKey?: boolean;
  ctrlKey?: boolean;
  metaKey?: boolean;
}

export function sortedUnique(values: Iterable<number>): number[] {
  return [...new Set(values)].sort((a, b) => a - b);
}

function additive(mods: Modifiers): boolean {
  return Boolean(mods.shiftKey || mods.ctrlKey || mods.metaKey);
}

export interface HeadSelection {
  layer: number;
  heads: number[];
}

/**
 * Click on grid cell (layer, head). Plain click selects only that head. Shift/Ctrl/Cmd-click
 * toggles the head within the current layer; heads of one layer only can be selected together
 * (the shared traits are one layer + its heads), so a modified click on another layer starts a
 * new selection there. Toggling off the last head leaves the layer selected with no heads.
 */
export function clickHead(current: HeadSelection, layer: number, head: number, mods: Modifiers = {}): HeadSelection {
  if (!additive(mods) || current.layer !== layer) return { layer, heads: [head] };
  const heads = current.heads.includes(head) ? current.heads.filter((h) => h !== head) : [...current.heads, head];
  return { layer, heads: sortedUnique(heads) };
}

/** Click on a layer label: select the layer with all its heads (shown averaged or side by side). */
export function clickLayer(layer: number, nHeads: number): HeadSelection {
  return { layer, heads: Array.from({ length: nHeads }, (_, h) => h) };
}

/** Inclusive token range between two positions in either order. */
export function tokenRange(a: number, b: number): number[] {
  const lo = Math.min(a, b);
  const hi = Math.max(a, b);
  return Array.from({ length: hi - lo + 1 }, (_, i) => lo + i);
}

/**
 * Click on token t (no drag). Plain: select just t, or clear if t was the only selection.
 * Ctrl/Cmd: toggle t. Shift: extend from the anchor (last plainly clicked token) to t.
 */
export function clickToken(current: readonly number[], t: number, anchor: number, mods: Modifiers = {}): number[] {
  if (mods.shiftKey && anchor >= 0) return sortedUnique([...current, ...tokenRange(anchor, t)]);
  if (mods.ctrlKey || mods.metaKey) {
    return current.includes(t) ? current.filter((x) => x !== t) : sortedUnique([...current, t]);
  }
  return current.length === 1 && current[0] === t ? [] : [t];
}

/** End of a drag from token `start` to `end`: the range, added to the selection if modified. */
export function brushTokens(current: readonly number[], start: number, end: number, mods: Modifiers = {}): number[] {
  const range = tokenRange(start, end);
  return additive(mods) ? sortedUnique([...current, ...range]) : range;
}

/** Tokens whose attention a view shows: the hovered token wins over the brushed selection. */
export function focusTokens(state: Pick<SelectionState, "hovered_token" | "selected_tokens">): number[] {
  return state.hovered_token >= 0 ? [state.hovered_token] : [...state.selected_tokens];
}

/** Trailing-edge debounce for JS→Python writes of high-rate state (hover, drag). */
export function debounce<A extends unknown[]>(fn: (...args: A) => void, ms: number): {
  (...args: A): void;
  cancel(): void;
  flush(): void;
} {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let pending: A | undefined;
  const run = (): void => {
    timer = undefined;
    if (pending) {
      const args = pending;
      pending = undefined;
      fn(...args);
    }
  };
  const debounced = (...args: A): void => {
    pending = args;
    if (timer !== undefined) clearTimeout(timer);
    timer = setTimeout(run, ms);
  };
  debounced.cancel = (): void => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    pending = undefined;
  };
  debounced.flush = (): void => {
    if (timer !== undefined) clearTimeout(timer);
    run();
  };
  return debounced;
}
