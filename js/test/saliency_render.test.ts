// @vitest-environment jsdom
// SaliencyWidget view (js/src/saliency.ts) in jsdom: text-only tokens, retargeting on click,
// layer selection, method switch, progress, and a cleanup that removes every listener.
import { describe, expect, it, beforeAll } from "vitest";
import widget from "../src/saliency";
import { rowUnits, activeRow, siteLabel } from "../src/lib/saliency_scale";
type Handler = (...args: unknown[]) => void;
class FakeModel {
  handlers = new Map<string, Set<Handler>>();
  saves = 0;
  constructor(public state: Record<string, unknown>) {}
  get(key: string): unknown { return this.state[key]; }
  set(key: string, value: unknown): void { this.state[key] = value; this.handlers.get(`change:${key}`)?.forEach((h) => h()); }
  on(e: string, h: Handler): void { if (!this.handlers.has(e)) this.handlers.set(e, new Set()); this.handlers.get(e)!.add(h); }
  off(e: string, h: Handler): void { this.handlers.get(e)?.delete(h); }
  save_changes(): void { this.saves += 1; }
  send(): void {}
  count(): number { return [...this.handlers.values()].reduce((n, s) => n + s.size, 0); }
}
beforeAll(() => {
  HTMLCanvasElement.prototype.getContext = (() => ({ setTransform() {}, clearRect() {}, save() {}, restore() {}, drawImage() {}, strokeRect() {}, setLineDash() {}, putImageData() {}, beginPath() {}, moveTo() {}, lineTo() {}, stroke() {} })) as never;
  (globalThis as any).ImageData = class { constructor(public data: unknown, public width: number, public height: number) {} };
});
const TOKENS = ["<bos>", "the", "<img src=x onerror=alert(1)>", "are"];
function model() {
  const scores = new Float32Array([0, 1, -2, 0.5, 0, 0.1, 0.2, -0.3, 0, 0, 0, 3]);
  return new FakeModel({
    tokens: TOKENS, sites: [0, 1, 2], scores: { view: new DataView(scores.buffer), dtype: "float32", shape: [3, 4] },
    convergence_delta: { view: new DataView(new Float32Array([1e-6, 2e-6, 3e-6]).buffer), dtype: "float32", shape: [3] },
    signed: true, method: "integrated_gradients", baseline: "zero", n_steps: 50, target_position: 3,
    method_options: ["gradient", "integrated_gradients"], baseline_options: ["zero", "pad"], uses_baseline: true,
    target: "log p('is') after token 3", target_probability: 0.5, status: "ready", progress: 1,
    selected_layer: -1, selected_heads: [], selected_tokens: [], hovered_token: -1, metric: "",
  });
}
describe("saliency", () => {
  it("renders tokens as text, retargets on click, selects a layer and cleans up", () => {
    const m = model(); const el = document.createElement("div"); document.body.appendChild(el);
    const cleanup = widget.render({ model: m as never, el } as never) as () => void;
    expect(el.querySelector('[data-testid="target"]')!.textContent).toContain("p = 0.500");
    expect(el.querySelector("img")).toBeNull();
    expect(el.querySelector('[data-testid="token-2"]')!.textContent).toContain("<img");
    expect(el.querySelector('[data-testid="token-3"]')!.classList.contains("llmw-saliency-target")).toBe(true);
    const t1 = el.querySelector('[data-testid="token-1"]') as HTMLElement;
    expect(t1.style.backgroundColor).not.toBe("");
    t1.dispatchEvent(new MouseEvent("pointerdown", { bubbles: true, button: 0 }));
    window.dispatchEvent(new MouseEvent("pointerup", { bubbles: true }));
    expect(m.get("target_position")).toBe(1); expect(m.get("selected_tokens")).toEqual([1]);
    (el.querySelector('[data-testid="site-label-2"]') as HTMLElement).click();
    expect(m.get("selected_layer")).toBe(1);
    expect(el.querySelector('[data-testid="site-label-2"]')!.getAttribute("data-selected")).toBe("true");
    const sel = el.querySelector('[data-testid="method-select"]') as HTMLSelectElement;
    sel.value = "gradient"; sel.dispatchEvent(new Event("change"));
    expect(m.get("method")).toBe("gradient");
    m.set("status", "computing integrated gradients …"); m.set("progress", 0.4);
    expect((el.querySelector('[data-testid="progress"]') as HTMLProgressElement).value).toBeCloseTo(0.4);
    expect(el.querySelector('[data-testid="saliency-widget"]')!.getAttribute("data-status")).toBe("computing");
    cleanup();
    expect(m.count()).toBe(0); expect(el.children.length).toBe(0);
  });
  it("scales each row to its own largest magnitude and labels sites", () => {
    const u = rowUnits([1, -2, 0, 0], 2, 2);
    expect(Array.from(u)).toEqual([0.75, 0, 0.5, 0.5]);
    expect(activeRow([0, 1, 2], -1)).toBe(0); expect(activeRow([0, 1, 2], 1)).toBe(2); expect(activeRow([2], 0)).toBe(0);
    expect(siteLabel(0)).toBe("emb"); expect(siteLabel(1)).toBe("after L0");
  });
});
