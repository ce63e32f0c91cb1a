// The text as its tokens: one <span> per token, colored by a value per token, with hover,
// click and drag-to-brush. Reused by every widget that shows text (attention, saliency).
// Token strings are data: they are only ever written with textContent / setAttribute.
//
// DOM (stable for browser tests):
//   div.llmw-token-strip[data-testid="token-strip"]
//     span.llmw-token[data-testid="token-<i>"][data-index="<i>"]
//        + .llmw-token--special (<bos>, <|eot|>, [CLS]) / .llmw-token--space (whitespace shown as ␣ ⏎ ⇥)
//        + .llmw-token--selected / .llmw-token--hovered

import "./token_strip.css";
import { type ColorScale, colorAt, isDark } from "./colors";
import { brushTokens, clickToken, type Modifiers } from "./selection";

export interface TokenDisplay {
  text: string;
  special: boolean;
  whitespace: boolean;
}

const SPECIAL = /^(<\|?[A-Za-z0-9_.:/|-]+\|?>|\[[A-Z_]+\])$/;
const VISIBLE: Record<string, string> = {
  " ": "␣",
  "\u2581": "␣", // SentencePiece word boundary
  "\u0120": "␣", // byte-level BPE space (Ġ)
  "\n": "⏎",
  "\u010a": "⏎", // byte-level BPE newline (Ċ)
  "\t": "⇥",
  "\u0109": "⇥", // byte-level BPE tab (ĉ)
  "\r": "␍",
};

/** A legible rendering of one token: whitespace and control characters made visible. */
export function displayToken(raw: string): TokenDisplay {
  if (raw.length === 0) return { text: "∅", special: true, whitespace: false };
  if (SPECIAL.test(raw)) return { text: raw, special: true, whitespace: false };
  let text = "";
  for (const ch of raw) {
    const code = ch.codePointAt(0) ?? 0;
    if (VISIBLE[ch] !== undefined) text += VISIBLE[ch];
    else if (code < 0x20) text += String.fromCharCode(0x2400 + code); // control pictures
    else text += ch;
  }
  return { text, special: false, whitespace: raw.trim() === "" || /^[\s\u2581\u0120\u010a\u0109]+$/.test(raw) };
}

export interface TokenStripCallbacks {
  /** Pointer over token t (-1 when it leaves the strip). */
  onHover(t: number): void;
  /** New brushed selection after a click or a drag. */
  onSelect(tokens: number[]): void;
}

export class TokenStrip {
  readonly element: HTMLDivElement;
  private spans: HTMLSpanElement[] = [];
  private selected: number[] = [];
  private hovered = -1;
  private anchor = -1;
  private dragStart = -1;
  private dragEnd = -1;
  private readonly cleanups: (() => void)[] = [];

  constructor(tokens: readonly string[], private readonly callbacks: TokenStripCallbacks) {
    this.element = document.createElement("div");
    this.element.className = "llmw-token-strip";
    this.element.dataset.testid = "token-strip";
    const fragment = document.createDocumentFragment();
    tokens.forEach((raw, i) => {
      const span = document.createElement("span");
      const shown = displayToken(raw);
      span.className = "llmw-token";
      if (shown.special) span.classList.add("llmw-token--special");
      if (shown.whitespace) span.classList.add("llmw-token--space");
      span.dataset.testid = `token-${i}`;
      span.dataset.index = String(i);
      span.textContent = shown.text;
      span.title = `${i}: ${JSON.stringify(raw)}`;
      fragment.appendChild(span);
      this.spans.push(span);
    });
    this.element.appendChild(fragment);
    this.listen(this.element, "pointerover", (e) => this.onPointerOver(e as PointerEvent));
    this.listen(this.element, "pointerleave", () => this.setHoverFromPointer(-1));
    this.listen(this.element, "pointerdown", (e) => this.onPointerDown(e as PointerEvent));
    // pointerup may happen outside the strip after a drag
    this.listen(window, "pointerup", (e) => this.onPointerUp(e as PointerEvent));
  }

  private listen(target: EventTarget, type: string, handler: (e: Event) => void): void {
    target.addEventListener(type, handler);
    this.cleanups.push(() => target.removeEventListener(type, handler));
  }

  private indexOf(e: Event): number {
    const target = e.target as HTMLElement | null;
    const index = target?.closest?.(".llmw-token") as HTMLElement | null;
    return index?.dataset.index !== undefined ? Number(index.dataset.index) : -1;
  }

  private onPointerOver(e: PointerEvent): void {
    const t = this.indexOf(e);
    if (t < 0) return;
    if (this.dragStart >= 0) {
      this.dragEnd = t;
      this.paintSelection(brushTokens([], this.dragStart, t));
    }
    this.setHoverFromPointer(t);
  }

  private onPointerDown(e: PointerEvent): void {
    const t = this.indexOf(e);
    if (t < 0 || e.button !== 0) return;
    e.preventDefault(); // no text selection while brushing
    this.dragStart = t;
    this.dragEnd = t;
  }

  private onPointerUp(e: PointerEvent): void {
    if (this.dragStart < 0) return;
    const start = this.dragStart;
    const end = this.dragEnd;
    this.dragStart = -1;
    const mods: Modifiers = { shiftKey: e.shiftKey, ctrlKey: e.ctrlKey, metaKey: e.metaKey };
    let next: number[];
    if (start === end) {
      next = clickToken(this.selected, start, this.anchor, mods);
      if (!mods.shiftKey) this.anchor = start;
    } else {
      next = brushTokens(this.selected, start, end, mods);
      this.anchor = start;
    }
    this.setSelected(next);
    this.callbacks.onSelect(next);
  }

  private setHoverFromPointer(t: number): void {
    if (t === this.hovered) return;
    this.setHovered(t);
    this.callbacks.onHover(t);
  }

  setHovered(t: number): void {
    this.spans[this.hovered]?.classList.remove("llmw-token--hovered");
    this.hovered = t;
    this.spans[t]?.classList.add("llmw-token--hovered");
  }

  setSelected(tokens: readonly number[]): void {
    this.selected = [...tokens];
    this.paintSelection(this.selected);
  }

  private paintSelection(tokens: readonly number[]): void {
    const chosen = new Set(tokens);
    this.spans.forEach((span, i) => span.classList.toggle("llmw-token--selected", chosen.has(i)));
  }

  /** Background per token from values in [0, 1]; null or NaN clears the color. */
  setValues(values: ArrayLike<number> | null, scale: ColorScale): void {
    this.spans.forEach((span, i) => {
      const v = values ? values[i] : NaN;
      if (v === undefined || Number.isNaN(v)) {
        span.style.removeProperty("background-color");
        span.style.removeProperty("color");
        return;
      }
      const rgb = colorAt(scale, v);
      span.style.backgroundColor = `rgb(${rgb[0]}, ${rgb[1]}, ${rgb[2]})`;
      span.style.color = isDark(rgb) ? "#fff" : "#111";
    });
  }

  /** Scroll token t into view inside the strip (long texts). */
  reveal(t: number): void {
    this.spans[t]?.scrollIntoView?.({ block: "nearest", inline: "nearest" });
  }

  destroy(): void {
    this.cleanups.splice(0).forEach((fn) => fn());
    this.element.remove();
  }
}
