// Figure export. Inside a widget root, every element marked
// `data-figure="<name>"` can be saved as a file:
//   canvas -> PNG: its displayed size × devicePixelRatio pixels, exactly the pixels on screen
//                  (setupCanvas in heatmap.ts sizes widget canvases so; a canvas drawn at data
//                  resolution and enlarged by CSS is enlarged the same way, without smoothing),
//                  with a pHYs chunk saying 96·DPR dots per inch so it prints at on-screen size.
//                  Legends, axis labels and token labels drawn as separate DOM elements are NOT
//                  part of the PNG: a legend that is a canvas/svg carries its own data-figure and
//                  is saved as its own file (a paper composes the panels; nothing is re-drawn).
//   svg    -> SVG: a standalone document: a deep clone with the computed presentation styles
//                  inlined on every element (fill, stroke, fonts, ...), width/height in CSS
//                  pixels and a viewBox, so it renders the same outside the page. Fonts are
//                  named (the computed font-family, with a generic fallback), not embedded.
// Names are unique per root: a second element named "pattern" is "pattern-2", and so on in
// document order. An element inside a `hidden` one (a view not shown now) is no figure.
//
// UI: one small bar after the root (`div.llmw-figure-bar[data-testid="figure-bar"]`) with a
// button per figure (`button[data-testid="save-figure-<name>"]`, aria-label "Save figure
// <name> as PNG|SVG") downloading `<widget>-<name>.png|svg`. The bar lives outside the root so
// views may rebuild their DOM freely; a MutationObserver keeps it in step.
//
// Kernel protocol (Python half: llmasos_widgets/widgets/_figures.py):
//   browser → kernel  {type: "figure_view", view_id, figures: [names], formats: ["png"|"svg"]}
//                                                            on render and when the figures change
//                     {type: "figure_view", view_id, figures: null}       when the view is removed
//                     {type: "figure", request_id, view_id, name, format, mime, width, height} [bytes]
//                     {type: "figure_error", request_id, view_id, message}
//   kernel → browser  {type: "figure_request", request_id, view_id, name, format?}

export type FigureFormat = "png" | "svg";

export interface Figure {
  name: string;
  element: HTMLCanvasElement | SVGSVGElement;
  format: FigureFormat;
}

export interface FigureFile {
  name: string;
  format: FigureFormat;
  mime: string;
  bytes: Uint8Array;
  /** Pixel size for PNG (backing store), CSS pixel size for SVG. */
  width: number;
  height: number;
}

/** The part of an anywidget model figure export uses (absent in the HTML report). */
export interface FigureModel {
  send(content: object, callbacks?: unknown, buffers?: ArrayBuffer[] | ArrayBufferView[]): void;
  on(event: string, callback: (msg: FigureRequestMessage) => void): void;
  off(event: string, callback: (msg: FigureRequestMessage) => void): void;
}

export interface FigureExportOptions {
  /** File name prefix; default: the root's data-testid without "-widget" (e.g. "attention"). */
  widget?: string;
  /** Where the button bar goes: after the root (default) or inside it, at its end. */
  placement?: "after" | "inside";
}

const CSS_DPI = 96;

/** Every exportable element under `root`, with unique names in document order. */
export function findFigures(root: ParentNode): Figure[] {
  const counts = new Map<string, number>();
  const out: Figure[] = [];
  for (const element of Array.from(root.querySelectorAll<HTMLElement | SVGElement>("[data-figure]"))) {
    const isCanvas = element.tagName.toLowerCase() === "canvas";
    const isSvg = element.tagName.toLowerCase() === "svg";
    if (!isCanvas && !isSvg) continue; // only canvases and svgs are figures
    if (element.closest("[hidden]")) continue; // a view not shown now (e.g. no generation) has no figure
    const base = sanitizeName(element.getAttribute("data-figure") ?? "") || "figure";
    const seen = (counts.get(base) ?? 0) + 1;
    counts.set(base, seen);
    out.push({
      name: seen === 1 ? base : `${base}-${seen}`,
      element: element as HTMLCanvasElement | SVGSVGElement,
      format: isCanvas ? "png" : "svg",
    });
  }
  return out;
}

