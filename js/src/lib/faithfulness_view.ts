// Faithfulness panel of the SaliencyWidget (kernel side: llmasos_widgets/widgets/_saliency_faithfulness.py).
// A "faithfulness" button asks the kernel to test the map shown: deletion and insertion curves
// of the map's order against random orders (SVG, exportable: data-figure="faithfulness"), the
// score, and a one-line comparison of every method on this input. All text is set as text.
//
// Stable DOM hooks for browser tests:
//   div[data-testid="faithfulness"]
//     button[data-testid="faithfulness-button"]
//     span[data-testid="faithfulness-status"]
//     span[data-testid="faithfulness-score"][data-score]     exact score as sent by Python
//     svg[data-testid="faithfulness-curves"][data-figure="faithfulness"]
//     div[data-testid="faithfulness-comparison"]

import { type TensorPayload, decodeTensor } from "./buffers";

/** The `faithfulness` trait of SaliencyWidget ({} until asked). */
export interface FaithfulnessTrait {
  status?: string;
  method?: string;
  score?: number | null;
  comprehensiveness?: number | null;
  sufficiency?: number | null;
  baseline?: string;
  note?: string;
  line?: string;
  curves?: TensorPayload;
}

interface FaithfulnessModel {
  get(name: "faithfulness"): FaithfulnessTrait;
  send(content: unknown): void;
}

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 260;
const HEIGHT = 130;
const PAD = { left: 34, right: 8, top: 8, bottom: 22 };
// deletion, deletion_random, insertion, insertion_random
const SERIES = [
  { name: "deletion (map order)", color: "#d62728", dash: "" },
  { name: "deletion (random)", color: "#d62728", dash: "4 3" },
  { name: "insertion (map order)", color: "#1f77b4", dash: "" },
  { name: "insertion (random)", color: "#1f77b4", dash: "4 3" },
];

function svgEl<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  return el;
}

/** Points "x,y ..." of one curve over k/n in [0, 1]. */
export function curvePoints(values: ArrayLike<number>, lo: number, hi: number): string {
  const n = values.length - 1;
  const span = hi > lo ? hi - lo : 1;
  const w = WIDTH - PAD.left - PAD.right;
  const h = HEIGHT - PAD.top - PAD.bottom;
  const points: string[] = [];
  for (let k = 0; k <= n; k++) {
    const x = PAD.left + (n > 0 ? k / n : 0) * w;
    const y = PAD.top + (1 - (values[k] - lo) / span) * h;
    points.push(`${x.toFixed(1)},${y.toFixed(1)}`);
  }
  return points.join(" ");
}

function formatScore(value: number | null | undefined): string {
  return value === null || value === undefined || !Number.isFinite(value) ? "n/a" : value.toFixed(2);
}

/** Draw the four curves of `payload` ([4, n + 1] float32) into a fresh SVG. */
function drawCurves(svg: SVGSVGElement, payload: TensorPayload): void {
  const tensor = decodeTensor(payload);
  const data = tensor.data as Float32Array;
  const steps = tensor.shape[1];
  const curves = SERIES.map((_, i) => data.subarray(i * steps, (i + 1) * steps));
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of data) {
    if (Number.isFinite(v)) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
  }
  const parts: SVGElement[] = [
    svgEl("rect", { x: 0, y: 0, width: WIDTH, height: HEIGHT, fill: "white" }),
    svgEl("line", { x1: PAD.left, y1: HEIGHT - PAD.bottom, x2: WIDTH - PAD.right, y2: HEIGHT - PAD.bottom, stroke: "#888" }),
    svgEl("line", { x1: PAD.left, y1: PAD.top, x2: PAD.left, y2: HEIGHT - PAD.bottom, stroke: "#888" }),
  ];
  const label = (x: number, y: number, text: string, anchor = "middle"): void => {
    const t = svgEl("text", { x, y, "font-size": 10, "text-anchor": anchor, fill: "#444" });
    t.textContent = text;
    parts.push(t);
  };
  label(PAD.left - 3, PAD.top + 8, formatScore(hi), "end");
  label(PAD.left - 3, HEIGHT - PAD.bottom, formatScore(lo), "end");
  label((PAD.left + WIDTH - PAD.right) / 2, HEIGHT - 6, "fraction of tokens replaced / restored");
  curves.forEach((values, i) => {
    const line = svgEl("polyline", {
      points: curvePoints(values, lo, hi),
      fill: "none",
      stroke: SERIES[i].color,
      "stroke-width": 1.6,
      "stroke-dasharray": SERIES[i].dash,
    });
    const title = svgEl("title", {});
    title.textContent = SERIES[i].name;
    line.appendChild(title);
    parts.push(line);
  });
  svg.replaceChildren(...parts);
}

/** Build the panel; `on` subscribes to trait changes through the view's listener scope. */
export function mountFaithfulness(
  model: FaithfulnessModel,
  on: (event: string, handler: () => void) => void,
  listen: (target: EventTarget, type: string, handler: (e: Event) => void) => void,
): HTMLElement {
  const panel = document.createElement("div");
  panel.className = "llmw-faithfulness";
  panel.dataset.testid = "faithfulness";
  panel.style.cssText = "margin:6px 0;font:12px system-ui,sans-serif;color:#333";
  const button = document.createElement("button");
  button.dataset.testid = "faithfulness-button";
  button.textContent = "faithfulness";
  button.title = "delete / insert the map's tokens in its order vs a random order (kernel)";
  const status = document.createElement("span");
  status.dataset.testid = "faithfulness-status";
  status.style.marginLeft = "6px";
  const score = document.createElement("span");
  score.dataset.testid = "faithfulness-score";
  score.style.marginLeft = "6px";
  const svg = svgEl("svg", { width: WIDTH, height: HEIGHT, viewBox: `0 0 ${WIDTH} ${HEIGHT}` });
  svg.dataset.testid = "faithfulness-curves";
  svg.dataset.figure = "faithfulness"; // exportable (lib/figures.ts)
  svg.style.display = "block";
  const legend = document.createElement("div");
  legend.style.color = "#666";
  legend.textContent = "red: deletion, blue: insertion; solid: the map's order, dashed: random order";
  const comparison = document.createElement("div");
  comparison.dataset.testid = "faithfulness-comparison";
  const header = document.createElement("div");
  header.append(button, status, score);
  panel.append(header);

  listen(button, "click", () => model.send({ type: "faithfulness" }));

  const paint = (): void => {
    const value = model.get("faithfulness") ?? {};
    status.textContent = value.status ?? "";
    const ready = value.status === "ready" && value.curves !== undefined;
    button.disabled = (value.status ?? "").startsWith("computing");
    if (!ready) {
      score.textContent = "";
      delete score.dataset.score;
      panel.replaceChildren(header);
      return;
    }
    score.dataset.score = String(value.score ?? "nan");
    score.textContent =
      `${(value.method ?? "").replace(/_/g, " ")}: faithfulness ${formatScore(value.score)} ` +
      `(comprehensiveness ${formatScore(value.comprehensiveness)}, sufficiency ${formatScore(value.sufficiency)}; ` +
      `baseline ${value.baseline ?? ""})${value.note ? ` · ${value.note}` : ""}`;
    drawCurves(svg, value.curves as TensorPayload);
    comparison.textContent = value.line ?? "";
    panel.replaceChildren(header, svg, legend, comparison);
  };
  paint();
  on("change:faithfulness", paint);
  return panel;
}
