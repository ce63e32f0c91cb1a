// SaliencyWidget front end (Python half: llmasos_widgets/widgets/saliency.py).
// Tokens colored by attribution (diverging scale, sign kept), a [site, token] heatmap on one
// canvas, the target with its probability, method/baseline dropdowns and a progress bar.
// A plain click on a token makes it the target position (Python recomputes); selection and
// hover are the shared traits, so linked widgets follow. Hover is applied in the browser at
// once and written to Python debounced.
//
// Stable DOM hooks for browser tests:
//   div.llmw-saliency[data-testid="saliency-widget"][data-status="ready|computing|error"]
//     select[data-testid="method-select"], select[data-testid="baseline-select"]
//     progress[data-testid="progress"], span[data-testid="status"]
//     div[data-testid="target"]                       target description and probability
//     div[data-testid="token-strip"] > span[data-testid="token-<i>"] (+ .llmw-saliency-target)
//     div[data-testid="site-label-<site>"][data-selected]   click: select that layer
//     canvas[data-testid="saliency-heatmap"][data-rows][data-cols][data-cell-width][data-cell-height]
//     div[data-testid="convergence-warning"][hidden]   integrated gradients did not converge
//     div[data-testid="caption"]                       scale and completeness note
//     input[data-testid="exclude-sinks"]               checkbox: exclude_sinks_from_scale
//   root data-sinks="0,...": attention sink positions marked in the strip (lib/sinks.ts)

import "./lib/saliency_view.css";
import type { RenderProps } from "@anywidget/types";
import { type TensorPayload, decodeTensor } from "./lib/buffers";
import { getScale } from "./lib/colors";
import { heatmapFrame, listenerScope, makeSelect } from "./lib/dom";
import { type FaithfulnessTrait, mountFaithfulness } from "./lib/faithfulness_view";
import { attachFigureExport } from "./lib/figures";
import { drawMatrix, setupCanvas } from "./lib/heatmap";
import { renderLegend, updateLegend } from "./lib/legend";
import { type SaliencyMatrixModel, mountSaliencyMatrix } from "./lib/saliency_matrix";
import { activeRow, formatScore, rowUnits, siteLabel, siteToSelectedLayer } from "./lib/saliency_scale";
import { type SelectionState, debounce } from "./lib/selection";
import { type SinksTrait, makeSinkToggle, saliencySinkNote, sinkNotes } from "./lib/sinks";
import { type MessageSpan, TokenStrip } from "./lib/token_strip";
import { type ShownToken, shownTokens, tokenLabel } from "./lib/token_text";

/** Traits of llmasos_widgets/widgets/saliency.py (SaliencyWidget), same names. */
export interface SaliencyModel extends SelectionState {
  tokens: string[];
  display_tokens: string[];
  token_kinds: string[];
  /** Set by link_selection (_base.py): leading tokens shared with linked widgets; -1 = not linked. */
  linked_tokens: number;
  sites: number[];
  scores: TensorPayload;
  convergence_delta: TensorPayload;
  signed: boolean;
  method: string;
  baseline: string;
  n_steps: number;
  target_position: number;
  method_options: string[];
  baseline_options: string[];
  uses_baseline: boolean;
  target: string;
  target_probability: number;
  convergence_warning: string;
  status: string;
  progress: number;
  /** attention sinks of the model on this text (lib/sinks.ts); {} when not known */
  attention_sinks?: SinksTrait;
  /** each row's scale over the tokens that are not sinks (sinks capped, never hidden) */
  exclude_sinks_from_scale?: boolean;
  /** Deletion/insertion test of the map shown ({} until asked): lib/faithfulness_view.ts. */
  faithfulness: FaithfulnessTrait;
  /** Generation (widgets/_generation_saliency.py, lib/saliency_matrix.ts): float32
   * [generated, site, token] ({} without one) and the generated token whose row is shown. */
  generated_scores: TensorPayload | Record<string, never>;
  generated_token: number;
  /** generation (widgets/_base.py): tokens[:prompt_length] are the prompt; -1 = no generated part */
  prompt_length: number;
  token_probabilities: number[];
  /** a chat's messages (widgets/_base.py message_spans); [] for plain text */
  message_spans?: MessageSpan[];
}

const HOVER_SAVE_MS = 120;
const CELL_HEIGHT = 16;
const MAX_CELL_WIDTH = 28;
const MIN_CELL_WIDTH = 4;
const MAX_HEATMAP_WIDTH = 900;


function setOptions(select: HTMLSelectElement, values: readonly string[], current: string): void {
  select.replaceChildren(
    ...values.map((value) => {
      const option = document.createElement("option");
      option.value = value;
      option.textContent = value.replace(/_/g, " ");
      return option;
    }),
  );
  select.value = current;
}

