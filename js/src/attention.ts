// AttentionWidget front end (Python half: llmasos_widgets/widgets/attention.py).
// Views, linked through the shared selection traits: token strip, layer × head grid,
// pattern view (matrix + line view). High-rate interaction (hover, drag) is applied to every
// view at once in the browser; JS→Python writes of hovered_token are debounced.
//
// Stable DOM hooks for browser tests (see also lib/token_strip.ts, lib/grid_view.ts,
// lib/pattern_view.ts for the geometry data-* attributes):
//   div.llmw-attention[data-testid="attention-widget"]
//     select[data-testid="metric-select"]          options: entropy, previous_token, first_token,
//                                                  induction, brushed
//     select[data-testid="pattern-mode"]           average | side_by_side
//     select[data-testid="flow-direction"]         from | to
//     input[data-testid="exclude-sinks"]           checkbox: exclude_sinks_from_scale
//   root data-sinks="0,...": attention sink positions marked (lib/sinks.ts)
//     div[data-testid="grid-caption"]              what the grid colors by
//     div[data-testid="token-strip"] > span[data-testid="token-<i>"].llmw-token
//     div[data-testid="head-grid-view"] > div[data-testid="layer-label-<l>"], canvas[data-testid="head-grid"]
//     div[data-testid="pattern-view"] > canvas[data-testid="pattern-matrix"], canvas[data-testid="line-view"]
//   root data-patterns-loaded="<n>": number of head patterns decoded in this view (wait on it).
//
// Messages (JSON content + binary buffers; see attention.py for the Python side):
//   kernel → browser  {type: "pattern", layer, head, n_tokens, layout, encoding} [rowScale f32, levels u8]
//                     (only up to full_pattern_limit tokens)
//                     {type: "view", request_id, ...} [values f32, edges i32 ×2, argmax ×2] (lib/pattern_lod.ts)
//                     {type: "flow", request_id, n_layers, n_heads} [values f32 [layer, head]]
//   browser → kernel  {type: "request_patterns", layer, heads}   (on render: what is selected but missing)
//                     {type: "evicted", heads: [[layer, head], ...]}
//                     {type: "request_flow", request_id, focus, others, direction}
//                     {type: "request_view", request_id, layer, heads, rows, cols, shape, combine, reduce}
//                       the pattern view's visible region at its pixel resolution; also one exact
//                       row / column for the strip's hover colors above full_pattern_limit

import "./attention.css";
import type { AnyModel, RenderProps } from "@anywidget/types";
import { type PatternMessage, type TensorPayload, decodePatternMessage, decodeTensor } from "./lib/buffers";
import { type ColorScale, attentionToUnit, finiteDomain, getScale, normalize } from "./lib/colors";
import { listenerScope, makeSelect } from "./lib/dom";
import { GridView } from "./lib/grid_view";
import { BRUSHED_METRIC, type FlowQuery, flowKey, flowQuery, flowValues } from "./lib/head_values";
import { type FlowDirection, attentionFromTokens, attentionToTokens } from "./lib/pattern";
import { PatternStore, headKey } from "./lib/pattern_store";
import { type PatternMode, PatternView } from "./lib/pattern_view";
import { type SelectionState, clickHead, clickLayer, debounce, focusTokens } from "./lib/selection";
import { FLOW_RETRY_MS, FlowCache } from "./lib/flow_cache";
import { attachFigureExport } from "./lib/figures";
import { type MessageSpan, TokenStrip } from "./lib/token_strip";
import { shownTokens } from "./lib/token_text";
import { renderLegend, updateLegend } from "./lib/legend";
import { type QkTrait, mountQkPanel } from "./lib/qk_panel";
import { type ViewMessage, type ViewRequestSpec, decodeViewMessage, viewRequestMessage } from "./lib/pattern_lod";
import { type SinksTrait, makeSinkToggle, sinkNotes } from "./lib/sinks";
import { FrameScheduler } from "./lib/redraw";
import { StripRows } from "./lib/strip_rows";

