// @vitest-environment jsdom
// Attention sinks in the views (issue 20): lib/sinks.ts, the token strip's mark and the
// saliency row scale that leaves sinks out.
import { describe, expect, it } from "vitest";
import { rowUnits } from "../src/lib/saliency_scale";
import { holdsSink, saliencySinkNote, scaleMax, sinkNotes } from "../src/lib/sinks";
import { TokenStrip } from "../src/lib/token_strip";
import { shownTokens } from "../src/lib/token_text";

const HOSTILE = "<img/src=x/onerror=alert(1)>";

describe("attention sinks", () => {
  it("turns the trait into tooltip lines per position", () => {
    const notes = sinkNotes({ positions: [0, 7], head_share: [0.76, 0.6], mass: [0.741, 0.5] });
    expect([...notes.keys()]).toEqual([0, 7]);
    expect(notes.get(0)).toContain("76% of heads attend here whatever the query");
    expect(notes.get(0)).toContain("mean weight 0.74");
    expect(sinkNotes({}).size).toBe(0);
    expect(sinkNotes(undefined).size).toBe(0);
  });

  it("takes the scale's max over the columns without a sink only when asked", () => {
    // one panel, 2 rows x 3 columns of single keys; key 0 is the sink
    const values = [0.9, 0.05, 0.05, 0.8, 0.1, 0.1];
    const edges = [0, 1, 2, 3];
    expect(scaleMax(values, 3, edges, [0], false)).toEqual([0.9, false]);
    const [max, leftOut] = scaleMax(values, 3, edges, [0], true);
    expect(max).toBeCloseTo(0.1);
    expect(leftOut).toBe(true);
    // a pooled block holding the sink is left out as a whole; every column a sink: all of them
    expect(scaleMax(values, 3, [0, 2, 3, 4], [1], true)[0]).toBeCloseTo(0.1);
    expect(scaleMax([0.5, 0.2], 1, [0, 2], [0], true)).toEqual([0.5, false]);
    expect(holdsSink([4], 0, 4)).toBe(false);
    expect(holdsSink([4], 4, 5)).toBe(true);
  });

  it("scales saliency rows over the other tokens and caps the sink", () => {
    const scores = [10, 1, -2, 4];
    const plain = rowUnits(scores, 1, 4);
    expect(plain[0]).toBeCloseTo(1);
    expect(plain[2]).toBeCloseTo(0.4);
    const without = rowUnits(scores, 1, 4, [0]);
    expect(without[0]).toBe(1); // capped at the end color
    expect(without[3]).toBeCloseTo(1);
    expect(without[2]).toBeCloseTo(0.25);
    expect(saliencySinkNote([0], true, 4)).toContain("capped");
    expect(saliencySinkNote([0], false, 4)).toContain("token 0: attention sink");
    expect(saliencySinkNote([], true, 4)).toBe("");
  });

  it("marks sink tokens in the strip without touching their text", () => {
    const strip = new TokenStrip(shownTokens([HOSTILE, "b", "c"]), { onHover: () => {}, onSelect: () => {} });
    document.body.appendChild(strip.element);
    strip.setSinks(sinkNotes({ positions: [0], head_share: [0.8], mass: [0.7] }));
    const span = strip.element.querySelector<HTMLElement>('[data-testid="token-0"]')!;
    expect(span.classList.contains("llmw-token--sink")).toBe(true);
    expect(span.dataset.sink).toBe("true");
    expect(span.textContent).toBe(HOSTILE);
    expect(span.querySelector("img")).toBeNull();
    expect(span.title).toContain("attention sink: 80% of heads");
    expect(strip.scroller.dataset.sinks).toBe("0");
    const other = strip.element.querySelector<HTMLElement>('[data-testid="token-1"]')!;
    expect(other.classList.contains("llmw-token--sink")).toBe(false);
    strip.setSinks(new Map());
    expect(span.classList.contains("llmw-token--sink")).toBe(false);
    strip.destroy();
  });
});
