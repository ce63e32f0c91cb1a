// @vitest-environment jsdom
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { getScale } from "../src/lib/colors";
import { truncatePieces } from "../src/lib/pattern_view";
import { TokenStrip, UNLINKED_NOTE } from "../src/lib/token_strip";
import { CONTINUATION_MARK, shownTokens, tokenLabel, tokenPieces, tokenTitle } from "../src/lib/token_text";

const HOSTILE = "<img src=x onerror=alert(1)>";

function fire(target: Element | Window, type: string, init: MouseEventInit = {}): void {
  // jsdom has no PointerEvent; the strip only reads MouseEvent fields
  target.dispatchEvent(new MouseEvent(type, { bubbles: true, button: 0, ...init }));
}

describe("token display", () => {
  it("shows whitespace as quiet marks and keeps the text between them", () => {
    expect(tokenPieces({ text: " The", kind: "text" })).toEqual([
      { text: "␣", quiet: true },
      { text: "The", quiet: false },
    ]);
    expect(tokenLabel({ text: "\n\n", kind: "text" })).toBe("⏎⏎");
    expect(tokenLabel({ text: "\t\u0001", kind: "text" })).toBe("⇥\u2401");
    expect(tokenLabel({ text: "", kind: "text" })).toBe("∅");
    // the raw alphabets are decoded in Python: a literal ▁ or Ġ is text, not a space
    expect(tokenLabel({ text: "▁Ġ", kind: "text" })).toBe("▁Ġ");
  });

  it("marks continuations quietly and keeps specials and stray bytes whole", () => {
    expect(tokenPieces({ text: "", kind: "continuation" })).toEqual([{ text: CONTINUATION_MARK, quiet: true }]);
    expect(tokenPieces({ text: "<s> x", kind: "special" })).toEqual([{ text: "<s> x", quiet: false }]);
    expect(tokenLabel({ text: "<0xE8>", kind: "bytes" })).toBe("<0xE8>");
  });

  it("reads the traits, falling back to raw strings without display strings", () => {
    const shown = shownTokens(["<s>", "è", "¿Ļ", "æĺ¯"], ["<s>", "这", "", "是"], ["special", "text", "continuation", "text"]);
    expect(shown.map((t) => [t.text, t.kind, t.lead])).toEqual([
      ["<s>", "special", 0],
      ["这", "text", 1],
      ["", "continuation", 1],
      ["是", "text", 3],
    ]);
    expect(tokenTitle(shown, 2)).toBe('2: "¿Ļ" · rest of "这" (token 1)');
    expect(shownTokens(["a", "b"], ["x"], ["text"]).map((t) => [t.text, t.kind])).toEqual([
      ["a", "text"],
      ["b", "text"],
    ]);
  });

  it("reads AttentionWidget's compact forms: display [] = raw, kinds as index:kind entries", () => {
    const shown = shownTokens(["<s>", "a", "b", "c", "d"], [], ["0:special", "3:bytes"]);
    expect(shown.map((t) => [t.text, t.kind])).toEqual([
      ["<s>", "special"],
      ["a", "text"],
      ["b", "text"],
      ["c", "bytes"],
      ["d", "text"],
    ]);
    const spaced = shownTokens(["▁x", "▁y", "z"], [" x", " y", "z"], []);
    expect(spaced.map((t) => [t.text, t.kind])).toEqual([
      [" x", "text"],
      [" y", "text"],
      ["z", "text"],
    ]);
  });
});

