// A token as a small inline chip, optionally shaded by a value in [0, 1]: the token lists of
// the feature card (features.ts: top examples, promoted / suppressed logits) and the graph's
// node card (graph.ts). The label is written as text (lib/token_text.ts writeToken).
import { type ColorScale, cssColor, getScale } from "./colors";
import { type ShownToken, writeToken } from "./token_text";

const BLUES = getScale("blues");

/** A `span` holding `token` as text, shaded by `shade` (see shadeChip). */
export function tokenChip(token: Pick<ShownToken, "text" | "kind">, shade = 0, scale: ColorScale = BLUES): HTMLSpanElement {
  const span = document.createElement("span");
  writeToken(span, token);
  Object.assign(span.style, {
    display: "inline-block",
    fontFamily: "monospace",
    whiteSpace: "pre",
    padding: "1px 3px",
    margin: "1px",
    borderRadius: "3px",
    border: "1px solid #d0d7de",
  });
  shadeChip(span, shade, scale);
  return span;
}

/** Fill a chip from `scale` at `shade` in (0, 1], transparent at 0; white text past 0.6. */
export function shadeChip(span: HTMLElement, shade: number, scale: ColorScale = BLUES): void {
  span.style.background = shade > 0 ? cssColor(scale, shade) : "transparent";
  span.style.color = shade > 0.6 ? "#fff" : "inherit";
}