/** File-name safe: letters, digits, dot, dash, underscore. */
export function sanitizeName(name: string): string {
  return name.trim().replace(/[^A-Za-z0-9._-]+/g, "-").replace(/^-+|-+$/g, "");
}

export function fileName(widget: string, figure: Pick<Figure, "name" | "format">): string {
  const prefix = sanitizeName(widget);
  return `${prefix ? `${prefix}-` : ""}${figure.name}.${figure.format}`;
}

// --- PNG ----------------------------------------------------------------------------------

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** Width and height from a PNG's IHDR; throws if `bytes` is not a PNG. */
export function pngSize(bytes: Uint8Array): { width: number; height: number } {
  const signature = [137, 80, 78, 71, 13, 10, 26, 10];
  if (bytes.length < 24 || signature.some((b, i) => bytes[i] !== b)) throw new Error("not a PNG file");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { width: view.getUint32(16), height: view.getUint32(20) };
}

/** `png` with a pHYs chunk (pixels per metre for `dpi`) inserted after IHDR; replaces none. */
export function withPhysicalSize(png: Uint8Array, dpi: number): Uint8Array {
  pngSize(png);
  const ihdrEnd = 8 + 4 + 4 + 13 + 4;
  const perMetre = Math.round(dpi / 0.0254);
  const chunk = new Uint8Array(4 + 4 + 9 + 4);
  const view = new DataView(chunk.buffer);
  view.setUint32(0, 9);
  chunk.set([0x70, 0x48, 0x59, 0x73], 4); // "pHYs"
  view.setUint32(8, perMetre);
  view.setUint32(12, perMetre);
  chunk[16] = 1; // unit: metre
  view.setUint32(17, crc32(chunk.subarray(4, 17)));
  const out = new Uint8Array(png.length + chunk.length);
  out.set(png.subarray(0, ihdrEnd), 0);
  out.set(chunk, ihdrEnd);
  out.set(png.subarray(ihdrEnd), ihdrEnd + chunk.length);
  return out;
}

/** The pixel size a canvas is exported at: its displayed size × devicePixelRatio, or its
 * backing store when it is not displayed. Widget canvases are drawn at exactly that size
 * (setupCanvas); one drawn at data resolution and scaled up by CSS (the HTML report's
 * patterns, one pixel per cell) is scaled up the same way, without smoothing. */
export function exportSize(canvas: HTMLCanvasElement): { width: number; height: number; ratio: number } {
  const ratio = globalThis.devicePixelRatio || 1;
  if (canvas.clientWidth <= 0 || canvas.clientHeight <= 0) return { width: canvas.width, height: canvas.height, ratio: 1 };
  const width = Math.round(canvas.clientWidth * ratio);
  const height = Math.round(canvas.clientHeight * ratio);
  // within a pixel of the backing store: that is the drawn size (rounding of fractional CSS sizes)
  if (Math.abs(width - canvas.width) <= 1 && Math.abs(height - canvas.height) <= 1) return { width: canvas.width, height: canvas.height, ratio };
  return { width, height, ratio };
}

async function canvasPng(canvas: HTMLCanvasElement): Promise<Uint8Array> {
  const size = exportSize(canvas);
  let source = canvas;
  if (size.width !== canvas.width || size.height !== canvas.height) {
    source = document.createElement("canvas");
    source.width = size.width;
    source.height = size.height;
    const ctx = source.getContext("2d");
    if (!ctx) throw new Error("no 2d context to scale the canvas for export");
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(canvas, 0, 0, size.width, size.height);
  }
  const blob = await new Promise<Blob | null>((resolve) => source.toBlob(resolve, "image/png"));
  if (!blob) throw new Error("the canvas could not be encoded as PNG (is it 0 × 0?)");
  return withPhysicalSize(new Uint8Array(await blob.arrayBuffer()), CSS_DPI * size.ratio);
}

// --- SVG ----------------------------------------------------------------------------------