/** Traits of llmasos_widgets/widgets/attention.py (AttentionWidget), same names. */
export interface AttentionModel extends SelectionState {
  tokens: string[];
  display_tokens: string[];
  token_kinds: string[];
  /** Set by link_selection (_base.py): leading tokens shared with linked widgets; -1 = not linked. */
  linked_tokens: number;
  n_layers: number;
  n_heads: number;
  head_summaries: Record<string, TensorPayload>;
  pattern_mode: PatternMode;
  flow_direction: FlowDirection;
  /** [] or [query, key]: the clicked pattern cell (the block's argmax cell when pooled). */
  selected_cell: number[];
  /** query·key breakdown of selected_cell ({} = none): lib/qk_panel.ts, widgets/_qk.py */
  qk?: QkTrait;
  /** summary name -> how it was estimated; {} when exact (Explanation.summary_notes) */
  summary_notes: Record<string, string>;
  /** whole patterns are sent only up to this many tokens; above, pooled views and rows */
  full_pattern_limit: number;
  /** attention sinks (explanation/_sinks.py, lib/sinks.ts); {} when not known */
  attention_sinks?: SinksTrait;
  /** leave the sinks out of the pattern view's color scale (capped, never hidden) */
  exclude_sinks_from_scale?: boolean;
  /** generation (widgets/_base.py): tokens[:prompt_length] are the prompt; -1 = no generated part */
  prompt_length?: number;
  /** generation: P(token | prefix) per token, -1 for the first; [] = not known */
  token_probabilities?: number[];
  /** a chat's messages (widgets/_base.py message_spans); [] for plain text */
  message_spans?: MessageSpan[];
}

const SUMMARY_METRICS = ["entropy", "previous_token", "first_token", "induction"];
/** What each head summary measures (llmasos_widgets/explanation/_summaries.py). */
const SUMMARY_UNITS: Record<string, [string, string]> = {
  entropy: ["mean attention entropy", "nats"],
  previous_token: ["attention to the previous token", "mean weight"],
  first_token: ["attention to the first token", "mean weight"],
  induction: ["induction score", "mean weight"],
};
const HOVER_SAVE_MS = 120;
/** Wait before showing every head of a layer that arrived without heads (see fillLayerHeads). */
const LAYER_FILL_MS = 150;
const FLOW_REQUEST_MS = 200;

type Model = AnyModel<AttentionModel>;

function state(model: Model): SelectionState {
  return {
    selected_layer: model.get("selected_layer"),
    selected_heads: model.get("selected_heads") ?? [],
    selected_tokens: model.get("selected_tokens") ?? [],
    hovered_token: model.get("hovered_token"),
    metric: model.get("metric"),
  };
}

/** The views a redraw repaints (coalesced per frame, lib/redraw.ts). */
type Part = "selection" | "patterns" | "hover" | "grid" | "strip";

type Listen = ReturnType<typeof listenerScope>["listen"];

/** The control row: grid metric, how several heads are drawn, hover direction, sink toggle. */
interface Controls {
  element: HTMLDivElement;
  /** What the grid colors by (above the grid). */
  caption: HTMLDivElement;
  sinkToggle: ReturnType<typeof makeSinkToggle>;
  /** Show the model's metric, pattern mode and flow direction. */
  sync(): void;
}

function mountControls(model: Model, listen: Listen): Controls {
  const element = document.createElement("div");
  element.className = "llmw-controls";
  const metric = makeSelect("metric-select", "grid color:", [
    ...SUMMARY_METRICS.map((m): [string, string] => [m, m.replace("_", " ")]),
    [BRUSHED_METRIC, "attention from brushed tokens"],
  ]);
  const mode = makeSelect("pattern-mode", "heads:", [
    ["average", "averaged"],
    ["side_by_side", "side by side"],
  ]);
  const direction = makeSelect("flow-direction", "hover:", [
    ["from", "attention from token"],
    ["to", "attention to token"],
  ]);
  element.append(metric.wrap, mode.wrap, direction.wrap);
  // attention sinks: out of the pattern's color scale (capped at the top color), never hidden
  const sinkToggle = makeSinkToggle("exclude-sinks", "take the pattern's color scale over the keys that are not attention sinks (exclude_sinks_from_scale)");
  element.append(sinkToggle.wrap);
  listen(sinkToggle.input, "change", () => {
    model.set("exclude_sinks_from_scale", sinkToggle.input.checked);
    model.save_changes();
  });
  const caption = document.createElement("div");
  caption.className = "llmw-grid-caption";
  caption.dataset.testid = "grid-caption";
  listen(metric.select, "change", () => {
    model.set("metric", metric.select.value);
    model.save_changes();
  });
  listen(mode.select, "change", () => {
    model.set("pattern_mode", mode.select.value as PatternMode);
    model.save_changes();
  });
  listen(direction.select, "change", () => {
    model.set("flow_direction", direction.select.value as FlowDirection);
    model.save_changes();
  });
  const sync = (): void => {
    metric.select.value = model.get("metric");
    mode.select.value = model.get("pattern_mode");
    direction.select.value = model.get("flow_direction");
  };
  return { element, caption, sinkToggle, sync };
}

