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
import { type PooledView, type ViewMessage, decodeViewMessage } from "./lib/pattern_lod";
import { type ViewRequestSpec } from "./lib/pattern_view";
import { type SinksTrait, makeSinkToggle, sinkNotes } from "./lib/sinks";

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


function render({ model, el }: RenderProps<AttentionModel>): () => void {
  const root = document.createElement("div");
  root.className = "llmw-attention";
  root.dataset.testid = "attention-widget";
  el.appendChild(root);

  const scale: ColorScale = getScale("viridis");
  const tokenScale: ColorScale = getScale("blues");
  const store = new PatternStore();
  const kernelFlow = new FlowCache(); // bounded; lost replies are asked for again
  const summaries = new Map<string, Float32Array>();
  let patternsLoaded = 0;
  let viewRequests = 0;
  // strip colors above full_pattern_limit: one exact row (from) or column (to) of the kernel
  const stripRequests = new Map<number, string>();
  let stripRow: { key: string; values: Float32Array } | null = null;
  let disposed = false;
  const { cleanups, on, listen } = listenerScope(model);
  cleanups.push(attachFigureExport(root, model)); // save buttons for [data-figure] views
  const qkPanel = mountQkPanel(model, on); // q·k breakdown of the selected cell (lib/qk_panel.ts)

  // --- controls -------------------------------------------------------------------------
  const controls = document.createElement("div");
  controls.className = "llmw-controls";
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
  controls.append(metric.wrap, mode.wrap, direction.wrap);
  // attention sinks: out of the pattern's color scale (capped at the top color), never hidden
  const sinkToggle = makeSinkToggle("exclude-sinks", "take the pattern's color scale over the keys that are not attention sinks (exclude_sinks_from_scale)");
  controls.append(sinkToggle.wrap);
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

  // --- views ----------------------------------------------------------------------------
  const saveHover = debounce(() => model.save_changes(), HOVER_SAVE_MS);
  cleanups.push(() => saveHover.flush());
  const setHover = (t: number): void => {
    if (model.get("hovered_token") === t) return;
    model.set("hovered_token", t); // change event updates every view synchronously
    saveHover();
  };
  const setHeads = (layer: number, heads: number[]): void => {
    model.set("selected_layer", layer);
    model.set("selected_heads", heads);
    model.save_changes();
  };

  let strip: TokenStrip;
  let grid: GridView;
  let patternView: PatternView;
  const body = document.createElement("div");
  body.className = "llmw-body";
  const gridLegendHost = document.createElement("div");
  const gridLegend = renderLegend(gridLegendHost, { label: "head summary", units: "", min: 0, max: 1, scale: "sequential", colors: scale });
  const fullPatterns = (): boolean => (model.get("tokens") ?? []).length <= (model.get("full_pattern_limit") ?? Infinity);

  const sendViewRequest = (spec: ViewRequestSpec): number => {
    viewRequests += 1;
    const { region } = spec;
    model.send({
      type: "request_view",
      request_id: viewRequests,
      layer: spec.layer,
      heads: spec.heads,
      rows: [region.q0, region.q1],
      cols: [region.k0, region.k1],
      shape: spec.shape,
      combine: spec.combine,
      reduce: spec.reduce,
    });
    return viewRequests;
  };

  const build = (): void => {
    strip?.destroy();
    grid?.destroy();
    patternView?.destroy();
    const tokens = shownTokens(model.get("tokens") ?? [], model.get("display_tokens"), model.get("token_kinds"));
    strip = new TokenStrip(tokens, {
      onHover: setHover,
      onSelect: (selected) => {
        model.set("selected_tokens", selected);
        model.save_changes();
      },
    });
    grid = new GridView(model.get("n_layers"), model.get("n_heads"), scale, {
      onHeadClick: (layer, head, mods) => {
        const s = state(model);
        const next = clickHead({ layer: s.selected_layer, heads: s.selected_heads }, layer, head, mods);
        setHeads(next.layer, next.heads);
      },
      onLayerClick: (layer) => {
        const next = clickLayer(layer, model.get("n_heads"));
        setHeads(next.layer, next.heads);
      },
    });
    patternView = new PatternView(tokens, scale, {
      onHover: setHover,
      requestView: (spec: ViewRequestSpec) => sendViewRequest(spec),
      onSelectCell: (cell) => {
        model.set("selected_cell", cell);
        model.save_changes();
      },
    });
    patternView.setSelectedCell(model.get("selected_cell") ?? []);
    const gridColumn = document.createElement("div");
    gridColumn.className = "llmw-grid-column";
    gridColumn.append(caption, grid.element, gridLegendHost);
    body.replaceChildren(gridColumn, patternView.element);
    strip.setLinkedTokens(model.get("linked_tokens") ?? -1);
    strip.setGeneration(model.get("prompt_length") ?? -1, model.get("token_probabilities"));
    strip.setMessages(model.get("message_spans"));
    root.replaceChildren(controls, strip.element, body, qkPanel);
  };

  const decodeSummaries = (): void => {
    summaries.clear();
    const payloads = model.get("head_summaries") ?? {};
    for (const [name, payload] of Object.entries(payloads)) summaries.set(name, decodeTensor(payload).data as Float32Array);
  };

  // --- data flow --------------------------------------------------------------------------
  const selectedKeys = (): Set<string> => {
    const s = state(model);
    return new Set(s.selected_heads.map((h) => headKey(s.selected_layer, h)));
  };

  const requestMissingPatterns = (): void => {
    const s = state(model);
    const missing = s.selected_heads.filter((h) => !store.has(s.selected_layer, h));
    if (s.selected_layer >= 0 && missing.length > 0 && fullPatterns()) {
      model.send({ type: "request_patterns", layer: s.selected_layer, heads: missing });
    }
  };

  const requestFlow = debounce((query: FlowQuery) => {
    const id = kernelFlow.request(flowKey(query), performance.now());
    if (id === null) return;
    model.send({ type: "request_flow", request_id: id, ...query });
    // nothing else asks again if this reply is lost: look again once it may be asked again
    window.clearTimeout(flowRetry);
    flowRetry = window.setTimeout(() => schedule("grid"), FLOW_RETRY_MS + 1);
  }, FLOW_REQUEST_MS);
  let flowRetry = 0;
  cleanups.push(() => {
    requestFlow.cancel();
    window.clearTimeout(flowRetry);
  });

  const refreshGrid = (): void => {
    const s = state(model);
    const query = flowQuery(s, model.get("flow_direction"));
    const nLayers = model.get("n_layers");
    const nHeads = model.get("n_heads");
    if (query) {
      const result = flowValues(query, nLayers, nHeads, store, kernelFlow.get(flowKey(query)));
      if (result.missing > 0) requestFlow(query);
      let vmax = 0;
      for (const v of result.values) if (v > vmax) vmax = v;
      grid.setValues(normalize(result.values, { min: 0, max: vmax || 1 }), result.values);
      caption.textContent = result.label;
      updateLegend(gridLegend, { label: "attention flow of the brushed tokens", units: "attention weight", min: 0, max: vmax || 1, scale: "sequential", colors: scale });
      return;
    }
    const values = summaries.get(s.metric);
    if (values) {
      const domain = finiteDomain(values);
      grid.setValues(normalize(values, domain), values);
      const note = (model.get("summary_notes") ?? {})[s.metric];
      caption.textContent = `head summary: ${s.metric.replace("_", " ")}${note ? ` (${note})` : ""}`;
      const [label, units] = SUMMARY_UNITS[s.metric] ?? [s.metric.replace("_", " "), ""];
      updateLegend(gridLegend, { label, units, min: domain.min, max: domain.max, scale: "sequential", colors: scale, note });
    } else {
      grid.setValues(new Float32Array(nLayers * nHeads).fill(NaN), new Float32Array(nLayers * nHeads).fill(NaN));
      caption.textContent = s.metric === BRUSHED_METRIC ? "brush tokens in the text to color heads" : `no summary '${s.metric}'`;
    }
  };

  /** Token strip colors: attention from (or to) the focus tokens under the selected heads. */
  const refreshStrip = (): void => {
    const s = state(model);
    const focus = focusTokens(s);
    const patterns = s.selected_layer >= 0 ? store.getMany(s.selected_layer, s.selected_heads) : [];
    if (!fullPatterns()) {
      refreshStripFromKernel(s, focus);
      return;
    }
    if (focus.length === 0 || patterns.length === 0) {
      strip.setValues(null, tokenScale);
      return;
    }
    const n = model.get("tokens").length;
    const values =
      model.get("flow_direction") === "to" ? attentionToTokens(patterns, focus, n) : attentionFromTokens(patterns, focus, n);
    paintStrip(values);
  };

  const paintStrip = (values: Float32Array): void => {
    let vmax = 0;
    for (const v of values) if (v > vmax) vmax = v;
    strip.setValues(values.map((v) => attentionToUnit(v, vmax)), tokenScale);
  };

  /** Above full_pattern_limit: one focus token's exact row (from) or column (to), asked for. */
  const stripKey = (s: SelectionState, t: number): string => `${s.selected_layer}|${s.selected_heads.join(",")}|${t}|${model.get("flow_direction")}`;
  const requestStripRow = debounce((s: SelectionState, t: number) => {
    const key = stripKey(s, t);
    if (disposed || stripRow?.key === key || [...stripRequests.values()].includes(key)) return;
    const n = model.get("tokens").length;
    const from = model.get("flow_direction") !== "to";
    viewRequests += 1;
    stripRequests.set(viewRequests, key);
    model.send({
      type: "request_view",
      request_id: viewRequests,
      layer: s.selected_layer,
      heads: s.selected_heads,
      rows: from ? [t, t + 1] : [t, n],
      cols: from ? [0, n] : [t, t + 1],
      shape: from ? [1, n] : [n - t, 1],
      combine: "mean",
      reduce: "max",
    });
  }, FLOW_REQUEST_MS);
  cleanups.push(() => requestStripRow.cancel());
  const refreshStripFromKernel = (s: SelectionState, focus: number[]): void => {
    if (focus.length !== 1 || s.selected_layer < 0 || s.selected_heads.length === 0) {
      strip.setValues(null, tokenScale);
      return;
    }
    if (stripRow && stripRow.key === stripKey(s, focus[0])) paintStrip(stripRow.values);
    else requestStripRow(s, focus[0]);
  };
  const receiveStripView = (view: PooledView, key: string): void => {
    const n = model.get("tokens").length;
    const values = new Float32Array(n);
    if (view.nRows === 1) values.set(view.values.subarray(0, Math.min(n, view.nCols)), view.region.k0);
    else values.set(view.values.subarray(0, view.nRows), view.region.q0);
    stripRow = { key, values };
    schedule("strip");
  };

  const refreshPatterns = (): void => {
    const s = state(model);
    const patterns = s.selected_layer >= 0 ? store.getMany(s.selected_layer, s.selected_heads) : [];
    patternView.show(s.selected_layer, s.selected_heads, patterns, model.get("pattern_mode"));
  };

  const refreshSelection = (): void => {
    const s = state(model);
    grid.setSelection(s.selected_layer, s.selected_heads);
    strip.setSelected(s.selected_tokens);
    metric.select.value = s.metric;
    mode.select.value = model.get("pattern_mode");
    direction.select.value = model.get("flow_direction");
  };

  // Redraws are coalesced into one animation frame: a burst of hovers or arriving patterns
  // costs one redraw per frame, not one per event.
  type Part = "selection" | "patterns" | "hover" | "grid" | "strip";
  const dirty = new Set<Part>();
  let frame: ReturnType<typeof setTimeout> | number | undefined;
  const nextFrame = (cb: () => void): number | ReturnType<typeof setTimeout> =>
    typeof requestAnimationFrame === "function" ? requestAnimationFrame(cb) : setTimeout(cb, 16);
  const flush = (): void => {
    frame = undefined;
    if (disposed) return;
    const parts = new Set(dirty);
    dirty.clear();
    if (parts.has("selection")) refreshSelection();
    if (parts.has("hover")) patternView.setHovered(model.get("hovered_token"));
    if (parts.has("patterns")) refreshPatterns();
    if (parts.has("grid")) refreshGrid();
    if (parts.has("strip")) refreshStrip();
  };
  const schedule = (...parts: Part[]): void => {
    parts.forEach((part) => dirty.add(part));
    if (frame === undefined) frame = nextFrame(flush);
  };
  cleanups.push(() => {
    if (frame === undefined) return;
    if (typeof cancelAnimationFrame === "function" && typeof frame === "number") cancelAnimationFrame(frame);
    else clearTimeout(frame as ReturnType<typeof setTimeout>);
  });
  const refreshAll = (): void => schedule("selection", "patterns", "grid", "strip");

  const onCustom = (msg: { type?: string; request_id?: number }, buffers: DataView[]): void => {
    if (msg.type === "pattern") {
      decodePatternMessage(msg as PatternMessage, buffers)
        .then((p) => {
          if (disposed) return;
          const evicted = store.put(p, selectedKeys());
          if (evicted.length > 0) model.send({ type: "evicted", heads: evicted });
          patternsLoaded += 1;
          root.dataset.patternsLoaded = String(patternsLoaded);
          const s = state(model);
          if (p.layer === s.selected_layer && s.selected_heads.includes(p.head)) schedule("patterns");
          schedule("grid", "strip");
        })
        .catch((err: unknown) => console.error("llmasos-widgets: bad pattern message", err));
    } else if (msg.type === "view" && msg.request_id !== undefined) {
      const id = msg.request_id;
      decodeViewMessage(msg as ViewMessage, buffers)
        .then((view) => {
          if (disposed) return;
          const key = stripRequests.get(id);
          stripRequests.delete(id);
          if (key !== undefined) receiveStripView(view, key);
          else patternView.receiveView(view);
          root.dataset.viewsLoaded = String(Number(root.dataset.viewsLoaded ?? 0) + 1);
        })
        .catch((err: unknown) => console.error("llmasos-widgets: bad view message", err));
    } else if (msg.type === "flow" && msg.request_id !== undefined) {
      if (buffers.length !== 1) return;
      const shape = [model.get("n_layers"), model.get("n_heads")];
      const values = decodeTensor({ view: buffers[0], dtype: "float32", shape }).data as Float32Array;
      if (kernelFlow.resolve(msg.request_id, values)) schedule("grid");
    }
  };
  model.on("msg:custom", onCustom);
  cleanups.push(() => model.off("msg:custom", onCustom));

  // --- trait changes (from Python, linked widgets, or this view) ---------------------------
  for (const name of ["tokens", "display_tokens", "token_kinds"]) {
    on(`change:${name}`, () => {
      build();
      refreshAll();
    });
  }
  on("change:head_summaries", () => {
    decodeSummaries();
    schedule("grid");
  });
  // A layer chosen without heads (from Python or a linked probe/saliency widget) shows all of
  // its heads, as clicking its label does. Debounced, so "layer, then heads" set from Python
  // in one cell arrives whole before anything is filled in.
  const fillLayerHeads = debounce(() => {
    const layer = model.get("selected_layer");
    if (disposed || layer < 0 || model.get("selected_heads").length > 0) return;
    const next = clickLayer(layer, model.get("n_heads"));
    setHeads(next.layer, next.heads);
  }, LAYER_FILL_MS);
  cleanups.push(() => fillLayerHeads.cancel());
  on("change:selected_layer", () => {
    schedule("selection", "patterns", "strip");
    fillLayerHeads();
  });
  on("change:selected_heads", () => schedule("selection", "patterns", "strip"));
  on("change:linked_tokens", () => strip?.setLinkedTokens(model.get("linked_tokens") ?? -1));
  on("change:message_spans", () => strip?.setMessages(model.get("message_spans")));
  for (const name of ["prompt_length", "token_probabilities"]) {
    on(`change:${name}`, () => strip?.setGeneration(model.get("prompt_length") ?? -1, model.get("token_probabilities")));
  }
  on("change:selected_cell", () => patternView.setSelectedCell(model.get("selected_cell") ?? []));
  on("change:summary_notes", () => schedule("grid"));
  on("change:selected_tokens", () => schedule("selection", "grid", "strip"));
  on("change:hovered_token", () => {
    strip.setHovered(model.get("hovered_token")); // cheap, immediate feedback
    schedule("hover", "grid", "strip");
  });
  for (const name of ["metric", "pattern_mode", "flow_direction"]) {
    on(`change:${name}`, () => schedule("selection", "patterns", "grid", "strip"));
  }

  const applySinks = (): void => {
    const notes = sinkNotes(model.get("attention_sinks"));
    const exclude = model.get("exclude_sinks_from_scale") ?? false;
    sinkToggle.input.checked = exclude;
    root.dataset.sinks = [...notes.keys()].join(",");
    strip?.setSinks(notes);
    patternView?.setSinks(notes, exclude);
  };
  // registered after build's listeners: a rebuilt strip and pattern view get the marks too
  for (const name of ["tokens", "display_tokens", "token_kinds", "attention_sinks", "exclude_sinks_from_scale"]) on(`change:${name}`, applySinks);

  build();
  applySinks();
  decodeSummaries();
  // first paint synchronously, so the view is complete when render returns
  refreshSelection();
  refreshPatterns();
  refreshGrid();
  refreshStrip();
  requestMissingPatterns(); // a new view has an empty cache; the kernel only pushes on change

  return () => {
    disposed = true;
    cleanups.splice(0).forEach((fn) => fn());
    strip.destroy();
    grid.destroy();
    patternView.destroy();
    root.remove();
  };
}

export default { render };
