// @vitest-environment jsdom
import { describe, expect, it } from "vitest";
import {
  type FigureRequestMessage,
  attachFigureExport,
  crc32,
  fileName,
  findFigures,
  pngSize,
  sanitizeName,
  standaloneSvg,
  withPhysicalSize,
} from "../src/lib/figures";

const SVG_NS = "http://www.w3.org/2000/svg";

/** A 3 × 2 PNG header (signature + IHDR + IEND), enough for the chunk surgery. */
function tinyPng(width: number, height: number): Uint8Array {
  const bytes = new Uint8Array(8 + 25 + 12);
  bytes.set([137, 80, 78, 71, 13, 10, 26, 10]);
  const view = new DataView(bytes.buffer);
  view.setUint32(8, 13);
  bytes.set([73, 72, 68, 82], 12); // IHDR
  view.setUint32(16, width);
  view.setUint32(20, height);
  bytes.set([8, 6, 0, 0, 0], 24);
  view.setUint32(29, crc32(bytes.subarray(12, 29)));
  view.setUint32(33, 0);
  bytes.set([73, 69, 78, 68], 37); // IEND
  view.setUint32(41, crc32(bytes.subarray(37, 41)));
  return bytes;
}

class FakeModel {
  sent: { content: Record<string, unknown>; buffers?: unknown[] }[] = [];
  handlers = new Set<(msg: FigureRequestMessage) => void>();
  send(content: object, _callbacks?: unknown, buffers?: unknown[]): void {
    this.sent.push({ content: content as Record<string, unknown>, buffers });
  }
  on(_event: string, cb: (msg: FigureRequestMessage) => void): void {
    this.handlers.add(cb);
  }
  off(_event: string, cb: (msg: FigureRequestMessage) => void): void {
    this.handlers.delete(cb);
  }
  emit(msg: FigureRequestMessage): void {
    for (const cb of this.handlers) cb(msg);
  }
}

const flush = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 0));

describe("figure names", () => {
  it("keeps shown canvases and svgs only, numbering repeated names in document order", () => {
    const root = document.createElement("div");
    root.innerHTML = `<canvas data-figure="pattern"></canvas><div data-figure="not-a-figure"></div>
      <canvas data-figure="pattern"></canvas><svg data-figure="probe plot"></svg><canvas data-figure="pattern"></canvas>
      <div hidden><canvas data-figure="not-shown"></canvas></div>`;
    const figures = findFigures(root);
    expect(figures.map((f) => [f.name, f.format])).toEqual([
      ["pattern", "png"],
      ["pattern-2", "png"],
      ["probe-plot", "svg"],
      ["pattern-3", "png"],
    ]);
  });

  it("makes file names safe and prefixes the widget", () => {
    expect(sanitizeName(" a/b\\..c ")).toBe("a-b-..c");
    expect(sanitizeName("<script>")).toBe("script");
    expect(fileName("attention", { name: "grid", format: "png" })).toBe("attention-grid.png");
    expect(fileName("", { name: "grid", format: "svg" })).toBe("grid.svg");
  });
});

describe("PNG chunks", () => {
  it("computes the standard CRC-32 (IEND's well-known CRC)", () => {
    expect(crc32(new TextEncoder().encode("IEND"))).toBe(0xae426082);
  });

  it("reads the size from IHDR and rejects non-PNG bytes", () => {
    expect(pngSize(tinyPng(300, 150))).toEqual({ width: 300, height: 150 });
    expect(() => pngSize(new TextEncoder().encode("<svg></svg> and more bytes here"))).toThrow(/not a PNG/);
  });

  it("inserts a valid pHYs chunk after IHDR", () => {
    const png = withPhysicalSize(tinyPng(3, 2), 192);
    expect(png.length).toBe(tinyPng(3, 2).length + 21);
    expect(pngSize(png)).toEqual({ width: 3, height: 2 });
    const view = new DataView(png.buffer);
    expect(new TextDecoder().decode(png.subarray(37, 41))).toBe("pHYs");
    expect(view.getUint32(41)).toBe(Math.round(192 / 0.0254)); // 7559 px per metre
    expect(png[49]).toBe(1);
    expect(view.getUint32(50)).toBe(crc32(png.subarray(37, 50)));
    expect(new TextDecoder().decode(png.subarray(58, 62))).toBe("IEND");
  });
});

