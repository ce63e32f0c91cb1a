// The text as its tokens: one <span> per token, colored by a value per token, with hover,
// click and drag-to-brush. Reused by every widget that shows text (attention, saliency).
// Token strings are data: they are only ever written with textContent / setAttribute.
//
// What a token reads as (its text, kind and quiet marks) is lib/token_text.ts's.
//
// Virtualised: tokens are laid out in lines (widths measured once, monospace font), and only
// the lines in the strip's scroll view (plus OVERSCAN_LINES each side) exist in the DOM, so a
// 32k-token text costs a few hundred spans. An overview bar below shows the whole sequence:
// the strip's colors, the generated part, brushed and hovered tokens and the visible window;
// clicking it scrolls there. A `llmw-reveal` CustomEvent (detail: token index) dispatched on
// the strip scrolls a token into view (used by browser tests and benches).
//
// Generation (traits prompt_length / token_probabilities of widgets/_base.py):
// tokens from prompt_length on are marked generated, the first with a boundary mark, and each
// token with a probability gets a bar under it (width = P) and the exact value in its tooltip.
//
// DOM (stable for browser tests):
//   div.llmw-strip[data-testid="token-strip-wrap"]
//   div.llmw-token-strip[data-testid="token-strip"][data-rendered="<n spans>"][data-first][data-last]
//     div.llmw-strip-line > span.llmw-token[data-testid="token-<i>"][data-index="<i>"][data-kind="<kind>"]
//        children: text nodes, and span.llmw-mark for each run of quiet marks
//        + .llmw-token--special (<s>, <|begin_of_text|>) / .llmw-token--space (only whitespace)
//        + .llmw-token--continuation / .llmw-token--bytes (<0xE8>: bytes of no character)
//        + .llmw-token--selected / .llmw-token--hovered
//        + .llmw-token--unlinked: past the tokens shared with linked widgets (`linked_tokens`)
//        + .llmw-token--generated, .llmw-token--boundary (first generated token)
//        + .llmw-token--sink[data-sink="true"]: an attention sink (setSinks): dashed outline
//          and a "sink" badge (CSS ::after, not text of the token), the reason in its tooltip
//        + .llmw-token--message-start[data-role="<role>"] (first token of a chat message,
//          `message_spans`): > span.llmw-role[data-testid="role-<i>"] the role, as text
//        > span.llmw-prob[data-testid="prob-<i>"] (width = P(token | prefix))
//     div.llmw-token-strip[data-linked-tokens="<n>"]  (-1: not linked to another text)
//   canvas[data-testid="token-overview"][data-hovered][data-window="first,last"][data-selected]

import "./token_strip.css";
import { type ColorScale, isDark, unitToIndex } from "./colors";
import { setupCanvas } from "./heatmap";
import { brushTokens, clickToken, type Modifiers } from "./selection";
import { type ShownToken, tokenLabel, tokenTitle, writeToken } from "./token_text";

const UNKNOWN_COLOR = -2;
export const UNLINKED_NOTE = " · not linked: a linked widget's text differs from here on";

/** Geometry of the strip (CSS pixels; mirrored in token_strip.css). */
export const LINE_PX = 22; // 18 px line + 2 px border + 2 px gap
const CHAR_PX = 7.3; // 12 px monospace, when text cannot be measured (jsdom)
const TOKEN_EXTRA_PX = 8 + 2; // padding + border
const GAP_PX = 2;
const PAD_PX = 4;
const OVERSCAN_LINES = 2;
const DEFAULT_WIDTH = 800;
const DEFAULT_VIEW_PX = 132;
const OVERVIEW_PX = 14;

/** One message of a chat (widgets/_base.py `message_spans`): tokens [start, end). */
export interface MessageSpan {
  role: string;
  start: number;
  end: number;
  generated?: boolean;
}

/** The label a message's first token shows: its role, and whether it was generated. */
export function roleLabel(message: MessageSpan): string {
  return message.generated ? `${message.role} (generated)` : message.role;
}