/** One rendered AttentionWidget: its views, the patterns it holds and its kernel requests. */
class AttentionView {
  private readonly root = document.createElement("div");
  private readonly scale: ColorScale = getScale("viridis");
  private readonly tokenScale: ColorScale = getScale("blues");
  private readonly store = new PatternStore();
  private readonly kernelFlow = new FlowCache(); // bounded; lost replies are asked for again
  private readonly summaries = new Map<string, Float32Array>();
  private readonly scope: ReturnType<typeof listenerScope>;
  private readonly qkPanel: HTMLElement;
  private readonly controls: Controls;
  private readonly body = document.createElement("div");
  private readonly gridLegendHost = document.createElement("div");
  private readonly gridLegend: HTMLElement;
  private readonly redraw = new FrameScheduler<Part>((parts) => this.draw(parts));
  private readonly stripRows: StripRows;
  private readonly saveHover = debounce(() => this.model.save_changes(), HOVER_SAVE_MS);
  private readonly requestFlow = debounce((query: FlowQuery) => this.sendFlowRequest(query), FLOW_REQUEST_MS);
  private readonly fillLayerHeads = debounce(() => this.showAllHeadsOfLayer(), LAYER_FILL_MS);
  private strip!: TokenStrip;
  private grid!: GridView;
  private patternView!: PatternView;
  private patternsLoaded = 0;
  private viewRequests = 0;
  private flowRetry = 0;
  private disposed = false;

  constructor(private readonly model: Model, el: HTMLElement) {
    this.root.className = "llmw-attention";
    this.root.dataset.testid = "attention-widget";
    el.appendChild(this.root);
    this.scope = listenerScope(model);
    const { cleanups, on, listen } = this.scope;
    cleanups.push(attachFigureExport(this.root, model)); // save buttons for [data-figure] views
    this.qkPanel = mountQkPanel(model, on); // q·k breakdown of the selected cell (lib/qk_panel.ts)
    this.controls = mountControls(model, listen);
    cleanups.push(() => this.saveHover.flush());
    this.body.className = "llmw-body";
    this.gridLegend = renderLegend(this.gridLegendHost, { label: "head summary", units: "", min: 0, max: 1, scale: "sequential", colors: this.scale });
    this.stripRows = new StripRows(
      {
        nTokens: () => model.get("tokens").length,
        direction: () => model.get("flow_direction"),
        requestView: (spec) => this.sendViewRequest(spec),
        disposed: () => this.disposed,
        onRow: () => this.redraw.schedule("strip"),
      },
      FLOW_REQUEST_MS,
    );
    cleanups.push(() => {
      this.requestFlow.cancel();
      window.clearTimeout(this.flowRetry);
    });
    cleanups.push(() => this.stripRows.cancel());
    cleanups.push(() => this.redraw.cancel());
    const onCustom = (msg: { type?: string; request_id?: number }, buffers: DataView[]): void => this.receive(msg, buffers);
    model.on("msg:custom", onCustom);
    cleanups.push(() => model.off("msg:custom", onCustom));
    cleanups.push(() => this.fillLayerHeads.cancel());
    this.watchTraits();

    this.build();
    this.applySinks();
    this.decodeSummaries();
    // first paint synchronously, so the view is complete when render returns
    this.refreshSelection();
    this.refreshPatterns();
    this.refreshGrid();
    this.refreshStrip();
    this.requestMissingPatterns(); // a new view has an empty cache; the kernel only pushes on change
  }

  destroy(): void {
    this.disposed = true;
    this.scope.cleanups.splice(0).forEach((fn) => fn());
    this.strip.destroy();
    this.grid.destroy();
    this.patternView.destroy();
    this.root.remove();
  }

  private state(): SelectionState {
    return state(this.model);
  }

  private fullPatterns(): boolean {
    return (this.model.get("tokens") ?? []).length <= (this.model.get("full_pattern_limit") ?? Infinity);
  }

  // --- writes to the model ------------------------------------------------------------------

