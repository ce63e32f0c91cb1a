// Small DOM helpers shared by the widget views (attention.ts, saliency.ts, probe.ts).

/** The part of an anywidget model a view subscribes to. */
interface Subscribable {
  on(event: string, handler: () => void): void;
  off(event: string, handler: () => void): void;
}

/** Listener bookkeeping for one rendered view: every `on`/`listen` registers its own removal
 * in `cleanups`, which the view's cleanup function runs. */
export function listenerScope(model: Subscribable): {
  cleanups: (() => void)[];
  on(event: string, handler: () => void): void;
  listen(target: EventTarget, type: string, handler: (e: Event) => void): void;
} {
  const cleanups: (() => void)[] = [];
  return {
    cleanups,
    on(event, handler) {
      model.on(event, handler);
      cleanups.push(() => model.off(event, handler));
    },
    listen(target, type, handler) {
      target.addEventListener(type, handler);
      cleanups.push(() => target.removeEventListener(type, handler));
    },
  };
}

/** A labelled `<select>` with a test id and optional `[value, text]` options. */
export function makeSelect(
  testid: string,
  label: string,
  options: [string, string][] = [],
): { wrap: HTMLLabelElement; select: HTMLSelectElement } {
  const wrap = document.createElement("label");
  wrap.className = "llmw-control";
  wrap.textContent = `${label} `;
  const select = document.createElement("select");
  select.dataset.testid = testid;
  for (const [value, text] of options) {
    const option = document.createElement("option");
    option.value = value;
    option.textContent = text;
    select.appendChild(option);
  }
  wrap.appendChild(select);
  return { wrap, select };
}

/** A saliency-style heatmap frame: row labels beside a scrolling canvas (styles in
 *  saliency_view.css). Shared by the saliency map and the generation matrix. */
export function heatmapFrame(testid: string, figure: string, cursor: string): {
  element: HTMLDivElement;
  labels: HTMLDivElement;
  canvas: HTMLCanvasElement;
} {
  const element = document.createElement("div");
  element.className = "llmw-saliency-heatmap";
  const labels = document.createElement("div");
  labels.className = "llmw-saliency-rows";
  const scroll = document.createElement("div");
  scroll.className = "llmw-saliency-scroll";
  const canvas = document.createElement("canvas");
  canvas.dataset.testid = testid;
  canvas.dataset.figure = figure; // exportable (lib/figures.ts)
  canvas.style.cursor = cursor;
  scroll.appendChild(canvas);
  element.append(labels, scroll);
  return { element, labels, canvas };
}