/** Presentation properties copied from the computed style (what makes an SVG look right). */
const SVG_STYLE_PROPERTIES = [
  "fill",
  "fill-opacity",
  "stroke",
  "stroke-width",
  "stroke-opacity",
  "stroke-dasharray",
  "stroke-linecap",
  "stroke-linejoin",
  "opacity",
  "visibility",
  "display",
  "font-family",
  "font-size",
  "font-weight",
  "font-style",
  "text-anchor",
  "dominant-baseline",
];

function withFallbackFont(family: string): string {
  if (!family) return "sans-serif";
  return /\b(sans-serif|serif|monospace|system-ui)\b/.test(family) ? family : `${family}, sans-serif`;
}

/** A standalone SVG document for `svg`: computed styles inlined, explicit size and viewBox. */
export function standaloneSvg(svg: SVGSVGElement): { text: string; width: number; height: number } {
  const rect = svg.getBoundingClientRect();
  const width = Math.round(rect.width) || Number(svg.getAttribute("width")) || 0;
  const height = Math.round(rect.height) || Number(svg.getAttribute("height")) || 0;
  const clone = svg.cloneNode(true) as SVGSVGElement;
  const sources = [svg, ...Array.from(svg.querySelectorAll("*"))];
  const targets = [clone, ...Array.from(clone.querySelectorAll("*"))];
  const view = svg.ownerDocument.defaultView;
  sources.forEach((source, i) => {
    const target = targets[i] as SVGElement;
    const computed = view?.getComputedStyle(source);
    if (!computed) return;
    const declarations: string[] = [];
    for (const property of SVG_STYLE_PROPERTIES) {
      let value = computed.getPropertyValue(property);
      if (property === "font-family") value = withFallbackFont(value); // always named: a viewer's default font differs
      if (!value) continue;
      declarations.push(`${property}:${value}`);
    }
    target.setAttribute("style", declarations.join(";"));
  });
  clone.setAttribute("width", String(width));
  clone.setAttribute("height", String(height));
  if (!clone.getAttribute("viewBox")) clone.setAttribute("viewBox", `0 0 ${width} ${height}`);
  clone.style.cursor = "";
  let markup = new XMLSerializer().serializeToString(clone);
  // the serializer declares the namespace of an element made by createElementNS; be sure
  // (the element's own namespace: no URL literal in the bundle the standalone report inlines)
  if (!/^<svg[^>]*\sxmlns="/.test(markup)) markup = markup.replace(/^<svg/, `<svg xmlns="${svg.namespaceURI}"`);
  const text = `<?xml version="1.0" encoding="UTF-8"?>\n${markup}\n`;
  return { text, width, height };
}

/** Encode one figure as its file. */
export async function exportFigure(figure: Figure): Promise<FigureFile> {
  if (figure.format === "png") {
    const canvas = figure.element as HTMLCanvasElement;
    const bytes = await canvasPng(canvas);
    const { width, height } = pngSize(bytes);
    return { name: figure.name, format: "png", mime: "image/png", bytes, width, height };
  }
  const { text, width, height } = standaloneSvg(figure.element as SVGSVGElement);
  return { name: figure.name, format: "svg", mime: "image/svg+xml", bytes: new TextEncoder().encode(text), width, height };
}

function download(file: FigureFile, name: string): void {
  const blob = new Blob([file.bytes as BlobPart], { type: file.mime });
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  link.style.display = "none";
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

// --- the button bar and the kernel protocol -------------------------------------------------

let viewCounter = 0;

function widgetName(root: HTMLElement, options: FigureExportOptions): string {
  return options.widget ?? (root.dataset.testid ?? "figure").replace(/-widget$/, "");
}

export interface FigureRequestMessage {
  type?: string;
  request_id?: number;
  view_id?: string;
  name?: string;
  format?: string;
}

/**
 * Add save buttons for the figures under `root` and answer `figure_request` messages from
 * the kernel (when `model` is given). Returns a cleanup that removes the bar and listeners.
 */
export function attachFigureExport(root: HTMLElement, model?: FigureModel | null, options: FigureExportOptions = {}): () => void {
  const widget = widgetName(root, options);
  viewCounter += 1;
  const viewId = `${widget}-${Date.now().toString(36)}-${viewCounter}-${Math.random().toString(36).slice(2, 8)}`;
  const bar = document.createElement("div");
  bar.className = "llmw-figure-bar";
  bar.dataset.testid = "figure-bar";
  bar.dataset.viewId = viewId;
  bar.setAttribute("role", "toolbar");
  bar.setAttribute("aria-label", `Save ${widget} figures`);
  bar.style.cssText = "display:flex;flex-wrap:wrap;gap:4px;align-items:center;margin:4px 0;font:11px system-ui,sans-serif;color:#555";
  let reported = "";
  let disposed = false;

  const report = (figures: Figure[] | null): void => {
    if (!model) return;
    try {
      const names = figures?.map((f) => f.name) ?? null;
      model.send({ type: "figure_view", view_id: viewId, figures: names, formats: figures?.map((f) => f.format) ?? null });
    } catch {
      // the comm is gone (kernel restarted): nothing to tell
    }
  };

  const refresh = (): void => {
    if (disposed) return;
    const figures = findFigures(root);
    const names = figures.map((f) => `${f.name}.${f.format}`).join("|");
    if (names === bar.dataset.figures) return;
    bar.dataset.figures = names;
    const label = document.createElement("span");
    label.textContent = figures.length ? "save figure:" : "";
    const buttons = figures.map((figure) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "llmw-figure-save";
      button.dataset.testid = `save-figure-${figure.name}`;
      button.dataset.figureName = figure.name;
      const what = `Save figure ${figure.name} as ${figure.format.toUpperCase()}`;
      button.setAttribute("aria-label", what);
      button.title = `${what} (${fileName(widget, figure)})`;
      button.textContent = `⤓ ${figure.name}.${figure.format}`;
      button.style.cssText = "font:inherit;padding:1px 6px;cursor:pointer";
      button.addEventListener("click", () => {
        // look the element up again: the view may have rebuilt it since the bar was drawn
        const current = findFigures(root).find((f) => f.name === figure.name) ?? figure;
        exportFigure(current)
          .then((file) => download(file, fileName(widget, file)))
          .catch((err: unknown) => console.error("llmasos-widgets: figure export failed", err));
      });
      return button;
    });
    bar.replaceChildren(label, ...buttons);
    if (names !== reported) {
      reported = names;
      report(figures);
    }
  };

  let pending = false;
  const schedule = (): void => {
    if (pending) return;
    pending = true;
    queueMicrotask(() => {
      pending = false;
      refresh();
    });
  };
  const observer = new MutationObserver(schedule);
  observer.observe(root, { childList: true, subtree: true, attributes: true, attributeFilter: ["data-figure", "hidden"] });

  if ((options.placement ?? "after") === "after" && root.parentNode) root.after(bar);
  else root.appendChild(bar);
  reported = "\u0000"; // no name list looks like this: the first refresh reports, even "no figures"
  refresh();

  const onCustom = (msg: FigureRequestMessage): void => {
    if (msg?.type !== "figure_request" || msg.view_id !== viewId || !model) return;
    const figures = findFigures(root);
    const figure = figures.find((f) => f.name === msg.name);
    if (!figure) {
      const names = figures.map((f) => f.name).join(", ") || "none";
      model.send({ type: "figure_error", request_id: msg.request_id, view_id: viewId, message: `no figure named '${msg.name}' in this view (it has: ${names})` });
      return;
    }
    exportFigure(figure)
      .then((file) => {
        const { bytes, ...meta } = file;
        const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
        model.send({ type: "figure", request_id: msg.request_id, view_id: viewId, ...meta }, undefined, [buffer]);
      })
      .catch((err: unknown) => {
        model.send({ type: "figure_error", request_id: msg.request_id, view_id: viewId, message: String(err) });
      });
  };
  model?.on("msg:custom", onCustom);

  return () => {
    disposed = true;
    observer.disconnect();
    model?.off("msg:custom", onCustom);
    report(null);
    bar.remove();
  };
}
