// @vitest-environment jsdom
import { describe, expect, it } from "vitest";
import { cssColor, getScale } from "../src/lib/colors";
import { shadeChip, tokenChip } from "../src/lib/token_chip";

const HOSTILE = "<img src=x onerror=alert(1)>";

describe("token chip", () => {
  it("writes the token as text, never as HTML", () => {
    const chip = tokenChip({ text: HOSTILE, kind: "text" });
    expect(chip.querySelector("img")).toBeNull();
    expect(chip.textContent).toBe(HOSTILE.replaceAll(" ", "␣"));
  });

  it("shows a space as its quiet mark", () => {
    expect(tokenChip({ text: " a", kind: "text" }).textContent).toBe("␣a");
  });

  it("is transparent at shade 0 and filled from the scale with white text past 0.6", () => {
    const blues = getScale("blues");
    const plain = tokenChip({ text: "a", kind: "text" });
    expect(plain.style.background).toBe("transparent");
    expect(plain.style.color).toBe("inherit");
    const dark = tokenChip({ text: "a", kind: "text" }, 0.9);
    const expected = document.createElement("span");
    expected.style.background = cssColor(blues, 0.9);
    expect(dark.style.background).toBe(expected.style.background);
    expect(dark.style.color).toBe("rgb(255, 255, 255)");
    shadeChip(dark, 0.3);
    expect(dark.style.color).toBe("inherit");
    shadeChip(dark, 0);
    expect(dark.style.background).toBe("transparent");
  });
});
