// Geometry of the probe-by-layer plot (pure functions, no DOM): scales, paths, the layer under
// the pointer, and the mapping between probe points and the shared selected_layer.
// Python half of the mapping: llmasos_widgets/widgets/probe.py (residual_to_selected_layer).

/** Series colors; the same as SERIES_COLORS in llmasos_widgets/probing/_html.py. */
export const SERIES_STYLE: Record<string, { color: string; label: string }> = {
  test_accuracy: { color: "#1f77b4", label: "test accuracy" },
  train_accuracy: { color: "#9ecae1", label: "train accuracy" },
  control_accuracy: { color: "#ff7f0e", label: "control accuracy" },
  selectivity: { color: "#2ca02c", label: "selectivity" },
};
export const BASELINE_COLOR = "#7f7f7f";

export interface PlotBox {
  width: number;
  height: number;
  left: number;
  right: number;
  top: number;
  bottom: number;
}

export const DEFAULT_BOX: PlotBox = { width: 560, height: 300, left: 48, right: 16, top: 16, bottom: 40 };

/** Probe point j is the residual stream after j decoder layers; selected_layer counts decoder layers. */
export function residualToSelectedLayer(residual: number): number {
  return residual - 1;
}

export function selectedLayerToResidual(selectedLayer: number): number {
  return selectedLayer < 0 ? -1 : selectedLayer + 1;
}

/** Value range of the y axis: [0, 1] extended down to the lowest (possibly negative) value. */
export function yDomain(series: Iterable<ArrayLike<number>>): [number, number] {
  let low = 0;
  for (const values of series) {
    for (let i = 0; i < values.length; i++) {
      if (Number.isFinite(values[i]) && values[i] < low) low = values[i];
    }
  }
  return [Math.floor(low * 10) / 10, 1];
}

/** x pixel of each layer slot: layers are spaced evenly by index, whatever their numbers. */
export function xPositions(nLayers: number, box: PlotBox = DEFAULT_BOX): number[] {
  const inner = box.width - box.left - box.right;
  const step = inner / Math.max(nLayers, 1);
  return Array.from({ length: nLayers }, (_, i) => box.left + step * (i + 0.5));
}

export function yPixel(value: number, domain: [number, number], box: PlotBox = DEFAULT_BOX): number {
  const [lo, hi] = domain;
  const inner = box.height - box.top - box.bottom;
  return box.top + ((hi - value) / (hi - lo)) * inner;
}

/** SVG path through the finite points (a gap where a value is not finite). */
export function linePath(xs: readonly number[], values: ArrayLike<number>, domain: [number, number], box: PlotBox = DEFAULT_BOX): string {
  let d = "";
  let pen = false;
  for (let i = 0; i < xs.length; i++) {
    const v = values[i];
    if (!Number.isFinite(v)) {
      pen = false;
      continue;
    }
    d += `${pen ? "L" : "M"}${xs[i].toFixed(1)},${yPixel(v, domain, box).toFixed(1)}`;
    pen = true;
  }
  return d;
}

/** Index of the layer slot containing pixel x, or -1 outside the plot. */
export function slotAt(x: number, nLayers: number, box: PlotBox = DEFAULT_BOX): number {
  const inner = box.width - box.left - box.right;
  if (nLayers <= 0 || x < box.left || x >= box.left + inner) return -1;
  return Math.min(nLayers - 1, Math.floor(((x - box.left) / inner) * nLayers));
}

/** Evenly spaced y ticks at multiples of 0.1 / 0.2 / 0.25 within the domain. */
export function yTicks(domain: [number, number]): number[] {
  const span = domain[1] - domain[0];
  const step = span > 1.2 ? 0.25 : 0.2;
  const ticks: number[] = [];
  for (let v = Math.ceil(domain[0] / step) * step; v <= domain[1] + 1e-9; v += step) {
    ticks.push(Math.round(v * 100) / 100);
  }
  return ticks;
}