function statusKind(status: string): string {
  if (status.startsWith("error")) return "error";
  return status === "ready" ? "ready" : "computing";
}

function render({ model, el }: RenderProps<SaliencyModel>): () => void {
  const root = document.createElement("div");
  root.className = "llmw-saliency";
  root.dataset.testid = "saliency-widget";
  el.appendChild(root);
  const scale = getScale("diverging");
  const { cleanups, on, listen } = listenerScope(model);
  cleanups.push(attachFigureExport(root, model)); // save buttons for [data-figure] views

  // --- controls ---------------------------------------------------------------------------
  const controls = document.createElement("div");
  controls.className = "llmw-saliency-controls";
  const method = makeSelect("method-select", "method:");
  const baseline = makeSelect("baseline-select", "baseline:");
  const progress = document.createElement("progress");
  progress.dataset.testid = "progress";
  progress.max = 1;
  const status = document.createElement("span");
  status.className = "llmw-saliency-status";
  status.dataset.testid = "status";
  controls.append(method.wrap, baseline.wrap, progress, status);
  // attention sinks: out of each row's color scale (capped at the end colors), never hidden
  const sinkToggle = makeSinkToggle("exclude-sinks", "scale each row by its largest |score| over the tokens that are not attention sinks (exclude_sinks_from_scale)");
  controls.insertBefore(sinkToggle.wrap, progress);
  listen(sinkToggle.input, "change", () => {
    model.set("exclude_sinks_from_scale", sinkToggle.input.checked);
    model.save_changes();
  });
  const sinkPositions = (): number[] => model.get("attention_sinks")?.positions ?? [];
  const excludedSinks = (): number[] => (model.get("exclude_sinks_from_scale") ? sinkPositions() : []);
  listen(method.select, "change", () => {
    model.set("method", method.select.value);
    model.save_changes();
  });
  listen(baseline.select, "change", () => {
    model.set("baseline", baseline.select.value);
    model.save_changes();
  });

  const targetLine = document.createElement("div");
  targetLine.className = "llmw-saliency-target-line";
  targetLine.dataset.testid = "target";

  // --- heatmap ----------------------------------------------------------------------------
  const { element: heatmap, labels: rowLabels, canvas } = heatmapFrame("saliency-heatmap", "saliency", "crosshair");
  const caption = document.createElement("div");
  caption.className = "llmw-saliency-caption";
  caption.dataset.testid = "caption";
  // Python sets the message when a row's completeness error exceeds 5% of |f(x) - f(b)|.
  const warning = document.createElement("div");
  warning.className = "llmw-saliency-warning";
  warning.dataset.testid = "convergence-warning";
  warning.setAttribute("role", "alert");

  // "faithfulness" button, curves and method comparison (lib/faithfulness_view.ts)
  const faithfulness = mountFaithfulness(model, on, listen);

  const saveHover = debounce(() => model.save_changes(), HOVER_SAVE_MS);
  cleanups.push(() => saveHover.flush());
  const setHover = (t: number): void => {
    if (model.get("hovered_token") === t) return;
    model.set("hovered_token", t); // the change event repaints this view at once
    saveHover();
  };

  let strip: TokenStrip | undefined;
  let scores: Float32Array = new Float32Array(0);
  let units: Float32Array = new Float32Array(0);
  let deltas: Float32Array = new Float32Array(0);
  let labels: HTMLDivElement[] = [];
  let cellWidth = MAX_CELL_WIDTH;

  const sites = (): number[] => model.get("sites") ?? [];
  const nTokens = (): number => (model.get("tokens") ?? []).length;

  let shown: ShownToken[] = [];
  // color legend (lib/legend.ts): rows are scaled separately, so the scale is relative
  const legendHost = document.createElement("div");
  const legend = renderLegend(legendHost, { label: "attribution", units: "score / row's largest |score|", min: -1, max: 1, scale: "diverging", colors: scale });
  // saliency matrix of a generation (hidden otherwise): lib/saliency_matrix.ts
  const matrixView = mountSaliencyMatrix(model as unknown as SaliencyMatrixModel, listen, () => shown, scale);
  const buildStrip = (): void => {
    strip?.destroy();
    shown = shownTokens(model.get("tokens") ?? [], model.get("display_tokens"), model.get("token_kinds"));
    strip = new TokenStrip(shown, {
      onHover: setHover,
      onSelect: (selected) => {
        model.set("selected_tokens", selected);
        // A plain click (one token) retargets; a drag only brushes. A generated token
        // shows its row of the generation's saliency matrix.
        const promptLength = model.get("prompt_length") ?? -1;
        if (selected.length === 1 && promptLength >= 0 && selected[0] >= promptLength) {
          model.set("generated_token", selected[0]);
        } else if (selected.length === 1 && selected[0] !== model.get("target_position")) {
          model.set("target_position", selected[0]);
        }
        model.save_changes();
      },
    });
    strip.setLinkedTokens(model.get("linked_tokens") ?? -1);
    strip.setGeneration(model.get("prompt_length") ?? -1, model.get("token_probabilities"));
    strip.setMessages(model.get("message_spans"));
    matrixView.paint(); // its row labels are the strip's tokens
    root.replaceChildren(controls, targetLine, strip.element, heatmap, warning, legendHost, matrixView.element, caption, faithfulness);
  };

  const buildRows = (): void => {
    labels = sites().map((site) => {
      const label = document.createElement("div");
      label.className = "llmw-saliency-row-label";
      label.dataset.testid = `site-label-${site}`;
      label.dataset.site = String(site);
      label.style.height = `${CELL_HEIGHT}px`;
      label.style.lineHeight = `${CELL_HEIGHT}px`;
      label.textContent = siteLabel(site);
      label.title = site === 0 ? "input embeddings (what L0 receives)" : `residual stream after decoder layer L${site - 1}`;
      return label;
    });
    rowLabels.replaceChildren(...labels);
  };

  const decode = (): void => {
    const rows = sites().length;
    const cols = nTokens();
    const payload = model.get("scores");
    scores = payload ? (decodeTensor(payload).data as Float32Array) : new Float32Array(rows * cols);
    const deltaPayload = model.get("convergence_delta");
    deltas = deltaPayload ? (decodeTensor(deltaPayload).data as Float32Array) : new Float32Array(rows).fill(NaN);
    units = rowUnits(scores, rows, cols, excludedSinks());
  };

  const paintHeatmap = (): void => {
    const rows = sites().length;
    const cols = nTokens();
    cellWidth = Math.max(MIN_CELL_WIDTH, Math.min(MAX_CELL_WIDTH, Math.floor(MAX_HEATMAP_WIDTH / Math.max(cols, 1))));
    const width = cols * cellWidth;
    const height = rows * CELL_HEIGHT;
    canvas.dataset.rows = String(rows);
    canvas.dataset.cols = String(cols);
    canvas.dataset.cellWidth = String(cellWidth);
    canvas.dataset.cellHeight = String(CELL_HEIGHT);
    const ctx = setupCanvas(canvas, width, height);
    if (!ctx) return;
    ctx.clearRect(0, 0, width, height);
    drawMatrix(ctx, units, rows, cols, scale, { x: 0, y: 0, width, height });
    const outline = (x: number, y: number, w: number, h: number, color: string, dash: number[] = []): void => {
      ctx.save();
      ctx.strokeStyle = color;
      ctx.lineWidth = 2;
      ctx.setLineDash(dash);
      ctx.strokeRect(x + 1, y + 1, w - 2, h - 2);
      ctx.restore();
    };
    const row = activeRow(sites(), model.get("selected_layer"));
    outline(0, row * CELL_HEIGHT, width, CELL_HEIGHT, "rgba(255, 170, 0, 0.9)");
    outline(model.get("target_position") * cellWidth, 0, cellWidth, height, "#ff7f0e", [3, 2]);
    for (const t of model.get("selected_tokens") ?? []) outline(t * cellWidth, 0, cellWidth, height, "#d62728");
    const hovered = model.get("hovered_token");
    if (hovered >= 0) outline(hovered * cellWidth, 0, cellWidth, height, "#111");
  };

  const paintTokens = (): void => {
    if (!strip) return;
    const cols = nTokens();
    const row = activeRow(sites(), model.get("selected_layer"));
    strip.setValues(units.subarray(row * cols, (row + 1) * cols), scale);
    strip.setSelected(model.get("selected_tokens") ?? []);
    strip.setHovered(model.get("hovered_token"));
    const target = model.get("target_position");
    strip.element
      .querySelectorAll<HTMLElement>(".llmw-token")
      .forEach((span) => span.classList.toggle("llmw-saliency-target", Number(span.dataset.index) === target));
    labels.forEach((label, i) => (label.dataset.selected = String(i === row)));
  };

  const paintText = (): void => {
    const probability = model.get("target_probability");
    targetLine.textContent = `target: ${model.get("target")} · p = ${probability.toFixed(3)}`; // text only
    const row = activeRow(sites(), model.get("selected_layer"));
    const delta = deltas[row];
    const signedNote = model.get("signed") ? "blue lowers the target, red raises it" : "unsigned (gradient norm)";
    const completeness = Number.isFinite(delta) ? ` · completeness error of this row: ${formatScore(delta)}` : "";
    caption.textContent = `${model.get("method").replace(/_/g, " ")}: each row scaled by its largest |score|; ${signedNote}${completeness}`;
    updateLegend(legend, { label: `${model.get("method").replace(/_/g, " ")} attribution`, units: "score / row's largest |score|", min: -1, max: 1, scale: "diverging", colors: scale, note: signedNote + saliencySinkNote(sinkPositions(), model.get("exclude_sinks_from_scale") ?? false, nTokens()) });
  };

  const paintWarning = (): void => {
    const text = model.get("convergence_warning") ?? "";
    warning.textContent = text ? `⚠ ${text}` : ""; // text only
    warning.hidden = text === "";
  };

  const paintControls = (): void => {
    setOptions(method.select, model.get("method_options") ?? [], model.get("method"));
    setOptions(baseline.select, model.get("baseline_options") ?? [], model.get("baseline"));
    baseline.select.disabled = !model.get("uses_baseline");
  };

  const paintStatus = (): void => {
    const text = model.get("status");
    const kind = statusKind(text);
    status.textContent = text;
    status.dataset.state = kind;
    root.dataset.status = kind;
    progress.value = model.get("progress");
    progress.style.visibility = kind === "computing" ? "visible" : "hidden";
  };

  const repaint = (): void => {
    paintHeatmap();
    paintTokens();
    paintText();
  };

  const cellOf = (e: MouseEvent): [number, number] | null => {
    const rows = sites().length;
    const r = Math.floor(e.offsetY / CELL_HEIGHT);
    const c = Math.floor(e.offsetX / cellWidth);
    return r >= 0 && c >= 0 && r < rows && c < nTokens() ? [r, c] : null;
  };
  listen(canvas, "mousemove", (e) => {
    const cell = cellOf(e as MouseEvent);
    setHover(cell ? cell[1] : -1);
    if (cell) {
      const [r, c] = cell;
      canvas.title = `${siteLabel(sites()[r])} · token ${c} ${JSON.stringify(shown[c] ? tokenLabel(shown[c]) : "")}: ${formatScore(scores[r * nTokens() + c])}`;
    }
  });
  listen(canvas, "mouseleave", () => setHover(-1));
  const selectRow = (r: number): void => {
    model.set("selected_layer", siteToSelectedLayer(sites()[r]));
    model.save_changes();
  };
  listen(canvas, "click", (e) => {
    const cell = cellOf(e as MouseEvent);
    if (cell) selectRow(cell[0]);
  });
  listen(rowLabels, "click", (e) => {
    const label = (e.target as HTMLElement).closest?.(".llmw-saliency-row-label") as HTMLElement | null;
    if (label?.dataset.site !== undefined) selectRow(sites().indexOf(Number(label.dataset.site)));
  });

  const applySinks = (): void => {
    const notes = sinkNotes(model.get("attention_sinks"));
    sinkToggle.input.checked = model.get("exclude_sinks_from_scale") ?? false;
    root.dataset.sinks = [...notes.keys()].join(",");
    strip?.setSinks(notes);
  };
  buildStrip();
  applySinks();
  buildRows();
  decode();
  paintControls();
  paintStatus();
  paintWarning();
  repaint();

  for (const name of ["tokens", "display_tokens", "token_kinds"]) {
    on(`change:${name}`, () => {
      buildStrip();
      decode();
      repaint();
    });
  }
  on("change:sites", () => {
    buildRows();
    decode();
    repaint();
  });
  on("change:scores", () => {
    decode();
    repaint();
  });
  on("change:convergence_delta", () => {
    decode();
    paintText();
  });
  for (const name of ["selected_layer", "selected_tokens", "hovered_token", "target_position"]) on(`change:${name}`, repaint);
  for (const name of ["target", "target_probability", "signed"]) on(`change:${name}`, paintText);
  for (const name of ["method", "baseline", "method_options", "baseline_options", "uses_baseline"]) on(`change:${name}`, paintControls);
  on("change:convergence_warning", paintWarning);
  on("change:status", paintStatus);
  on("change:linked_tokens", () => strip?.setLinkedTokens(model.get("linked_tokens") ?? -1));
  on("change:progress", paintStatus);
  on("change:generated_scores", () => matrixView.update());
  for (const name of ["generated_token", "selected_layer", "sites"]) on(`change:${name}`, () => matrixView.paint());
  on("change:message_spans", () => strip?.setMessages(model.get("message_spans")));
  for (const name of ["prompt_length", "token_probabilities"]) {
    on(`change:${name}`, () => strip?.setGeneration(model.get("prompt_length") ?? -1, model.get("token_probabilities")));
  }

  // registered after the listeners that rebuild the strip: a rebuilt strip gets the marks too
  for (const name of ["tokens", "display_tokens", "token_kinds", "attention_sinks"]) on(`change:${name}`, applySinks);
  for (const name of ["attention_sinks", "exclude_sinks_from_scale"]) {
    on(`change:${name}`, () => {
      applySinks();
      decode();
      repaint();
    });
  }

  return () => {
    saveHover.flush();
    for (const cleanup of cleanups.splice(0)) cleanup();
    strip?.destroy();
    root.remove();
  };
}

export default { render };
