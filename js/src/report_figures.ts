// Figures of the standalone HTML report (Python half: llmasos_widgets/export/_report_figures.py, which
// inlines this bundle). Each canvas[data-report-matrix] carries its raw values (base64, row-major
// [rows, cols], float32 or uint8 meaning value/255) and is painted with the widgets' own code: the head grid as the
// attention widget colors it (normalize + viridis), the saliency map as the saliency widget does
// (rowUnits + diverging), a pattern as the pattern view does (attentionToUnit + viridis), each at
// devicePixelRatio through setupCanvas. Then every <figure> with a [data-figure] gets the same
// save buttons as the widgets (lib/figures.ts), files named report-<name>.png|svg.
//
// Hooks: canvas[data-report-matrix="grid|saliency|pattern"][data-rows][data-cols][data-width]
//        [data-height][data-dtype][data-values] (CSS size in px); body[data-report-figures="<n>"]
//        once painted.

import { attentionToUnit, getScale, normalize } from "./lib/colors";
import { attachFigureExport } from "./lib/figures";
import { drawMatrix, setupCanvas } from "./lib/heatmap";
import { rowUnits } from "./lib/saliency_scale";

function decodeValues(base64: string, dtype: string): Float32Array {
  const raw = atob(base64);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  if (dtype === "uint8") return Float32Array.from(bytes, (b) => b / 255);
  return new Float32Array(bytes.buffer, 0, Math.floor(bytes.length / 4));
}

function units(kind: string, values: Float32Array, rows: number, cols: number): Float32Array {
  if (kind === "saliency") return rowUnits(values, rows, cols);
  if (kind === "pattern") {
    let vmax = 0;
    for (const v of values) if (v > vmax) vmax = v;
    return values.map((v) => attentionToUnit(v, vmax || 1));
  }
  return normalize(values);
}

export function paintReportFigures(doc: Document): number {
  let painted = 0;
  for (const canvas of Array.from(doc.querySelectorAll<HTMLCanvasElement>("canvas[data-report-matrix]"))) {
    const kind = canvas.dataset.reportMatrix ?? "grid";
    const rows = Number(canvas.dataset.rows);
    const cols = Number(canvas.dataset.cols);
    const values = decodeValues(canvas.dataset.values ?? "", canvas.dataset.dtype ?? "float32");
    if (values.length !== rows * cols) continue; // malformed: leave it blank rather than guess
    const width = Number(canvas.dataset.width);
    const height = Number(canvas.dataset.height);
    const ctx = setupCanvas(canvas, width, height);
    if (!ctx) continue;
    const scale = getScale(kind === "saliency" ? "diverging" : "viridis");
    drawMatrix(ctx, units(kind, values, rows, cols), rows, cols, scale, { x: 0, y: 0, width, height });
    painted += 1;
  }
  const roots = new Set<HTMLElement>();
  for (const element of Array.from(doc.querySelectorAll<HTMLElement>("[data-figure]"))) {
    roots.add((element.closest("figure") as HTMLElement | null) ?? (element.parentElement as HTMLElement));
  }
  for (const root of roots) attachFigureExport(root, null, { widget: "report", placement: "inside" });
  doc.body.dataset.reportFigures = String(painted);
  return painted;
}

paintReportFigures(document);