  private setHover(t: number): void {
    if (this.model.get("hovered_token") === t) return;
    this.model.set("hovered_token", t); // change event updates every view synchronously
    this.saveHover();
  }

  private setHeads(layer: number, heads: number[]): void {
    this.model.set("selected_layer", layer);
    this.model.set("selected_heads", heads);
    this.model.save_changes();
  }

  /** A layer chosen without heads (from Python or a linked probe/saliency widget) shows all
   * of its heads, as clicking its label does (debounced: see watchTraits). */
  private showAllHeadsOfLayer(): void {
    const layer = this.model.get("selected_layer");
    if (this.disposed || layer < 0 || this.model.get("selected_heads").length > 0) return;
    const next = clickLayer(layer, this.model.get("n_heads"));
    this.setHeads(next.layer, next.heads);
  }

  // --- the views, rebuilt when the tokens change ---------------------------------------------

  private build(): void {
    const model = this.model;
    this.strip?.destroy();
    this.grid?.destroy();
    this.patternView?.destroy();
    const tokens = shownTokens(model.get("tokens") ?? [], model.get("display_tokens"), model.get("token_kinds"));
    this.strip = new TokenStrip(tokens, {
      onHover: (t) => this.setHover(t),
      onSelect: (selected) => {
        model.set("selected_tokens", selected);
        model.save_changes();
      },
    });
    this.grid = new GridView(model.get("n_layers"), model.get("n_heads"), this.scale, {
      onHeadClick: (layer, head, mods) => {
        const s = this.state();
        const next = clickHead({ layer: s.selected_layer, heads: s.selected_heads }, layer, head, mods);
        this.setHeads(next.layer, next.heads);
      },
      onLayerClick: (layer) => {
        const next = clickLayer(layer, model.get("n_heads"));
        this.setHeads(next.layer, next.heads);
      },
    });
    this.patternView = new PatternView(tokens, this.scale, {
      onHover: (t) => this.setHover(t),
      requestView: (spec: ViewRequestSpec) => this.sendViewRequest(spec),
      onSelectCell: (cell) => {
        model.set("selected_cell", cell);
        model.save_changes();
      },
    });
    this.patternView.setSelectedCell(model.get("selected_cell") ?? []);
    const gridColumn = document.createElement("div");
    gridColumn.className = "llmw-grid-column";
    gridColumn.append(this.controls.caption, this.grid.element, this.gridLegendHost);
    this.body.replaceChildren(gridColumn, this.patternView.element);
    this.strip.setLinkedTokens(model.get("linked_tokens") ?? -1);
    this.strip.setGeneration(model.get("prompt_length") ?? -1, model.get("token_probabilities"));
    this.strip.setMessages(model.get("message_spans"));
    this.root.replaceChildren(this.controls.element, this.strip.element, this.body, this.qkPanel);
  }

  private decodeSummaries(): void {
    this.summaries.clear();
    const payloads = this.model.get("head_summaries") ?? {};
    for (const [name, payload] of Object.entries(payloads)) this.summaries.set(name, decodeTensor(payload).data as Float32Array);
  }

  private applySinks(): void {
    const notes = sinkNotes(this.model.get("attention_sinks"));
    const exclude = this.model.get("exclude_sinks_from_scale") ?? false;
    this.controls.sinkToggle.input.checked = exclude;
    this.root.dataset.sinks = [...notes.keys()].join(",");
    this.strip?.setSinks(notes);
    this.patternView?.setSinks(notes, exclude);
  }

  // --- requests to the kernel ---------------------------------------------------------------

  private sendViewRequest(spec: ViewRequestSpec): number {
    this.viewRequests += 1;
    this.model.send(viewRequestMessage(this.viewRequests, spec));
    return this.viewRequests;
  }

  private requestMissingPatterns(): void {
    const s = this.state();
    const missing = s.selected_heads.filter((h) => !this.store.has(s.selected_layer, h));
    if (s.selected_layer >= 0 && missing.length > 0 && this.fullPatterns()) {
      this.model.send({ type: "request_patterns", layer: s.selected_layer, heads: missing });
    }
  }

  private sendFlowRequest(query: FlowQuery): void {
    const id = this.kernelFlow.request(flowKey(query), performance.now());
    if (id === null) return;
    this.model.send({ type: "request_flow", request_id: id, ...query });
    // nothing else asks again if this reply is lost: look again once it may be asked again
    window.clearTimeout(this.flowRetry);
    this.flowRetry = window.setTimeout(() => this.redraw.schedule("grid"), FLOW_RETRY_MS + 1);
  }

