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
import { type ColorScale, isDark, unitToIndex } from "./colors";
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

const UNKNOWN_COLOR = -2;

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
  // LUT index last written per span (-1: no color, UNKNOWN_COLOR: not written yet)
  private colorIndex = new Int16Array(0);
  private colorScale: ColorScale | null = null;
  private cssColors: [string, string][] = [];
  private wanted = new Int16Array(0); // LUT index each span should show (-1: none)
  private visible: Uint8Array | null = null; // per span, 1 = in the strip's view; null = unknown (all)
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
    if (typeof IntersectionObserver === "function") {
      const observer = new IntersectionObserver((entries) => this.onVisibility(entries), {
        root: this.element,
        rootMargin: "48px 0px",
      });
      this.spans.forEach((span) => observer.observe(span));
      this.cleanups.push(() => observer.disconnect());
    }
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

  /**
   * Background per token from values in [0, 1]; null or NaN clears the color. Every hover
   * recolors the strip, and restyling thousands of spans costs more than a frame at T = 2048,
   * so only spans inside the strip's scroll view (tracked by an IntersectionObserver) whose
   * color (LUT index) changed are written; the others get their color when scrolled into view.
   */
  setValues(values: ArrayLike<number> | null, scale: ColorScale): void {
    if (this.colorIndex.length !== this.spans.length || scale !== this.colorScale) {
      this.colorIndex = new Int16Array(this.spans.length).fill(UNKNOWN_COLOR);
      this.wanted = new Int16Array(this.spans.length).fill(-1);
      this.colorScale = scale;
      this.cssColors = [];
    }
    const visible = this.visible;
    for (let i = 0; i < this.spans.length; i++) {
      const v = values ? values[i] : NaN;
      this.wanted[i] = v === undefined || Number.isNaN(v) ? -1 : Math.max(0, unitToIndex(v));
      if (visible === null || visible[i]) this.paintColor(i);
    }
  }

  /** Spans scrolled into (or out of) the strip's view; newly visible ones get their color. */
  private onVisibility(entries: IntersectionObserverEntry[]): void {
    if (this.visible === null) this.visible = new Uint8Array(this.spans.length);
    for (const entry of entries) {
      const i = Number((entry.target as HTMLElement).dataset.index);
      this.visible[i] = entry.isIntersecting ? 1 : 0;
      if (entry.isIntersecting) this.paintColor(i);
    }
  }

  private paintColor(i: number): void {
    const idx = this.wanted[i];
    if (idx === this.colorIndex[i] || this.colorScale === null) return;
    this.colorIndex[i] = idx;
    const span = this.spans[i];
    if (idx < 0) {
      span.style.removeProperty("background-color");
      span.style.removeProperty("color");
      return;
    }
    const [background, text] = this.cssColor(this.colorScale, idx);
    span.style.backgroundColor = background;
    span.style.color = text;
  }

  private cssColor(scale: ColorScale, idx: number): [string, string] {
    let css = this.cssColors[idx];
    if (!css) {
      const rgb = [scale.lut[idx * 3], scale.lut[idx * 3 + 1], scale.lut[idx * 3 + 2]] as const;
      css = [`rgb(${rgb[0]}, ${rgb[1]}, ${rgb[2]})`, isDark(rgb) ? "#fff" : "#111"];
      this.cssColors[idx] = css;
    }
    return css;
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
