// @vitest-environment jsdom
import { afterEach, describe, expect, it, vi } from "vitest";
import { getScale } from "../src/lib/colors";
import { TokenStrip, displayToken } from "../src/lib/token_strip";

const HOSTILE = "<img src=x onerror=alert(1)>";

function fire(target: Element | Window, type: string, init: MouseEventInit = {}): void {
  // jsdom has no PointerEvent; the strip only reads MouseEvent fields
  target.dispatchEvent(new MouseEvent(type, { bubbles: true, button: 0, ...init }));
}

describe("displayToken", () => {
  it("makes whitespace and word-boundary markers visible", () => {
    expect(displayToken("▁The").text).toBe("␣The");
    expect(displayToken("Ġkeys").text).toBe("␣keys");
    expect(displayToken("\n")).toEqual({ text: "⏎", special: false, whitespace: true });
    expect(displayToken("\t\u0001").text).toBe("⇥\u2401");
    expect(displayToken("").text).toBe("∅");
  });

  it("styles special tokens but not markup-looking text", () => {
    expect(displayToken("<bos>").special).toBe(true);
    expect(displayToken("<|eot_id|>").special).toBe(true);
    expect(displayToken("[CLS]").special).toBe(true);
    expect(displayToken(HOSTILE)).toEqual({ text: HOSTILE.replaceAll(" ", "␣"), special: false, whitespace: false });
  });
});

describe("TokenStrip", () => {
  afterEach(() => document.body.replaceChildren());

  function strip(tokens: string[]) {
    const onHover = vi.fn();
    const onSelect = vi.fn();
    const view = new TokenStrip(tokens, { onHover, onSelect });
    document.body.appendChild(view.element);
    const span = (i: number) => view.element.querySelector(`[data-testid="token-${i}"]`) as HTMLElement;
    return { view, onHover, onSelect, span };
  }

  it("renders hostile token strings as text, never as elements", () => {
    const { view, span } = strip(["<bos>", HOSTILE, "▁a"]);
    expect(view.element.querySelector("img")).toBeNull();
    expect(span(1).textContent).toBe(HOSTILE.replaceAll(" ", "␣"));
    expect(span(1).children.length).toBe(0);
    expect(span(0).classList.contains("llmw-token--special")).toBe(true);
    expect(span(1).title).toBe(`1: ${JSON.stringify(HOSTILE)}`);
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
