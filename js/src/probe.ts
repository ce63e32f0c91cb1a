// ProbeWidget front end (Python half: llmasos_widgets/widgets/probe.py).
// One SVG plot: held-out probe accuracy, control-task accuracy and selectivity by layer, with
// the majority baseline dashed. Clicking a layer column sets selected_layer (synced to Python
// and, through link_selection, to linked widgets); a selected_layer set elsewhere highlights
// the column here.
//
// Stable DOM hooks for browser tests:
//   div.llmw-probe[data-testid="probe-widget"]
//     svg[data-testid="probe-plot"]
//       rect[data-testid="layer-<j>"][data-selected="true|false"]   click target of probe point j
//       path[data-testid="series-<name>"]                          one per series
//   root data-selected-residual="<j>" (-1 = none)

import type { RenderProps } from "@anywidget/types";
import { type TensorPayload, decodeTensor } from "./lib/buffers";
import { listenerScope } from "./lib/dom";
import { attachFigureExport } from "./lib/figures";
import { siteLabel } from "./lib/saliency_scale";
import {
  BASELINE_COLOR,
  DEFAULT_BOX,
  SERIES_STYLE,
  linePath,
  residualToSelectedLayer,
  selectedLayerToResidual,
  xPositions,
  yDomain,
  yPixel,
  yTicks,
} from "./lib/probe_plot";
import type { SelectionState } from "./lib/selection";

/** Traits of llmasos_widgets/widgets/probe.py (ProbeWidget), same names. */
export interface ProbeModel extends SelectionState {
  layers: number[];
  series: Record<string, TensorPayload>;
  majority_baseline: number;
  title: string;
}

const SVG_NS = "http://www.w3.org/2000/svg";
const DRAW_ORDER = ["train_accuracy", "control_accuracy", "selectivity", "test_accuracy"];

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  return node;
}

