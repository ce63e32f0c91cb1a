// @vitest-environment jsdom
import { deflateSync } from "node:zlib";
import { beforeAll, describe, expect, it, vi } from "vitest";
import widget from "../src/attention";

type Handler = (...args: unknown[]) => void;

/** Just enough of an anywidget model: Backbone-style get/set/on/off plus message capture. */
class FakeModel {
  handlers = new Map<string, Set<Handler>>();
  sent: unknown[] = [];
  saves = 0;
  constructor(public state: Record<string, unknown>) {}
  get(key: string): unknown {
    return this.state[key];
  }
  set(key: string, value: unknown): void {
    this.state[key] = value;
    this.emit(`change:${key}`);
  }
  on(event: string, handler: Handler): void {
    if (!this.handlers.has(event)) this.handlers.set(event, new Set());
    this.handlers.get(event)!.add(handler);
  }
  off(event: string, handler: Handler): void {
    this.handlers.get(event)?.delete(handler);
  }
  emit(event: string, ...args: unknown[]): void {
    this.handlers.get(event)?.forEach((h) => h(...args));
  }
  save_changes(): void {
    this.saves += 1;
  }
  send(content: unknown): void {
    if ((content as { type?: string }).type === "figure_view") return; // figure export's view reports (lib/figures.ts)
    this.sent.push(content);
  }
  listenerCount(): number {
    return [...this.handlers.values()].reduce((n, s) => n + s.size, 0);
  }
}

const TOKENS = ["<bos>", "▁The", "<img src=x onerror=alert(1)>", "▁are"];

function summaries(): Record<string, unknown> {
  const view = new DataView(new Float32Array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]).buffer);
  return Object.fromEntries(
    ["entropy", "previous_token", "first_token", "induction"].map((k) => [k, { view, dtype: "float32", shape: [3, 2] }]),
  );
}

function model(extra: Record<string, unknown> = {}): FakeModel {
  return new FakeModel({
    tokens: TOKENS,
    n_layers: 3,
    n_heads: 2,
    head_summaries: summaries(),
    selected_layer: -1,
    selected_heads: [],
    selected_tokens: [],
    hovered_token: -1,
    metric: "entropy",
    pattern_mode: "average",
    flow_direction: "from",
    ...extra,
  });
}

async function mount(m: FakeModel) {
  const el = document.createElement("div");
  document.body.appendChild(el);
  const cleanup = (await widget.render({ model: m, el } as never)) as () => void;
  return { el, cleanup, q: (id: string) => el.querySelector(`[data-testid="${id}"]`) as HTMLElement | null };
}

beforeAll(() => {
  // jsdom has no canvas 2D context; views skip drawing without one
  vi.spyOn(HTMLCanvasElement.prototype, "getContext").mockReturnValue(null);
});

describe("attention widget render", () => {
  it("renders the documented test ids, tokens as text", async () => {
    const { el, q, cleanup } = await mount(model());
    for (const id of ["attention-widget", "metric-select", "pattern-mode", "flow-direction", "token-strip", "head-grid", "layer-label-2", "pattern-view", "line-view", "grid-caption"]) {
      expect(q(id), id).not.toBeNull();
    }
    expect(el.querySelector("img")).toBeNull();
    expect(q("token-2")!.textContent).toBe(TOKENS[2].replaceAll(" ", "␣"));
    expect(q("head-grid")!.dataset.cellSize).toBeDefined();
    expect(q("grid-caption")!.textContent).toBe("head summary: entropy");
    cleanup();
  });

  it("asks the kernel for selected patterns it lacks, decodes pushed ones, and selects via clicks", async () => {
    const m = model({ selected_layer: 1, selected_heads: [0] });
    const { q, cleanup } = await mount(m);
    expect(m.sent).toEqual([
      { type: "request_view", request_id: 1, layer: 1, heads: [0], rows: [0, 4], cols: [0, 4], shape: [4, 4], combine: "mean", reduce: "max" },
      { type: "request_patterns", layer: 1, heads: [0] },
    ]);
    const n = TOKENS.length;
    const packed = new Uint8Array((n * (n + 1)) / 2).fill(255);
    const scale = new Float32Array(n).fill(0.5);
    const meta = { type: "pattern", layer: 1, head: 0, n_tokens: n, layout: "lower", encoding: "deflate" };
    m.emit("msg:custom", meta, [new DataView(scale.buffer), new DataView(new Uint8Array(deflateSync(packed)).buffer)]);
    await vi.waitFor(() => expect(q("attention-widget")!.dataset.patternsLoaded).toBe("1"));
    await vi.waitFor(() => expect(q("pattern-matrix")?.dataset.heads).toBe("0")); // next frame
    q("layer-label-2")!.click();
    expect([m.state.selected_layer, m.state.selected_heads]).toEqual([2, [0, 1]]);
    expect(m.saves).toBe(1);
    cleanup();
  });

  it("a layer that arrives without heads shows all of them; layer-then-heads is left alone", async () => {
    vi.useFakeTimers();
    const m = model();
    const { cleanup } = await mount(m);
    m.set("selected_layer", 2); // e.g. a linked probe widget
    expect(m.state.selected_heads).toEqual([]);
    vi.advanceTimersByTime(200);
    expect([m.state.selected_layer, m.state.selected_heads]).toEqual([2, [0, 1]]);
    m.set("selected_heads", []);
    m.set("selected_layer", 1); // Python: layer, then heads, in one cell
    m.set("selected_heads", [1]);
    vi.advanceTimersByTime(200);
    expect([m.state.selected_layer, m.state.selected_heads]).toEqual([1, [1]]);
    cleanup();
    vi.useRealTimers();
  });

  it("hover is applied at once and written to Python debounced", async () => {
    vi.useFakeTimers();
    const m = model();
    const { q, cleanup } = await mount(m);
    for (const i of [0, 1, 3]) q(`token-${i}`)!.dispatchEvent(new MouseEvent("pointerover", { bubbles: true }));
    expect(m.state.hovered_token).toBe(3);
    expect(q("token-3")!.classList.contains("llmw-token--hovered")).toBe(true);
    expect(m.saves).toBe(0);
    vi.advanceTimersByTime(200); // one animation frame redraws the grid; the write is debounced
    expect(q("grid-caption")!.textContent).toBe("attention from token 3");
    expect(m.saves).toBe(1);
    cleanup();
    vi.useRealTimers();
  });

  it("cleanup removes every model listener and the DOM", async () => {
    const m = model();
    const { el, cleanup } = await mount(m);
    expect(m.listenerCount()).toBeGreaterThan(0);
    cleanup();
    expect(m.listenerCount()).toBe(0);
    expect(el.children.length).toBe(0);
  });
});
