// Attention sinks in the views (issue 20; Python: llmasos_widgets/explanation/_sinks.py).
// The trait `attention_sinks` of AttentionWidget and SaliencyWidget holds the positions that
// most heads attend to whatever the query; views mark them (token strip, the pattern view's
// key axis) and can leave them out of a color scale, never hide them.

/** Trait layout (AttentionSinks.summary() in Python); {} when not known. */
export interface SinksTrait {
  positions?: number[];
  head_share?: number[];
  mass?: number[];
  threshold?: number;
  min_share?: number;
  rule?: string;
  note?: string;
}

/** Sink position -> the tooltip line saying why it is marked (text only). */
export function sinkNotes(trait: SinksTrait | null | undefined): Map<number, string> {
  const notes = new Map<number, string>();
  const positions = trait?.positions ?? [];
  positions.forEach((j, k) => {
    const share = trait?.head_share?.[k];
    const mass = trait?.mass?.[k];
    const facts = [
      share !== undefined ? `${Math.round(share * 100)}% of heads attend here whatever the query` : "most heads attend here whatever the query",
      mass !== undefined ? `mean weight ${mass.toFixed(2)}` : "",
    ].filter((s) => s !== "");
    notes.set(j, `attention sink: ${facts.join(", ")}; its large weight (and saliency) says little about what the token means`);
  });
  return notes;
}

/** Whether any of `sinks` lies in [start, stop). */
export function holdsSink(sinks: readonly number[], start: number, stop: number): boolean {
  for (const s of sinks) if (s >= start && s < stop) return true;
  return false;
}

/**
 * Largest value of a pooled [panel, row, col] view, over the columns whose key range
 * (colEdges) holds no sink when `exclude` (all columns when every one holds a sink).
 * Returns [max, whether sinks were left out].
 */
export function scaleMax(values: ArrayLike<number>, nCols: number, colEdges: ArrayLike<number>, sinks: readonly number[], exclude: boolean): [number, boolean] {
  let all = 0;
  let others = 0;
  let anyOther = false;
  const sinkCol = new Uint8Array(nCols);
  let anySink = false;
  for (let c = 0; c < nCols; c++) {
    sinkCol[c] = exclude && holdsSink(sinks, colEdges[c], colEdges[c + 1]) ? 1 : 0;
    if (sinkCol[c]) anySink = true;
    else anyOther = true;
  }
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v > all) all = v;
    if (!sinkCol[i % nCols] && v > others) others = v;
  }
  if (!exclude || !anySink || !anyOther) return [all || 1, false];
  return [others || all || 1, true];
}

/** The "leave sinks out of the color scale" checkbox (AttentionWidget and SaliencyWidget). */
export function makeSinkToggle(testid: string, title: string): { wrap: HTMLLabelElement; input: HTMLInputElement } {
  const wrap = document.createElement("label");
  wrap.className = "llmw-control llmw-sink-toggle";
  wrap.title = title;
  const input = document.createElement("input");
  input.type = "checkbox";
  input.dataset.testid = testid;
  wrap.append(input, document.createTextNode(" sinks out of the color scale"));
  return { wrap, input };
}

/** Legend note of a saliency row scale that left the sinks out ("" when nothing was). */
export function saliencySinkNote(positions: readonly number[], exclude: boolean, nTokens: number): string {
  if (positions.length === 0) return "";
  const tokens = `token${positions.length > 1 ? "s" : ""} ${positions.join(", ")}`;
  if (exclude && positions.length < nTokens) return `; row max over the tokens that are not attention sinks: sink ${tokens} capped at the end colors`;
  return `; ${tokens}: attention sink${positions.length > 1 ? "s" : ""} (marked in the text)`;
}