function render({ model, el }: RenderProps<ProbeModel>): () => void {
  const box = DEFAULT_BOX;
  const root = document.createElement("div");
  root.className = "llmw-probe";
  root.dataset.testid = "probe-widget";
  root.style.fontFamily = "var(--jp-ui-font-family, system-ui, sans-serif)";
  root.style.fontSize = "12px";
  el.appendChild(root);
  const { cleanups, on } = listenerScope(model);
  cleanups.push(attachFigureExport(root, model)); // save buttons for [data-figure] views
  const plotCleanups: (() => void)[] = []; // listeners of the current plot, replaced per build
  let columns: SVGRectElement[] = [];

  const highlight = (): void => {
    const residual = selectedLayerToResidual(model.get("selected_layer"));
    root.dataset.selectedResidual = String(model.get("layers").includes(residual) ? residual : -1);
    const layers = model.get("layers");
    columns.forEach((rect, i) => {
      const selected = layers[i] === residual;
      rect.dataset.selected = String(selected);
      rect.setAttribute("fill", selected ? "rgba(255, 200, 0, 0.25)" : "rgba(0, 0, 0, 0)");
    });
  };

  const build = (): void => {
    for (const cleanup of plotCleanups.splice(0)) cleanup();
    const layers = model.get("layers") ?? [];
    const series = new Map<string, Float32Array>();
    for (const [name, payload] of Object.entries(model.get("series") ?? {})) {
      series.set(name, decodeTensor(payload).data as Float32Array);
    }
    const baseline = model.get("majority_baseline");
    const domain = yDomain([...series.values(), [baseline]]);
    const xs = xPositions(layers.length, box);
    const slot = (box.width - box.left - box.right) / Math.max(layers.length, 1);

    const title = document.createElement("div");
    title.textContent = model.get("title"); // data, never markup
    title.style.fontWeight = "600";

    const plot = svg("svg", { width: box.width, height: box.height, role: "img" });
    plot.dataset.testid = "probe-plot";
    plot.dataset.figure = "probe"; // exportable (lib/figures.ts)
    plot.style.cursor = "pointer";

    columns = layers.map((layer, i) => {
      const rect = svg("rect", { x: xs[i] - slot / 2, y: box.top, width: slot, height: box.height - box.top - box.bottom });
      rect.dataset.testid = `layer-${layer}`;
      const tip = svg("title", {});
      const parts = [...series.entries()].map(([name, v]) => `${SERIES_STYLE[name]?.label ?? name}: ${v[i].toFixed(3)}`);
      tip.textContent = [`${siteLabel(layer)}${layer === 0 ? " (embeddings)" : ""}`, ...parts].join("\n");
      rect.appendChild(tip);
      const onClick = (): void => {
        model.set("selected_layer", residualToSelectedLayer(layer));
        model.save_changes();
      };
      rect.addEventListener("click", onClick);
      plotCleanups.push(() => rect.removeEventListener("click", onClick));
      plot.appendChild(rect);
      return rect;
    });

    for (const tick of yTicks(domain)) {
      const y = yPixel(tick, domain, box);
      plot.appendChild(svg("line", { x1: box.left, x2: box.width - box.right, y1: y, y2: y, stroke: tick === 0 ? "#888" : "#e5e5e5" }));
      const label = svg("text", { x: box.left - 6, y: y + 4, "text-anchor": "end", fill: "#555" });
      label.textContent = tick.toFixed(2);
      plot.appendChild(label);
    }
    layers.forEach((layer, i) => {
      const label = svg("text", { x: xs[i], y: box.height - box.bottom + 16, "text-anchor": "middle", fill: "#555" });
      label.textContent = siteLabel(layer); // same names as the saliency and attention widgets
      plot.appendChild(label);
    });
    const axis = svg("text", { x: (box.left + box.width - box.right) / 2, y: box.height - 6, "text-anchor": "middle", fill: "#555" });
    axis.textContent = "residual stream: embeddings (emb), then after decoder layer L0, L1, …";
    plot.appendChild(axis);

    const yBase = yPixel(baseline, domain, box);
    plot.appendChild(svg("line", { x1: box.left, x2: box.width - box.right, y1: yBase, y2: yBase, stroke: BASELINE_COLOR, "stroke-dasharray": "5 4" }));

    const emphasized = model.get("metric");
    for (const name of DRAW_ORDER) {
      const values = series.get(name);
      if (!values) continue;
      const color = SERIES_STYLE[name].color;
      const width = name === emphasized ? 3 : 1.5;
      const path = svg("path", { d: linePath(xs, values, domain, box), fill: "none", stroke: color, "stroke-width": width });
      path.dataset.testid = `series-${name}`;
      path.style.pointerEvents = "none";
      plot.appendChild(path);
      values.forEach((v, i) => {
        if (!Number.isFinite(v)) return;
        const dot = svg("circle", { cx: xs[i], cy: yPixel(v, domain, box), r: width + 1.5, fill: color });
        dot.style.pointerEvents = "none";
        plot.appendChild(dot);
      });
    }

    const legend = document.createElement("div");
    legend.style.display = "flex";
    legend.style.gap = "12px";
    const entries: [string, string][] = [...DRAW_ORDER.filter((n) => series.has(n)).map((n): [string, string] => [SERIES_STYLE[n].label, SERIES_STYLE[n].color]), ["majority baseline", BASELINE_COLOR]];
    for (const [label, color] of entries) {
      const item = document.createElement("span");
      const swatch = document.createElement("span");
      swatch.style.cssText = `display:inline-block;width:12px;height:3px;margin-right:4px;vertical-align:middle;background:${color}`;
      item.append(swatch, document.createTextNode(label));
      legend.appendChild(item);
    }
    root.replaceChildren(title, plot, legend);
    highlight();
  };

  build();
  on("change:selected_layer", highlight);
  on("change:metric", build);
  on("change:series", build);
  on("change:layers", build);

  return () => {
    for (const cleanup of [...plotCleanups.splice(0), ...cleanups.splice(0)]) cleanup();
    root.remove();
  };
}

export default { render };
