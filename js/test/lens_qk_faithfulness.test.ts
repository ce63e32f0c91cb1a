// @vitest-environment jsdom
// LogitLensWidget view (js/src/logit_lens.ts), the faithfulness panel (lib/faithfulness_view.ts)
// and the q·k panel (lib/qk_panel.ts) in jsdom: text-only tokens, row/column clicks write the
// shared selection, the panels show what the kernel sent and clean up their listeners.
import { beforeAll, describe, expect, it } from "vitest";
import lens, { layerToSite, siteToLayer } from "../src/logit_lens";
import { curvePoints, mountFaithfulness } from "../src/lib/faithfulness_view";
import { mountQkPanel, pairedOrder } from "../src/lib/qk_panel";

type Handler = (...args: unknown[]) => void;
class FakeModel {
  handlers = new Map<string, Set<Handler>>();
  sent: unknown[] = [];
  constructor(public state: Record<string, unknown>) {}
  get(key: string): any { return this.state[key]; }
  set(key: string, value: unknown): void { this.state[key] = value; this.handlers.get(`change:${key}`)?.forEach((h) => h()); }
  on(e: string, h: Handler): void { if (!this.handlers.has(e)) this.handlers.set(e, new Set()); this.handlers.get(e)!.add(h); }
  off(e: string, h: Handler): void { this.handlers.get(e)?.delete(h); }
  save_changes(): void {}
  send(content: unknown): void { this.sent.push(content); }
  count(): number { return [...this.handlers.values()].reduce((n, s) => n + s.size, 0); }
}
const payload = (values: number[], shape: number[]) => ({ view: new DataView(new Float32Array(values).buffer), dtype: "float32", shape });

beforeAll(() => {
  HTMLCanvasElement.prototype.getContext = (() => ({ createImageData: (w: number) => ({ data: new Uint8ClampedArray(w * 4) }), putImageData() {} })) as never;
});

describe("logit lens", () => {
  it("shows top tokens as text, maps rows to layers and columns to tokens", () => {
    const m = new FakeModel({
      tokens: ["<bos>", "the", "keys"], display_tokens: ["<bos>", "the", "keys"], token_kinds: ["special", "text", "text"],
      site_names: ["emb", "after L0", "after L1"], n_layers: 2, linked_tokens: -1,
      lens_tokens: [["a", "b", "<img src=x onerror=alert(1)>"], ["c", "d", "e"], ["f", "g", "are"]],
      lens_probs: payload([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9], [3, 3]),
      selected_layer: -1, selected_heads: [], selected_tokens: [], hovered_token: -1, metric: "",
    });
    const el = document.createElement("div");
    document.body.appendChild(el);
    const cleanup = lens.render({ model: m as never, el } as never) as () => void;
    const svg = el.querySelector('[data-testid="logit-lens"]')!;
    expect(svg.getAttribute("data-figure")).toBe("logit-lens");
    expect(el.querySelector("img")).toBeNull();
    expect(el.querySelector('[data-testid="lens-cell-0-2"] text')!.textContent).toBe("<img src…");
    expect(el.querySelector('[data-testid="lens-cell-2-1"]')!.getAttribute("data-prob")).toBe(String(Math.fround(0.8)));
    (el.querySelector('[data-testid="lens-row-2"]') as unknown as SVGElement).dispatchEvent(new MouseEvent("click", { bubbles: true }));
    expect(m.get("selected_layer")).toBe(1); // after L1 = layer 1
    expect(el.querySelector('[data-testid="lens-row-2"]')!.getAttribute("data-selected")).toBe("true");
    (el.querySelector('[data-testid="lens-col-1"]') as unknown as SVGElement).dispatchEvent(new MouseEvent("click", { bubbles: true }));
    expect(m.get("selected_tokens")).toEqual([1]);
    (el.querySelector('[data-testid="lens-row-0"]') as unknown as SVGElement).dispatchEvent(new MouseEvent("click", { bubbles: true }));
    expect(m.get("selected_layer")).toBe(-1); // emb = no layer
    expect(el.querySelector('[data-testid="legend"]')).not.toBeNull();
    cleanup();
    expect(m.count()).toBe(0);
    expect([siteToLayer(0), siteToLayer(3), layerToSite(2)]).toEqual([-1, 2, 3]);
  });
});

describe("faithfulness panel", () => {
  it("asks the kernel on click and shows the score, curves and comparison", () => {
    const m = new FakeModel({ faithfulness: {} });
    const { cleanups, on } = { cleanups: [] as (() => void)[], on: (e: string, h: () => void) => { m.on(e, h); cleanups.push(() => m.off(e, h)); } };
    const listen = (t: EventTarget, type: string, h: (e: Event) => void) => t.addEventListener(type, h);
    const panel = mountFaithfulness(m, on, listen);
    (panel.querySelector('[data-testid="faithfulness-button"]') as HTMLButtonElement).click();
    expect(m.sent).toEqual([{ type: "faithfulness" }]);
    expect(panel.querySelector("svg")).toBeNull();
    m.set("faithfulness", {
      status: "ready", method: "gradient", score: 0.4123, comprehensiveness: 0.5, sufficiency: 0.3246, baseline: "pad", note: "",
      line: "faithfulness (vs random order): occlusion 0.60 > gradient 0.41", curves: payload([3, 1, 0, 3, 2, 0, 0, 2, 3, 0, 1, 3], [4, 3]),
    });
    const score = panel.querySelector('[data-testid="faithfulness-score"]')!;
    expect(score.getAttribute("data-score")).toBe("0.4123");
    expect(score.textContent).toContain("faithfulness 0.41");
    expect(panel.querySelector('[data-figure="faithfulness"]')!.querySelectorAll("polyline").length).toBe(4);
    expect(panel.querySelector('[data-testid="faithfulness-comparison"]')!.textContent).toContain("occlusion 0.60 > gradient");
    m.set("faithfulness", {});
    expect(panel.querySelector("svg")).toBeNull();
    for (const c of cleanups) c();
    expect(m.count()).toBe(0);
    expect(curvePoints([0, 1], 0, 1).split(" ").length).toBe(2);
  });
});

describe("q·k panel", () => {
  it("groups rotary pairs and shows each head's score and the sum of its products", () => {
    expect(pairedOrder(6)).toEqual([0, 3, 1, 4, 2, 5]);
    const m = new FakeModel({ qk: {} });
    const panel = mountQkPanel(m, (e, h) => m.on(e, h));
    expect(panel.hidden).toBe(true);
    // one head, d = 4: rows q, k, q·k·scale
    m.set("qk", { layer: 1, query: 5, key: 2, heads: [3], kv_heads: [1], scores: [0.5], weights: [0.25], masked: false, values: payload([1, 2, 3, 4, 1, 1, 1, 1, 0.5, -0.25, 0.25, 0], [1, 3, 4]) });
    expect(panel.hidden).toBe(false);
    const head = panel.querySelector('[data-testid="qk-head-3"]')!;
    expect(Number(head.getAttribute("data-sum"))).toBeCloseTo(0.5, 6);
    expect(head.getAttribute("data-score")).toBe("0.5");
    expect(head.querySelector('[data-figure="qk-head-3"]')!.querySelectorAll("rect").length).toBe(1 + 3 * 4);
  });
});