describe("TokenStrip", () => {
  afterEach(() => document.body.replaceChildren());
  // jsdom has no canvas 2D context: widths fall back to character counts, no overview drawing
  beforeAll(() => {
    vi.spyOn(HTMLCanvasElement.prototype, "getContext").mockReturnValue(null);
  });

  function strip(tokens: string[], display?: string[], kinds?: string[]) {
    const onHover = vi.fn();
    const onSelect = vi.fn();
    const view = new TokenStrip(shownTokens(tokens, display, kinds), { onHover, onSelect });
    document.body.appendChild(view.element);
    const span = (i: number) => view.element.querySelector(`[data-testid="token-${i}"]`) as HTMLElement;
    return { view, onHover, onSelect, span };
  }

  it("renders hostile token strings as text, never as elements", () => {
    const { view, span } = strip(["<bos>", HOSTILE, "▁a"], ["<bos>", HOSTILE, " a"], ["special", "text", "text"]);
    expect(view.element.querySelector("img")).toBeNull();
    expect(span(1).textContent).toBe(HOSTILE.replaceAll(" ", "␣"));
    // the only elements inside a token are the quiet marks, holding marks only
    const marks = [...span(1).children].map((el) => [el.tagName, el.className, el.textContent]);
    expect(marks).toEqual([["SPAN", "llmw-mark", "␣"], ["SPAN", "llmw-mark", "␣"]]);
    expect(span(0).classList.contains("llmw-token--special")).toBe(true);
    expect(span(1).title).toBe(`1: ${JSON.stringify(HOSTILE)}`);
    expect(span(2).textContent).toBe("␣a");
    expect(span(2).dataset.kind).toBe("text");
  });

  it("shows a character split over tokens once, the rest as continuations", () => {
    const { view, span } = strip(["è", "¿Ļ", "Ġ"], ["这", "", " "], ["text", "continuation", "text"]);
    expect(view.element.textContent).toBe("这◌␣");
    expect(span(1).classList.contains("llmw-token--continuation")).toBe(true);
    expect(span(2).classList.contains("llmw-token--space")).toBe(true);
  });

  it("marks the tokens past what a linked widget shares, and unmarks them when unlinked", () => {
    const { view, span } = strip(["a", "b", "c", "d"]);
    view.setLinkedTokens(2);
    expect(view.scroller.dataset.linkedTokens).toBe("2");
    const unlinked = [0, 1, 2, 3].map((i) => span(i).classList.contains("llmw-token--unlinked"));
    expect(unlinked).toEqual([false, false, true, true]);
    expect(span(3).title).toBe(`3: "d"${UNLINKED_NOTE}`);
    view.setLinkedTokens(3);
    expect(span(2).classList.contains("llmw-token--unlinked")).toBe(false);
    expect(span(3).title).toBe(`3: "d"${UNLINKED_NOTE}`); // the note is not repeated
    view.setLinkedTokens(-1);
    expect(view.element.querySelectorAll(".llmw-token--unlinked").length).toBe(0);
    expect(span(3).title).toBe('3: "d"');
  });

  it("reports hover and brushes a dragged range", () => {
    const { onHover, onSelect, span } = strip(["a", "b", "c", "d", "e"]);
    fire(span(1), "pointerover");
    expect(onHover).toHaveBeenLastCalledWith(1);
    fire(span(1), "pointerdown");
    fire(span(3), "pointerover");
    fire(window, "pointerup");
    expect(onSelect).toHaveBeenLastCalledWith([1, 2, 3]);
    expect(span(2).classList.contains("llmw-token--selected")).toBe(true);
    fire(span(4), "pointerdown");
    fire(window, "pointerup", { shiftKey: true });
    expect(onSelect).toHaveBeenLastCalledWith([1, 2, 3, 4]);
  });

  it("colors tokens by value and clears NaN", () => {
    const { view, span } = strip(["a", "b"]);
    view.setValues([1, NaN], getScale("blues"));
    expect(span(0).style.backgroundColor).toBe("rgb(8, 48, 107)");
    expect(span(0).style.color).toBe("rgb(255, 255, 255)");
    expect(span(1).style.backgroundColor).toBe("");
  });

  it("keeps only the lines in view in the DOM and reveals any token", () => {
    const tokens = Array.from({ length: 8192 }, (_, i) => `w${i}`);
    const { view, span, onHover } = strip(tokens);
    const count = () => view.element.querySelectorAll(".llmw-token").length;
    expect(count()).toBeGreaterThan(50);
    expect(count()).toBeLessThan(600);
    expect(span(5000)).toBeNull();
    view.scroller.dispatchEvent(new CustomEvent("llmw-reveal", { detail: 5000 }));
    expect(span(5000)!.textContent).toBe("w5000");
    expect(span(0)).toBeNull();
    expect(count()).toBeLessThan(600);
    fire(span(5000)!, "pointerover");
    expect(onHover).toHaveBeenLastCalledWith(5000);
    expect(view.overview.dataset.hovered).toBe("5000");
    const [first, last] = view.overview.dataset.window!.split(",").map(Number);
    expect(first <= 5000 && 5000 < last).toBe(true);
    // state set while a token is not in the DOM is applied when it is rendered
    view.setSelected([10]);
    view.setValues(Float32Array.from(tokens, (_, i) => (i === 10 ? 1 : NaN)), getScale("blues"));
    view.reveal(10);
    expect(span(10)!.classList.contains("llmw-token--selected")).toBe(true);
    expect(span(10)!.style.backgroundColor).toBe("rgb(8, 48, 107)");
  });

  it("marks the generated part and shows each token's probability (contract C1)", () => {
    const { view, span } = strip(["a", "b", "c", "d"]);
    view.setGeneration(2, [-1, 0.5, 0.25, 1]);
    expect([0, 1, 2, 3].map((i) => span(i).classList.contains("llmw-token--generated"))).toEqual([false, false, true, true]);
    expect(span(2).classList.contains("llmw-token--boundary")).toBe(true);
    expect(span(3).classList.contains("llmw-token--boundary")).toBe(false);
    expect(span(0).querySelector(".llmw-prob")).toBeNull(); // the first token has no prefix
    const bar = span(2).querySelector(".llmw-prob") as HTMLElement;
    expect([bar.style.width, bar.dataset.value]).toEqual(["25%", "0.25"]);
    expect(span(2).title).toBe('2: "c" · P = 0.25 · first generated token');
    view.setGeneration(-1, []);
    expect(view.element.querySelectorAll(".llmw-token--generated, .llmw-prob").length).toBe(0);
  });

  it("labels each chat message's first token with its role, as text (issue 20)", () => {
    const { view, span } = strip(["<|im_start|>", "user", HOSTILE, "<|im_start|>", "assistant", "4"]);
    view.setMessages([
      { role: "user", start: 0, end: 3 },
      { role: HOSTILE, start: 3, end: 6, generated: true },
    ]);
    const label = (i: number) => span(i).querySelector(":scope > .llmw-role") as HTMLElement | null;
    expect(label(0)!.textContent).toBe("user");
    expect(label(3)!.textContent).toBe(`${HOSTILE} (generated)`);
    expect(label(3)!.children.length).toBe(0); // a role is text, never markup
    expect(span(3).dataset.role).toBe(HOSTILE);
    expect([0, 1, 3].map((i) => span(i).classList.contains("llmw-token--message-start"))).toEqual([true, false, true]);
    expect(label(1)).toBeNull();
    expect(span(0).title).toContain("user message: tokens 0..2");
    view.setMessages([]);
    expect(view.element.querySelectorAll(".llmw-role, .llmw-token--message-start").length).toBe(0);
  });

  it("destroy removes every listener, including the window one", () => {
    const { view, onSelect, span } = strip(["a", "b"]);
    const target = span(0);
    view.destroy();
    document.body.appendChild(view.element);
    fire(target, "pointerdown");
    fire(window, "pointerup");
    expect(onSelect).not.toHaveBeenCalled();
  });
});

describe("line view labels", () => {
  it("keep quiet marks and cut long labels with an ellipsis", () => {
    const pieces = tokenPieces({ text: " internationalization", kind: "text" });
    expect(truncatePieces(pieces, 16)).toEqual([
      { text: "␣", quiet: true },
      { text: "internationali", quiet: false },
      { text: "…", quiet: false },
    ]);
    expect(truncatePieces(tokenPieces({ text: "这是一", kind: "text" }), 16)).toEqual([{ text: "这是一", quiet: false }]);
  });
});
