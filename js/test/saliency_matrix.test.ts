// @vitest-environment jsdom
// Saliency matrix of a generation (js/src/lib/saliency_matrix.ts) inside the SaliencyWidget
// view: one row per generated token at the active site, a row click or a click on a generated
// token sets generated_token, prompt tokens still retarget, and it is hidden without a generation.
import { beforeAll, describe, expect, it } from "vitest";
import { siteSlice } from "../src/lib/saliency_matrix";
import widget from "../src/saliency";
type Handler = (...args: unknown[]) => void;
class FakeModel {
  handlers = new Map<string, Set<Handler>>();
  constructor(public state: Record<string, unknown>) {}
  get(key: string): unknown { return this.state[key]; }
  set(key: string, value: unknown): void { this.state[key] = value; this.handlers.get(`change:${key}`)?.forEach((h) => h()); }
  on(e: string, h: Handler): void { if (!this.handlers.has(e)) this.handlers.set(e, new Set()); this.handlers.get(e)!.add(h); }
  off(e: string, h: Handler): void { this.handlers.get(e)?.delete(h); }
  save_changes(): void {}
  send(): void {}
  count(): number { return [...this.handlers.values()].reduce((n, s) => n + s.size, 0); }
}
beforeAll(() => {
  HTMLCanvasElement.prototype.getContext = (() => ({ setTransform() {}, clearRect() {}, save() {}, restore() {}, drawImage() {}, strokeRect() {}, setLineDash() {}, putImageData() {}, beginPath() {}, moveTo() {}, lineTo() {}, stroke() {} })) as never;
  (globalThis as any).ImageData = class { constructor(public data: unknown, public width: number, public height: number) {} };
});
const TOKENS = ["<bos>", "a", "b", "a", "b"];
// 2 generated tokens x 2 sites x 5 tokens
const MATRIX = new Float32Array([...[0, 1, 2, 3, 0], ...[9, 9, 9, 9, 0], ...[0, 1, 2, 3, 4], ...[8, 8, 8, 8, 8]]);
function model(generation: boolean) {
  const scores = new Float32Array(10);
  return new FakeModel({
    tokens: TOKENS, sites: [0, 1], scores: { view: new DataView(scores.buffer), dtype: "float32", shape: [2, 5] },
    convergence_delta: { view: new DataView(new Float32Array([NaN, NaN]).buffer), dtype: "float32", shape: [2] },
    signed: false, method: "gradient", baseline: "zero", n_steps: 50, target_position: 3,
    method_options: ["gradient"], baseline_options: ["zero"], uses_baseline: false,
    target: "log p('b') after token 3", target_probability: 0.5, status: "ready", progress: 1,
    selected_layer: -1, selected_heads: [], selected_tokens: [], hovered_token: -1, metric: "", faithfulness: {},
    generated_scores: generation ? { view: new DataView(MATRIX.buffer), dtype: "float32", shape: [2, 2, 5] } : {},
    generated_token: generation ? 4 : -1, prompt_length: generation ? 3 : -1,
    token_probabilities: generation ? [-1, 0.1, 0.2, 0.9, 0.8] : [],
  });
}
const click = (el: Element): void => {
  el.dispatchEvent(new MouseEvent("pointerdown", { bubbles: true, button: 0 }));
  window.dispatchEvent(new MouseEvent("pointerup", { bubbles: true }));
};
describe("saliency matrix", () => {
  it("slices one site out of [generated, site, token]", () => {
    expect([...siteSlice(MATRIX, [2, 2, 5], 1)]).toEqual([9, 9, 9, 9, 0, 8, 8, 8, 8, 8]);
  });
  it("shows one row per generated token and picks rows by click", () => {
    const m = model(true); const el = document.createElement("div"); document.body.appendChild(el);
    const cleanup = widget.render({ model: m as never, el } as never) as () => void;
    const view = el.querySelector('[data-testid="saliency-matrix-view"]') as HTMLElement;
    const canvas = el.querySelector('canvas[data-figure="saliency-matrix"]') as HTMLCanvasElement;
    expect(view.hidden).toBe(false);
    expect(canvas.dataset.rows).toBe("2"); expect(canvas.dataset.cols).toBe("5"); expect(canvas.dataset.site).toBe("0");
    expect(el.querySelector('[data-testid="matrix-row-4"]')!.getAttribute("data-selected")).toBe("true");
    expect(el.querySelector('[data-testid="matrix-row-4"]')!.textContent).toBe("b"); // the token, as text
    (el.querySelector('[data-testid="matrix-row-3"]') as HTMLElement).click();
    expect(m.get("generated_token")).toBe(3);
    expect(el.querySelector('[data-testid="matrix-row-3"]')!.getAttribute("data-selected")).toBe("true");
    click(el.querySelector('[data-testid="token-4"]')!); // a generated token: its row
    expect(m.get("generated_token")).toBe(4); expect(m.get("target_position")).toBe(3);
    click(el.querySelector('[data-testid="token-1"]')!); // a prompt token: retarget as before
    expect(m.get("target_position")).toBe(1);
    m.set("selected_layer", 0);
    expect(canvas.dataset.site).toBe("1");
    cleanup();
    expect(m.count()).toBe(0);
  });
  it("is hidden without a generation", () => {
    const m = model(false); const el = document.createElement("div");
    const cleanup = widget.render({ model: m as never, el } as never) as () => void;
    expect((el.querySelector('[data-testid="saliency-matrix-view"]') as HTMLElement).hidden).toBe(true);
    cleanup();
  });
});
