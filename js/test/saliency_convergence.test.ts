// @vitest-environment jsdom
// SaliencyWidget view (js/src/saliency.ts): the convergence warning of integrated gradients
// (Python trait convergence_warning) is shown next to the map as text, and hidden when empty.
import { beforeAll, describe, expect, it } from "vitest";
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
}
beforeAll(() => {
  HTMLCanvasElement.prototype.getContext = (() => ({ setTransform() {}, clearRect() {}, save() {}, restore() {}, drawImage() {}, strokeRect() {}, setLineDash() {}, putImageData() {}, beginPath() {}, moveTo() {}, lineTo() {}, stroke() {} })) as never;
  (globalThis as any).ImageData = class { constructor(public data: unknown, public width: number, public height: number) {} };
});
const MESSAGE = "integrated gradients did not converge at emb: <b>100%</b> … Try the 'pad' baseline";
function model(warning: string) {
  const scores = new Float32Array([0, 1, -2, 0.5, 0, 0.1]);
  return new FakeModel({
    tokens: ["<bos>", "the", "keys"], sites: [0, 1], scores: { view: new DataView(scores.buffer), dtype: "float32", shape: [2, 3] },
    convergence_delta: { view: new DataView(new Float32Array([0.9, 1e-6]).buffer), dtype: "float32", shape: [2] },
    signed: true, method: "integrated_gradients", baseline: "zero", n_steps: 50, target_position: 2,
    method_options: ["gradient", "integrated_gradients"], baseline_options: ["zero", "pad"], uses_baseline: true,
    target: "log p('are') after token 2", target_probability: 0.5, convergence_warning: warning, status: "ready", progress: 1,
    selected_layer: -1, selected_heads: [], selected_tokens: [], hovered_token: -1, metric: "",
  });
}
describe("saliency convergence warning", () => {
  it("shows the kernel's message as text beside the map and hides it once converged", () => {
    const m = model(MESSAGE); const el = document.createElement("div"); document.body.appendChild(el);
    const cleanup = widget.render({ model: m as never, el } as never) as () => void;
    const box = el.querySelector('[data-testid="convergence-warning"]') as HTMLElement;
    expect(box.hidden).toBe(false);
    expect(box.textContent).toContain(MESSAGE);
    expect(box.querySelector("b")).toBeNull(); // text, never markup
    // it sits right after the heatmap it qualifies
    expect(box.previousElementSibling?.classList.contains("llmw-saliency-heatmap")).toBe(true);
    m.set("convergence_warning", ""); // e.g. after switching to the pad baseline
    expect(box.hidden).toBe(true);
    expect(box.textContent).toBe("");
    m.set("convergence_warning", "again");
    expect(box.hidden).toBe(false);
    cleanup();
  });
  it("starts hidden when the result converged", () => {
    const m = model(""); const el = document.createElement("div");
    const cleanup = widget.render({ model: m as never, el } as never) as () => void;
    expect((el.querySelector('[data-testid="convergence-warning"]') as HTMLElement).hidden).toBe(true);
    cleanup();
  });
});