describe("standalone SVG", () => {
  it("is a parseable SVG document with namespace, size, viewBox and inlined styles", () => {
    const svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("width", "120");
    svg.setAttribute("height", "80");
    const text = document.createElementNS(SVG_NS, "text");
    text.textContent = "a < b & c";
    text.setAttribute("fill", "#555");
    svg.appendChild(text);
    document.body.appendChild(svg);
    const out = standaloneSvg(svg);
    expect([out.width, out.height]).toEqual([120, 80]);
    const doc = new DOMParser().parseFromString(out.text, "image/svg+xml");
    expect(doc.getElementsByTagName("parsererror")).toHaveLength(0);
    const parsed = doc.documentElement;
    expect(parsed.namespaceURI).toBe(SVG_NS);
    expect(parsed.getAttribute("viewBox")).toBe("0 0 120 80");
    expect(parsed.querySelector("text")?.textContent).toBe("a < b & c");
    expect(parsed.querySelector("text")?.getAttribute("style")).toMatch(/font-family:[^;]*sans-serif/);
    svg.remove();
  });
});

describe("attachFigureExport", () => {
  it("adds one labelled button per figure after the root and follows DOM changes", async () => {
    const host = document.createElement("div");
    const root = document.createElement("div");
    root.dataset.testid = "probe-widget";
    host.appendChild(root);
    document.body.appendChild(host);
    const model = new FakeModel();
    const detach = attachFigureExport(root, model);
    const bar = host.querySelector('[data-testid="figure-bar"]') as HTMLElement;
    expect(bar.previousElementSibling).toBe(root);
    expect(bar.querySelectorAll("button")).toHaveLength(0);
    expect(model.sent[0].content).toMatchObject({ type: "figure_view", figures: [] });

    const svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("data-figure", "probe");
    svg.setAttribute("width", "40");
    svg.setAttribute("height", "30");
    const hidden = document.createElement("div");
    hidden.hidden = true;
    const later = document.createElement("canvas");
    later.dataset.figure = "later";
    hidden.appendChild(later);
    root.replaceChildren(svg, hidden); // views rebuild their DOM: the bar (outside the root) survives
    await flush();
    expect(Array.from(bar.querySelectorAll("button"), (b) => b.dataset.testid)).toEqual(["save-figure-probe"]);
    hidden.hidden = false; // a view shown later gets its button
    await flush();
    expect(Array.from(bar.querySelectorAll("button"), (b) => b.dataset.testid)).toEqual(["save-figure-probe", "save-figure-later"]);
    hidden.hidden = true;
    await flush();
    const button = bar.querySelector('[data-testid="save-figure-probe"]') as HTMLButtonElement;
    expect(button.getAttribute("aria-label")).toBe("Save figure probe as SVG");
    expect(button.title).toContain("probe-probe.svg");
    expect(model.sent.at(-1)?.content).toMatchObject({ type: "figure_view", figures: ["probe"], formats: ["svg"] });

    const viewId = bar.dataset.viewId;
    model.emit({ type: "figure_request", request_id: 7, view_id: "another-view", name: "probe" });
    model.emit({ type: "figure_request", request_id: 8, view_id: viewId, name: "missing" });
    model.emit({ type: "figure_request", request_id: 9, view_id: viewId, name: "probe" });
    await flush();
    const replies = model.sent.filter((m) => m.content.type !== "figure_view");
    expect(replies.map((m) => [m.content.type, m.content.request_id])).toEqual([
      ["figure_error", 8],
      ["figure", 9],
    ]);
    expect(replies[0].content.message).toContain("it has: probe");
    expect(replies[1].content).toMatchObject({ name: "probe", format: "svg", mime: "image/svg+xml", width: 40, height: 30 });
    const bytes = new Uint8Array(replies[1].buffers?.[0] as ArrayBuffer);
    expect(new TextDecoder().decode(bytes)).toMatch(/^<\?xml[^>]*>\n<svg[^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);

    detach();
    expect(host.querySelector('[data-testid="figure-bar"]')).toBeNull();
    expect(model.sent.at(-1)?.content).toMatchObject({ type: "figure_view", figures: null });
    expect(model.handlers.size).toBe(0);
    host.remove();
  });
});
