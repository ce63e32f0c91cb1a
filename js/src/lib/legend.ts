// Color legend for every heatmap: a color bar with ticks,
// the quantity's label and units, and an optional note ("max over 16x16 blocks"). Styled
// inline so any widget can use it without importing a stylesheet. Colors come from
// lib/colors.ts: the same 256-entry tables the heatmaps paint with.
//
// DOM (stable for browser tests):
//   div.llmw-legend[data-testid="legend"][data-label][data-units][data-min][data-max][data-scale]
//     span[data-testid="legend-label"]   "<label> (<units>)"
//     canvas[data-testid="legend-bar"]    the color bar
//     div[data-testid="legend-ticks"] > span   tick texts, left to right
//     span[data-testid="legend-note"]    the note, when given

import { type ColorScale, getScale } from "./colors";

export interface LegendOptions {
  /** What the color shows, e.g. "attention weight". */
  label: string;
  /** Units of the values, e.g. "nats", "probability", "fraction of the row". */
  units: string;
  min: number;
  max: number;
  scale: "sequential" | "diverging";
  /** Said under the bar, e.g. "max over 16×16 blocks" or "estimated from 512 query rows". */
  note?: string;
  /** Color table painted by the heatmap; default viridis (sequential) / diverging. */
  colors?: ColorScale;
  /** How values map to the bar: "sqrt" when the heatmap colors by sqrt(value / max). */
  transform?: "linear" | "sqrt";
}

const BAR_WIDTH = 160;
const BAR_HEIGHT = 10;

/**
 * About `count` round tick values covering [min, max] (1, 2 or 5 times a power of ten),
 * always including the ends when they are round; a degenerate range gives one tick.
 */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [];
  if (max < min) [min, max] = [max, min];
  if (max === min) return [min];
  const raw = (max - min) / Math.max(1, count - 1);
  const power = 10 ** Math.floor(Math.log10(raw));
  // the round step whose tick count is nearest `count` (ties: the larger step)
  const ticksOf = (s: number): number => Math.floor(max / s + 1e-9) - Math.ceil(min / s - 1e-9) + 1;
  let step = 10 * power;
  for (const m of [5, 2, 1]) {
    const s = m * power;
    if (Math.abs(ticksOf(s) - count) < Math.abs(ticksOf(step) - count)) step = s;
  }
  const first = Math.ceil(min / step - 1e-9);
  const last = Math.floor(max / step + 1e-9);
  const ticks: number[] = [];
  for (let i = first; i <= last; i++) ticks.push(roundTo(i * step, step));
  return ticks;
}

function roundTo(v: number, step: number): number {
  const digits = Math.max(0, -Math.floor(Math.log10(step)) + 1);
  return Number(v.toFixed(Math.min(20, digits)));
}

/** Position of value v along the bar in [0, 1]. */
export function tickPosition(v: number, min: number, max: number, transform: "linear" | "sqrt" = "linear"): number {
  if (!(max > min)) return 0.5;
  const t = Math.min(1, Math.max(0, (v - min) / (max - min)));
  return transform === "sqrt" ? Math.sqrt(t) : t;
}

/** Short tick text: at most 3 significant digits, exponent for very small or large values. */
export function formatTick(v: number): string {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e4 || a < 1e-3) return v.toExponential(0);
  return String(Number(v.toPrecision(3)));
}

/** Build the legend and append it to `parent`; returns it (remove it to take it away). */
export function renderLegend(parent: HTMLElement, opts: LegendOptions): HTMLElement {
  const el = document.createElement("div");
  el.className = "llmw-legend";
  el.dataset.testid = "legend";
  el.style.cssText = "display:inline-flex;flex-direction:column;gap:2px;font:11px system-ui,sans-serif;color:#444;margin:4px 0";
  updateLegend(el, opts);
  parent.appendChild(el);
  return el;
}

/** Redraw a legend made by renderLegend with new options (same element, no reflow of parents). */
export function updateLegend(el: HTMLElement, opts: LegendOptions): void {
  const colors = opts.colors ?? getScale(opts.scale === "diverging" ? "diverging" : "viridis");
  const transform = opts.transform ?? "linear";
  // views update their legend on every hover: rebuild only when something shown changed
  const key = JSON.stringify([opts.label, opts.units, opts.min, opts.max, opts.scale, opts.note ?? "", colors.name, transform]);
  if (el.dataset.key === key) return;
  el.dataset.key = key;
  el.dataset.label = opts.label;
  el.dataset.units = opts.units;
  el.dataset.min = String(opts.min);
  el.dataset.max = String(opts.max);
  el.dataset.scale = opts.scale;

  const label = document.createElement("span");
  label.dataset.testid = "legend-label";
  label.textContent = opts.units ? `${opts.label} (${opts.units})` : opts.label;

  const bar = document.createElement("canvas");
  bar.dataset.testid = "legend-bar";
  bar.width = 256;
  bar.height = 1;
  bar.style.cssText = `width:${BAR_WIDTH}px;height:${BAR_HEIGHT}px;image-rendering:pixelated;border:1px solid #bbb`;
  const ctx = bar.getContext("2d");
  // jsdom's canvas stub has no pixel API: the bar stays blank there
  const image = ctx && typeof ctx.createImageData === "function" ? ctx.createImageData(256, 1) : null;
  if (ctx && image) {
    for (let i = 0; i < 256; i++) {
      image.data[i * 4] = colors.lut[i * 3];
      image.data[i * 4 + 1] = colors.lut[i * 3 + 1];
      image.data[i * 4 + 2] = colors.lut[i * 3 + 2];
      image.data[i * 4 + 3] = 255;
    }
    ctx.putImageData(image, 0, 0);
  }

  const ticks = document.createElement("div");
  ticks.dataset.testid = "legend-ticks";
  ticks.style.cssText = `position:relative;width:${BAR_WIDTH}px;height:13px`;
  for (const v of niceTicks(opts.min, opts.max, transform === "sqrt" ? 4 : 5)) {
    const tick = document.createElement("span");
    tick.textContent = formatTick(v);
    tick.dataset.value = String(v);
    const x = tickPosition(v, opts.min, opts.max, transform) * BAR_WIDTH;
    tick.style.cssText = `position:absolute;left:${x.toFixed(1)}px;transform:translateX(-50%);white-space:nowrap`;
    ticks.appendChild(tick);
  }

  const parts: HTMLElement[] = [label, bar, ticks];
  if (opts.note) {
    const note = document.createElement("span");
    note.dataset.testid = "legend-note";
    note.style.color = "#666";
    note.textContent = opts.note;
    parts.push(note);
  }
  el.replaceChildren(...parts);
}