  // --- replies from the kernel --------------------------------------------------------------

  private receive(msg: { type?: string; request_id?: number }, buffers: DataView[]): void {
    if (msg.type === "pattern") {
      decodePatternMessage(msg as PatternMessage, buffers)
        .then((p) => {
          if (this.disposed) return;
          const evicted = this.store.put(p, this.selectedKeys());
          if (evicted.length > 0) this.model.send({ type: "evicted", heads: evicted });
          this.patternsLoaded += 1;
          this.root.dataset.patternsLoaded = String(this.patternsLoaded);
          const s = this.state();
          if (p.layer === s.selected_layer && s.selected_heads.includes(p.head)) this.redraw.schedule("patterns");
          this.redraw.schedule("grid", "strip");
        })
        .catch((err: unknown) => console.error("llmasos-widgets: bad pattern message", err));
    } else if (msg.type === "view" && msg.request_id !== undefined) {
      const id = msg.request_id;
      decodeViewMessage(msg as ViewMessage, buffers)
        .then((view) => {
          if (this.disposed) return;
          if (!this.stripRows.receive(id, view)) this.patternView.receiveView(view);
          this.root.dataset.viewsLoaded = String(Number(this.root.dataset.viewsLoaded ?? 0) + 1);
        })
        .catch((err: unknown) => console.error("llmasos-widgets: bad view message", err));
    } else if (msg.type === "flow" && msg.request_id !== undefined) {
      if (buffers.length !== 1) return;
      const shape = [this.model.get("n_layers"), this.model.get("n_heads")];
      const values = decodeTensor({ view: buffers[0], dtype: "float32", shape }).data as Float32Array;
      if (this.kernelFlow.resolve(msg.request_id, values)) this.redraw.schedule("grid");
    }
  }

  private selectedKeys(): Set<string> {
    const s = this.state();
    return new Set(s.selected_heads.map((h) => headKey(s.selected_layer, h)));
  }

  // --- redraws --------------------------------------------------------------------------------

  private draw(parts: ReadonlySet<Part>): void {
    if (this.disposed) return;
    if (parts.has("selection")) this.refreshSelection();
    if (parts.has("hover")) this.patternView.setHovered(this.model.get("hovered_token"));
    if (parts.has("patterns")) this.refreshPatterns();
    if (parts.has("grid")) this.refreshGrid();
    if (parts.has("strip")) this.refreshStrip();
  }

  private refreshSelection(): void {
    const s = this.state();
    this.grid.setSelection(s.selected_layer, s.selected_heads);
    this.strip.setSelected(s.selected_tokens);
    this.controls.sync();
  }

  private refreshPatterns(): void {
    const s = this.state();
    const patterns = s.selected_layer >= 0 ? this.store.getMany(s.selected_layer, s.selected_heads) : [];
    this.patternView.show(s.selected_layer, s.selected_heads, patterns, this.model.get("pattern_mode"));
  }

  /** The layer × head grid: the brushed tokens' attention flow, or a head summary. */
  private refreshGrid(): void {
    const model = this.model;
    const s = this.state();
    const query = flowQuery(s, model.get("flow_direction"));
    const nLayers = model.get("n_layers");
    const nHeads = model.get("n_heads");
    if (query) {
      const result = flowValues(query, nLayers, nHeads, this.store, this.kernelFlow.get(flowKey(query)));
      if (result.missing > 0) this.requestFlow(query);
      let vmax = 0;
      for (const v of result.values) if (v > vmax) vmax = v;
      this.grid.setValues(normalize(result.values, { min: 0, max: vmax || 1 }), result.values);
      this.controls.caption.textContent = result.label;
      updateLegend(this.gridLegend, { label: "attention flow of the brushed tokens", units: "attention weight", min: 0, max: vmax || 1, scale: "sequential", colors: this.scale });
      return;
    }
    const values = this.summaries.get(s.metric);
    if (values) {
      const domain = finiteDomain(values);
      this.grid.setValues(normalize(values, domain), values);
      const note = (model.get("summary_notes") ?? {})[s.metric];
      this.controls.caption.textContent = `head summary: ${s.metric.replace("_", " ")}${note ? ` (${note})` : ""}`;
      const [label, units] = SUMMARY_UNITS[s.metric] ?? [s.metric.replace("_", " "), ""];
      updateLegend(this.gridLegend, { label, units, min: domain.min, max: domain.max, scale: "sequential", colors: this.scale, note });
    } else {
      this.grid.setValues(new Float32Array(nLayers * nHeads).fill(NaN), new Float32Array(nLayers * nHeads).fill(NaN));
      this.controls.caption.textContent = s.metric === BRUSHED_METRIC ? "brush tokens in the text to color heads" : `no summary '${s.metric}'`;
    }
  }

