// The text as its tokens: one <span> per token, colored by a value per token, with hover,
// click and drag-to-brush. Reused by every widget that shows text (attention, saliency).
// Token strings are data: they are only ever written with textContent / setAttribute.
//
// What a token reads as is decided in Python (llmasos_widgets/_readable_tokens.py): the
// `display_tokens` trait holds each token's decoded text (real whitespace, characters joined
// across byte pieces) and `token_kinds` its kind. Here whitespace becomes quiet marks
// (␣ space, ⏎ newline, ⇥ tab, control pictures) and a continuation (the later bytes of a
// character shown on an earlier token) a quiet ◌.
//
// DOM (stable for browser tests):
//   div.llmw-token-strip[data-testid="token-strip"]
//     span.llmw-token[data-testid="token-<i>"][data-index="<i>"][data-kind="<kind>"]
//        children: text nodes, and span.llmw-mark for each run of quiet marks
//        + .llmw-token--special (<s>, <|begin_of_text|>) / .llmw-token--space (only whitespace)
//        + .llmw-token--continuation / .llmw-token--bytes (<0xE8>: bytes of no character)
//        + .llmw-token--selected / .llmw-token--hovered
//        + .llmw-token--unlinked: past the tokens shared with linked widgets (`linked_tokens`)
//     div.llmw-token-strip[data-linked-tokens="<n>"]  (-1: not linked to another text)

import "./token_strip.css";
import { type ColorScale, isDark, unitToIndex } from "./colors";
import { brushTokens, clickToken, type Modifiers } from "./selection";

/** Kinds written by Python's show_tokens (llmasos_widgets/_readable_tokens.py). */
export type TokenKind = "text" | "special" | "continuation" | "bytes";

/** One token: the tokenizer's raw string, the text a reader sees, and its kind. */
export interface ShownToken {
  raw: string;
  text: string;
  kind: TokenKind;
  /** For a continuation: the token that shows its character; otherwise its own index. */
  lead: number;
}

/** A run of a token's label; quiet runs are marks (whitespace, continuation, empty). */
export interface TokenPiece {
  text: string;
  quiet: boolean;
}

export const CONTINUATION_MARK = "◌";
const KINDS: readonly string[] = ["text", "special", "continuation", "bytes"];
const MARKS: Record<string, string> = { " ": "␣", "\n": "⏎", "\t": "⇥", "\r": "␍" };

/**
 * Tokens from the widget's traits. Without display strings (an older kernel) the raw strings
 * are shown as they are.
 */
export function shownTokens(raw: readonly string[], display?: readonly string[] | null, kinds?: readonly string[] | null): ShownToken[] {
  const usable = display && kinds && display.length === raw.length && kinds.length === raw.length;
  let lead = 0;
  return raw.map((r, i) => {
    const kind = (usable && KINDS.includes(kinds[i]) ? kinds[i] : "text") as TokenKind;
    if (kind !== "continuation") lead = i;
    return { raw: r, text: usable ? display[i] : r, kind, lead };
  });
}

/** The runs a token is drawn with: whitespace and control characters as quiet marks. */
export function tokenPieces(token: Pick<ShownToken, "text" | "kind">): TokenPiece[] {
  if (token.kind === "continuation") return [{ text: CONTINUATION_MARK, quiet: true }];
  if (token.text.length === 0) return [{ text: "∅", quiet: true }];
  if (token.kind === "special" || token.kind === "bytes") return [{ text: token.text, quiet: false }];
  const pieces: TokenPiece[] = [];
  for (const ch of token.text) {
    const code = ch.codePointAt(0) ?? 0;
    const mark = MARKS[ch] ?? (code < 0x20 ? String.fromCharCode(0x2400 + code) : undefined);
    const quiet = mark !== undefined;
    const last = pieces[pieces.length - 1];
    if (last && last.quiet === quiet) last.text += mark ?? ch;
    else pieces.push({ text: mark ?? ch, quiet });
  }
  return pieces;
}

/** The whole label as one string (canvas labels, tooltips). */
export function tokenLabel(token: Pick<ShownToken, "text" | "kind">): string {
  return tokenPieces(token)
    .map((p) => p.text)
    .join("");
}

/** Write a token's label into `el` as text nodes, quiet runs in span.llmw-mark. */
export function writeToken(el: HTMLElement, token: Pick<ShownToken, "text" | "kind">): void {
  el.replaceChildren(
    ...tokenPieces(token).map((piece) => {
      if (!piece.quiet) return document.createTextNode(piece.text);
      const mark = document.createElement("span");
      mark.className = "llmw-mark";
      mark.textContent = piece.text;
      return mark;
    }),
  );
}

/** Tooltip: position, the raw string (JSON-quoted, exact) and, for a continuation, whose part. */
export function tokenTitle(tokens: readonly ShownToken[], i: number): string {
  const token = tokens[i];
  const base = `${i}: ${JSON.stringify(token.raw)}`;
  if (token.kind !== "continuation") return base;
  return `${base} · rest of ${JSON.stringify(tokens[token.lead]?.text ?? "")} (token ${token.lead})`;
}

const UNKNOWN_COLOR = -2;
export const UNLINKED_NOTE = " · not linked: a linked widget's text differs from here on";

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

  constructor(tokens: readonly ShownToken[], private readonly callbacks: TokenStripCallbacks) {
    this.element = document.createElement("div");
    this.element.className = "llmw-token-strip";
    this.element.dataset.testid = "token-strip";
    const fragment = document.createDocumentFragment();
    tokens.forEach((token, i) => {
      const span = document.createElement("span");
      span.className = "llmw-token";
      if (token.kind !== "text") span.classList.add(`llmw-token--${token.kind}`);
      else if (token.text.length > 0 && token.text.trim() === "") span.classList.add("llmw-token--space");
      span.dataset.testid = `token-${i}`;
      span.dataset.index = String(i);
      span.dataset.kind = token.kind;
      writeToken(span, token);
      span.title = tokenTitle(tokens, i);
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

  /**
   * Mark the tokens that brushing and hover do not link to other widgets: with `n >= 0`
   * (from the `linked_tokens` trait) tokens n.. differ from a linked widget's text.
   */
  setLinkedTokens(n: number): void {
    this.element.dataset.linkedTokens = String(n);
    this.spans.forEach((span, i) => {
      const unlinked = n >= 0 && i >= n;
      span.classList.toggle("llmw-token--unlinked", unlinked);
      const base = span.title.split(UNLINKED_NOTE)[0];
      span.title = unlinked ? base + UNLINKED_NOTE : base;
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