function roleWidth(message: MessageSpan | undefined): number {
  return message === undefined ? 0 : textWidth(roleLabel(message)) * 0.75 + ROLE_EXTRA_PX;
}

const ROLE_EXTRA_PX = 10; // the label's padding and margin (token_strip.css .llmw-role)

/** First token of each line when tokens of these widths wrap at `available` pixels. */
export function layoutLines(widths: ArrayLike<number>, available: number, gap = GAP_PX): Int32Array {
  const starts: number[] = [];
  let x = 0;
  for (let i = 0; i < widths.length; i++) {
    const w = widths[i];
    if (i === 0 || (x > 0 && x + w > available)) {
      starts.push(i);
      x = 0;
    }
    x += w + gap;
  }
  return Int32Array.from(starts);
}

/** Line holding token t (binary search in line starts). */
export function lineOf(starts: Int32Array, t: number): number {
  let lo = 0;
  let hi = starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (starts[mid] <= t) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** Lines [first, last) to render for a scroll position: the visible ones plus overscan. */
export function visibleLines(scrollTop: number, viewPx: number, nLines: number, linePx = LINE_PX, overscan = OVERSCAN_LINES): [number, number] {
  const first = Math.max(0, Math.floor(scrollTop / linePx) - overscan);
  const last = Math.min(nLines, Math.ceil((scrollTop + viewPx) / linePx) + overscan);
  return [first, Math.max(first, last)];
}

/** Token under x of an overview bar `width` px wide showing n tokens. */
export function overviewToken(x: number, width: number, n: number): number {
  return Math.max(0, Math.min(n - 1, Math.floor((x / width) * n)));
}

let measureCtx: CanvasRenderingContext2D | null | undefined;
function textWidth(text: string): number {
  if (measureCtx === undefined) {
    try {
      measureCtx = document.createElement("canvas").getContext("2d");
      if (measureCtx) measureCtx.font = "12px ui-monospace, monospace";
    } catch {
      measureCtx = null;
    }
  }
  const measured = measureCtx?.measureText?.(text)?.width;
  return typeof measured === "number" && measured > 0 ? measured : [...text].length * CHAR_PX;
}

export interface TokenStripCallbacks {
  /** Pointer over token t (-1 when it leaves the strip). */
  onHover(t: number): void;
  /** New brushed selection after a click or a drag. */
  onSelect(tokens: number[]): void;
}

export class TokenStrip {
  /** The strip and its overview bar. */
  readonly element: HTMLDivElement;
  /** The scrolling token area (testid token-strip). */
  readonly scroller: HTMLDivElement;
  readonly overview: HTMLCanvasElement;
  private readonly spacer: HTMLDivElement;
  private readonly widths: Float32Array;
  private starts: Int32Array = new Int32Array(0);
  private layoutWidth = 0;
  private scrollerWidth = 0; // see overviewWidth
  private rendered: [number, number] = [0, 0]; // token range [first, last) in the DOM
  private spans = new Map<number, HTMLSpanElement>();
  private selected = new Set<number>();
  private hovered = -1;
  private anchor = -1;
  private dragStart = -1;
  private dragEnd = -1;
  private brush: Set<number> | null = null; // while dragging
  private linked = -1;
  private promptLength = -1;
  private probabilities: readonly number[] = [];
  private messageStarts = new Map<number, MessageSpan>(); // first token -> its message
  private sinks: ReadonlyMap<number, string> = new Map();
  private colorScale: ColorScale | null = null;
  private cssColors: [string, string][] = [];
  private wanted: Int16Array; // LUT index per token (-1: none)
  private colorCache: HTMLCanvasElement | null = null; // overview colors, until setValues
  private readonly cleanups: (() => void)[] = [];

  constructor(private readonly tokens: readonly ShownToken[], private readonly callbacks: TokenStripCallbacks) {
    this.wanted = new Int16Array(tokens.length).fill(-1);
    this.widths = Float32Array.from(tokens, (t) => textWidth(tokenLabel(t)) + TOKEN_EXTRA_PX);
    this.element = document.createElement("div");
    this.element.className = "llmw-strip";
    this.element.dataset.testid = "token-strip-wrap";
    this.scroller = document.createElement("div");
    this.scroller.className = "llmw-token-strip";
    this.scroller.dataset.testid = "token-strip";
    this.spacer = document.createElement("div");
    this.spacer.className = "llmw-strip-spacer";
    this.scroller.appendChild(this.spacer);
    this.overview = document.createElement("canvas");
    this.overview.className = "llmw-token-overview";
    this.overview.dataset.testid = "token-overview";
    this.overview.title = "the whole text: click to scroll there";
    this.element.append(this.scroller, this.overview);
    this.layout();

    this.listen(this.scroller, "scroll", () => this.renderWindow());
    this.listen(this.scroller, "pointerover", (e) => this.onPointerOver(e as PointerEvent));
    this.listen(this.scroller, "pointerleave", () => this.setHoverFromPointer(-1));
    this.listen(this.scroller, "pointerdown", (e) => this.onPointerDown(e as PointerEvent));
    // pointerup may happen outside the strip after a drag
    this.listen(window, "pointerup", (e) => this.onPointerUp(e as PointerEvent));
    this.listen(this.scroller, "llmw-reveal", (e) => this.reveal(Number((e as CustomEvent).detail)));
    this.listen(this.overview, "click", (e) => {
      const m = e as MouseEvent;
      this.reveal(overviewToken(m.offsetX, this.overviewWidth(), this.tokens.length));
    });
    if (typeof ResizeObserver === "function") {
      const observer = new ResizeObserver(() => {
        this.scrollerWidth = this.scroller.clientWidth;
        if (Math.abs(this.availableWidth() - this.layoutWidth) > 1) this.layout();
        else this.renderWindow();
      });
      observer.observe(this.scroller);
      this.cleanups.push(() => observer.disconnect());
    }
  }

  private listen(target: EventTarget, type: string, handler: (e: Event) => void): void {
    target.addEventListener(type, handler);
    this.cleanups.push(() => target.removeEventListener(type, handler));
  }

  private availableWidth(): number {
    const w = this.scroller.clientWidth;
    return (w > 0 ? w : DEFAULT_WIDTH) - 2 * PAD_PX - 14; // room for a scroll bar
  }

  /** The scroller's width, kept by the ResizeObserver: every hover redraws the overview, and
   * reading clientWidth after the hover's class change forced a style and layout pass in the
   * handler (the largest single cost of a hover at long context). */
  private overviewWidth(): number {
    if (this.scrollerWidth <= 0) this.scrollerWidth = this.scroller.clientWidth;
    return this.scrollerWidth > 0 ? this.scrollerWidth : DEFAULT_WIDTH;
  }

  /** Lines from the token widths at the current width; keeps the first visible token in view. */
  private layout(): void {
    const firstVisible = this.starts.length > 0 ? this.starts[Math.min(this.starts.length - 1, Math.floor(this.scroller.scrollTop / LINE_PX))] : 0;
    this.layoutWidth = this.availableWidth();
    this.starts = layoutLines(this.widths, this.layoutWidth);
    const lines = this.tokens.length === 0 ? 0 : this.starts.length;
    this.spacer.style.height = `${lines * LINE_PX}px`;
    this.scroller.style.height = `${Math.min(DEFAULT_VIEW_PX, lines * LINE_PX) + 2 * PAD_PX}px`;
    this.scroller.dataset.lines = String(lines);
    this.rendered = [0, 0];
    this.spans.forEach((span) => span.parentElement?.remove());
    this.spans.clear();
    this.spacer.replaceChildren();
    if (firstVisible > 0) this.scroller.scrollTop = lineOf(this.starts, firstVisible) * LINE_PX;
    this.renderWindow();
  }

  private lineEnd(line: number): number {
    return line + 1 < this.starts.length ? this.starts[line + 1] : this.tokens.length;
  }

  /** Create the lines in view (+ overscan), drop the others. */
  private renderWindow(): void {
    const viewPx = this.scroller.clientHeight > 0 ? this.scroller.clientHeight : DEFAULT_VIEW_PX;
    const [firstLine, lastLine] = visibleLines(this.scroller.scrollTop, viewPx, this.tokens.length === 0 ? 0 : this.starts.length);
    const first = firstLine < lastLine ? this.starts[firstLine] : 0;
    const last = firstLine < lastLine ? this.lineEnd(lastLine - 1) : 0;
    if (first !== this.rendered[0] || last !== this.rendered[1]) {
      for (const [i, span] of this.spans) {
        if (i >= first && i < last) continue;
        this.spans.delete(i);
        const line = span.parentElement;
        span.remove();
        if (line && line.childElementCount === 0) line.remove();
      }
      for (let line = firstLine; line < lastLine; line++) {
        const start = this.starts[line];
        if (this.spans.has(start)) continue; // line already there
        const div = document.createElement("div");
        div.className = "llmw-strip-line";
        div.style.top = `${line * LINE_PX}px`;
        for (let i = start; i < this.lineEnd(line); i++) div.appendChild(this.makeSpan(i));
        this.spacer.appendChild(div);
      }
      this.rendered = [first, last];
      this.scroller.dataset.first = String(first);
      this.scroller.dataset.last = String(last);
      this.scroller.dataset.rendered = String(this.spans.size);
    }
    this.drawOverview();
  }

  private makeSpan(i: number): HTMLSpanElement {
    const token = this.tokens[i];
    const span = document.createElement("span");
    span.className = "llmw-token";
    if (token.kind !== "text") span.classList.add(`llmw-token--${token.kind}`);
    else if (token.text.length > 0 && token.text.trim() === "") span.classList.add("llmw-token--space");
    span.dataset.testid = `token-${i}`;
    span.dataset.index = String(i);
    span.dataset.kind = token.kind;
    writeToken(span, token);
    this.spans.set(i, span);
    this.applyState(i, span);
    return span;
  }

  /** Everything about token i that is not its text: classes, color, tooltip, probability. */
  private applyState(i: number, span: HTMLSpanElement): void {
    const chosen = this.brush ?? this.selected;
    span.classList.toggle("llmw-token--selected", chosen.has(i));
    span.classList.toggle("llmw-token--hovered", i === this.hovered);
    const unlinked = this.linked >= 0 && i >= this.linked;
    span.classList.toggle("llmw-token--unlinked", unlinked);
    const generated = this.promptLength >= 0 && i >= this.promptLength;
    span.classList.toggle("llmw-token--generated", generated);
    span.classList.toggle("llmw-token--boundary", generated && i === this.promptLength);
    const p = this.probabilities[i];
    let title = tokenTitle(this.tokens, i);
    if (p !== undefined && p >= 0) title += ` · P = ${p}`;
    if (generated && i === this.promptLength) title += " · first generated token";
    const sink = this.sinks.get(i);
    span.classList.toggle("llmw-token--sink", sink !== undefined);
    if (sink !== undefined) span.dataset.sink = "true";
    else delete span.dataset.sink;
    if (sink !== undefined) title += ` · ${sink}`;
    span.title = unlinked ? title + UNLINKED_NOTE : title;
    let bar = span.querySelector<HTMLSpanElement>(":scope > .llmw-prob");
    if (p !== undefined && p >= 0) {
      if (!bar) {
        bar = document.createElement("span");
        bar.className = "llmw-prob";
        bar.dataset.testid = `prob-${i}`;
        span.appendChild(bar);
      }
      bar.style.width = `${Math.max(0, Math.min(1, p)) * 100}%`;
      bar.dataset.value = String(p);
    } else bar?.remove();
    this.applyMessage(i, span);
    this.paintColor(i, span);
  }

  private refreshRendered(): void {
    for (const [i, span] of this.spans) this.applyState(i, span);
    this.drawOverview();
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
      this.brush = new Set(brushTokens([], this.dragStart, t));
      for (const [i, span] of this.spans) span.classList.toggle("llmw-token--selected", this.brush.has(i));
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
    this.brush = null;
    const mods: Modifiers = { shiftKey: e.shiftKey, ctrlKey: e.ctrlKey, metaKey: e.metaKey };
    const current = [...this.selected].sort((a, b) => a - b);
    let next: number[];
    if (start === end) {
      next = clickToken(current, start, this.anchor, mods);
      if (!mods.shiftKey) this.anchor = start;
    } else {
      next = brushTokens(current, start, end, mods);
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
    this.spans.get(this.hovered)?.classList.remove("llmw-token--hovered");
    this.hovered = t;
    this.spans.get(t)?.classList.add("llmw-token--hovered");
    this.drawOverview();
  }

  setSelected(tokens: readonly number[]): void {
    this.selected = new Set(tokens);
    for (const [i, span] of this.spans) span.classList.toggle("llmw-token--selected", this.selected.has(i));
    this.drawOverview();
  }

  /**
   * Background per token from values in [0, 1]; null or NaN clears the color. Only rendered
   * spans whose color (LUT index) changed are written; the rest get theirs when rendered.
   */
  setValues(values: ArrayLike<number> | null, scale: ColorScale): void {
    if (scale !== this.colorScale) {
      this.colorScale = scale;
      this.cssColors = [];
    }
    for (let i = 0; i < this.tokens.length; i++) {
      const v = values ? values[i] : NaN;
      this.wanted[i] = v === undefined || Number.isNaN(v) ? -1 : Math.max(0, unitToIndex(v));
    }
    this.colorCache = null;
    for (const [i, span] of this.spans) this.paintColor(i, span);
    this.drawOverview();
  }

  private paintColor(i: number, span: HTMLSpanElement): void {
    const idx = this.wanted[i];
    const written = span.dataset.color === undefined ? UNKNOWN_COLOR : Number(span.dataset.color);
    if (idx === written || this.colorScale === null) return;
    span.dataset.color = String(idx);
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
    this.linked = n;
    this.scroller.dataset.linkedTokens = String(n);
    this.refreshRendered();
  }

  /** Generated part from `promptLength` on (-1: none), P(token | prefix) per token. */
  setGeneration(promptLength: number, probabilities: readonly number[] | null | undefined): void {
    this.promptLength = promptLength;
    this.probabilities = probabilities && probabilities.length === this.tokens.length ? probabilities : [];
    this.scroller.dataset.promptLength = String(promptLength);
    this.refreshRendered();
  }

  /** Attention sinks (AttentionWidget/SaliencyWidget trait `attention_sinks`): position ->
   * the tooltip line saying why it is marked. */
  setSinks(sinks: ReadonlyMap<number, string>): void {
    this.sinks = sinks;
    this.scroller.dataset.sinks = [...sinks.keys()].join(",");
    this.refreshRendered();
  }

  /** A chat's messages (trait `message_spans`): each message's first token shows its role. */
  setMessages(spans: readonly MessageSpan[] | null | undefined): void {
    for (const i of this.messageStarts.keys()) this.widths[i] -= roleWidth(this.messageStarts.get(i));
    this.messageStarts = new Map();
    for (const span of spans ?? []) {
      if (span.start >= 0 && span.start < span.end && span.end <= this.tokens.length) this.messageStarts.set(span.start, span);
    }
    for (const [i, span] of this.messageStarts) this.widths[i] += roleWidth(span);
    this.scroller.dataset.messages = [...this.messageStarts.values()].map((m) => `${m.role}:${m.start}-${m.end}`).join(",");
    this.layout();
  }

  private applyMessage(i: number, span: HTMLSpanElement): void {
    const message = this.messageStarts.get(i);
    span.classList.toggle("llmw-token--message-start", message !== undefined);
    let label = span.querySelector<HTMLSpanElement>(":scope > .llmw-role");
    if (message === undefined) {
      label?.remove();
      delete span.dataset.role;
      return;
    }
    span.dataset.role = message.role;
    if (!label) {
      label = document.createElement("span");
      label.className = "llmw-role";
      label.dataset.testid = `role-${i}`;
      span.prepend(label);
    }
    label.textContent = roleLabel(message); // text, never HTML
    span.title += ` · ${roleLabel(message)} message: tokens ${message.start}..${message.end - 1}`;
  }

  /** Scroll token t into view inside the strip; its line is rendered when this returns. */
  reveal(t: number): void {
    if (!(t >= 0 && t < this.tokens.length)) return;
    const line = lineOf(this.starts, t);
    const viewPx = this.scroller.clientHeight > 0 ? this.scroller.clientHeight : DEFAULT_VIEW_PX;
    this.scroller.scrollTop = Math.max(0, line * LINE_PX - (viewPx - LINE_PX) / 2);
    this.renderWindow();
  }

  /**
   * The strip's colors over the whole text, one pixel per column (the strongest color of the
   * tokens under it), drawn once per setValues: hovers only redraw the marks over it.
   */
  private overviewColors(width: number): HTMLCanvasElement | null {
    if (!this.colorScale) return null;
    const cols = Math.max(1, Math.round(width));
    if (this.colorCache && this.colorCache.width === cols) return this.colorCache;
    const canvas = document.createElement("canvas");
    canvas.width = cols;
    canvas.height = 1;
    const ctx = canvas.getContext("2d");
    if (!ctx || typeof ctx.createImageData !== "function") return null;
    const image = ctx.createImageData(cols, 1);
    const n = this.tokens.length;
    const lut = this.colorScale.lut;
    for (let c = 0; c < cols; c++) {
      let idx = -1;
      const end = Math.max(Math.floor(((c + 1) * n) / cols), Math.floor((c * n) / cols) + 1);
      for (let i = Math.floor((c * n) / cols); i < Math.min(n, end); i++) if (this.wanted[i] > idx) idx = this.wanted[i];
      if (idx < 0) continue;
      image.data.set([lut[idx * 3], lut[idx * 3 + 1], lut[idx * 3 + 2], 255], c * 4);
    }
    ctx.putImageData(image, 0, 0);
    this.colorCache = canvas;
    return canvas;
  }

  /** The whole sequence in one bar: colors, generated part, brushed / hovered tokens, view. */
  private drawOverview(): void {
    const n = this.tokens.length;
    const width = this.overviewWidth();
    const canvas = this.overview;
    canvas.dataset.hovered = String(this.hovered);
    canvas.dataset.selected = String(this.selected.size);
    canvas.dataset.window = `${this.rendered[0]},${this.rendered[1]}`;
    const ctx = setupCanvas(canvas, width, OVERVIEW_PX);
    if (!ctx || n === 0 || typeof ctx.fillRect !== "function") return; // (test stubs)
    const x = (t: number): number => (t / n) * width;
    ctx.fillStyle = "#f2f2f2";
    ctx.fillRect(0, 0, width, OVERVIEW_PX);
    const colors = this.overviewColors(width);
    if (colors) {
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(colors, 0, 3, width, OVERVIEW_PX - 6);
    }
    if (this.promptLength >= 0 && this.promptLength < n) {
      ctx.fillStyle = "rgba(44, 160, 44, 0.18)";
      ctx.fillRect(x(this.promptLength), 0, width - x(this.promptLength), OVERVIEW_PX);
      ctx.fillStyle = "#2ca02c";
      ctx.fillRect(x(this.promptLength) - 1, 0, 2, OVERVIEW_PX);
    }
    ctx.fillStyle = "#d62728";
    for (const t of this.selected) ctx.fillRect(x(t), 0, Math.max(1, width / n), 4);
    ctx.strokeStyle = "#555";
    ctx.lineWidth = 1;
    const [first, last] = this.rendered;
    ctx.strokeRect(x(first) + 0.5, 0.5, Math.max(2, x(last) - x(first)) - 1, OVERVIEW_PX - 1);
    if (this.hovered >= 0) {
      ctx.fillStyle = "#111";
      ctx.fillRect(x(this.hovered) - 1, 0, 3, OVERVIEW_PX);
    }
  }

  destroy(): void {
    this.cleanups.splice(0).forEach((fn) => fn());
    this.element.remove();
  }
}