  /** Token strip colors: attention from (or to) the focus tokens under the selected heads. */
  private refreshStrip(): void {
    const s = this.state();
    const focus = focusTokens(s);
    const patterns = s.selected_layer >= 0 ? this.store.getMany(s.selected_layer, s.selected_heads) : [];
    if (!this.fullPatterns()) {
      this.refreshStripFromKernel(s, focus);
      return;
    }
    if (focus.length === 0 || patterns.length === 0) {
      this.strip.setValues(null, this.tokenScale);
      return;
    }
    const n = this.model.get("tokens").length;
    const values =
      this.model.get("flow_direction") === "to" ? attentionToTokens(patterns, focus, n) : attentionFromTokens(patterns, focus, n);
    this.paintStrip(values);
  }

  /** Above full_pattern_limit: one focus token's exact row or column (lib/strip_rows.ts). */
  private refreshStripFromKernel(s: SelectionState, focus: number[]): void {
    if (focus.length !== 1 || s.selected_layer < 0 || s.selected_heads.length === 0) {
      this.strip.setValues(null, this.tokenScale);
      return;
    }
    const values = this.stripRows.values(s, focus[0]);
    if (values) this.paintStrip(values);
  }

  private paintStrip(values: Float32Array): void {
    let vmax = 0;
    for (const v of values) if (v > vmax) vmax = v;
    this.strip.setValues(values.map((v) => attentionToUnit(v, vmax)), this.tokenScale);
  }

  // --- trait changes (from Python, linked widgets, or this view) -------------------------------

  private watchTraits(): void {
    const { model, redraw } = this;
    const { on } = this.scope;
    const refreshAll = (): void => redraw.schedule("selection", "patterns", "grid", "strip");
    for (const name of ["tokens", "display_tokens", "token_kinds"]) {
      on(`change:${name}`, () => {
        this.build();
        refreshAll();
      });
    }
    on("change:head_summaries", () => {
      this.decodeSummaries();
      redraw.schedule("grid");
    });
    // "layer, then heads" set from Python in one cell arrives whole before heads are filled in
    on("change:selected_layer", () => {
      redraw.schedule("selection", "patterns", "strip");
      this.fillLayerHeads();
    });
    on("change:selected_heads", () => redraw.schedule("selection", "patterns", "strip"));
    on("change:linked_tokens", () => this.strip?.setLinkedTokens(model.get("linked_tokens") ?? -1));
    on("change:message_spans", () => this.strip?.setMessages(model.get("message_spans")));
    for (const name of ["prompt_length", "token_probabilities"]) {
      on(`change:${name}`, () => this.strip?.setGeneration(model.get("prompt_length") ?? -1, model.get("token_probabilities")));
    }
    on("change:selected_cell", () => this.patternView.setSelectedCell(model.get("selected_cell") ?? []));
    on("change:summary_notes", () => redraw.schedule("grid"));
    on("change:selected_tokens", () => redraw.schedule("selection", "grid", "strip"));
    on("change:hovered_token", () => {
      this.strip.setHovered(model.get("hovered_token")); // cheap, immediate feedback
      redraw.schedule("hover", "grid", "strip");
    });
    for (const name of ["metric", "pattern_mode", "flow_direction"]) {
      on(`change:${name}`, () => redraw.schedule("selection", "patterns", "grid", "strip"));
    }
    // registered after build's listeners: a rebuilt strip and pattern view get the marks too
    for (const name of ["tokens", "display_tokens", "token_kinds", "attention_sinks", "exclude_sinks_from_scale"]) {
      on(`change:${name}`, () => this.applySinks());
    }
  }
}

function render({ model, el }: RenderProps<AttentionModel>): () => void {
  const view = new AttentionView(model, el);
  return () => view.destroy();
}

export default { render };
