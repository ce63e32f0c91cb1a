// FeatureWidget front end (Python half: llmasos_widgets/widgets/features.py).
// One SAE's latents on a text: the token strip (colored by the selected latent's activation),
// the selected token's top latents, and the selected latent's card (activation on every
// token, logit effects, histogram, max-activating examples). A click on a token selects it and
// the SAE's layer (site - 1, as PatchingWidget's residual rows); a click on a latent selects
// it (Python fills the card) and the layer. Every string is set as text, never as HTML.
//
// Stable DOM hooks for browser tests:
//   div.llmw-features[data-testid="feature-widget"][data-selected-token][data-selected-latent]
//     div[data-testid="sae-caption"]
//     div[data-testid="token-strip"] > span[data-testid="token-<i>"][data-activation]
//     div[data-testid="token-latents"][data-token] > button[data-testid="latent-<id>"]
//     div[data-testid="feature-card"][data-latent][hidden]
//       div[data-testid="promoted"] / div[data-testid="suppressed"] > span.llmw-feature-tok
//       svg[data-testid="histogram"] > rect[data-testid="bin-<b>"][data-count]
//       div[data-testid="examples"] > div[data-testid="example-<j>"] > span

import type { RenderProps } from "@anywidget/types";
import { type TensorPayload, decodeTensor } from "./lib/buffers";
import { listenerScope } from "./lib/dom";
import { formatActivation, histogramBars, tokenLatents } from "./lib/feature_data";
import { siteToSelectedLayer } from "./lib/saliency_scale";
import type { SelectionState } from "./lib/selection";
import { shadeChip, tokenChip } from "./lib/token_chip";
import { type ShownToken, type TokenKind, shownTokens, tokenTitle } from "./lib/token_text";

interface Example {
  tokens: string[];
  kinds: string[];
  values: number[];
  center: number;
  activation: number;
  text: number;
}

interface Card {
  latent?: number;
  max?: number;
  promoted?: [string, number][];
  suppressed?: [string, number][];
  histogram?: { edges: number[]; counts: number[]; over: string };
  density?: number | null;
  examples?: Example[];
}

/** Traits of llmasos_widgets/widgets/features.py (FeatureWidget), same names. */
export interface FeatureModel extends SelectionState {
  tokens: string[];
  display_tokens: string[];
  token_kinds: string[];
  sae_name: string;
  site: number;
  site_name: string;
  d_sae: number;
  top_latents: TensorPayload;
  top_values: TensorPayload;
  selected_latent: number;
  latent_activations: TensorPayload;
  card: Card;
}

const SVG_NS = "http://www.w3.org/2000/svg";

function div(testid?: string, text?: string): HTMLDivElement {
  const node = document.createElement("div");
  if (testid) node.dataset.testid = testid;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** A token chip with the class the browser tests select (span.llmw-feature-tok). */
function featureChip(token: Pick<ShownToken, "text" | "kind">, shade = 0): HTMLSpanElement {
  const span = tokenChip(token, shade);
  span.className = "llmw-feature-tok";
  return span;
}

function render({ model, el }: RenderProps<FeatureModel>): () => void {
  const root = div("feature-widget");
  root.className = "llmw-features";
  Object.assign(root.style, { fontFamily: "var(--jp-ui-font-family, system-ui, sans-serif)", fontSize: "12px" });
  el.appendChild(root);
  const { cleanups, on, listen } = listenerScope(model);

  const caption = div("sae-caption");
  caption.style.fontWeight = "600";
  const strip = div("token-strip");
  strip.style.margin = "6px 0";
  const latentsBox = div("token-latents");
  latentsBox.style.margin = "6px 0";
  const card = div("feature-card");
  Object.assign(card.style, { borderTop: "1px solid #d0d7de", paddingTop: "6px" });
  root.append(caption, strip, latentsBox, card);

  const selectedToken = (): number => model.get("selected_tokens")?.[0] ?? -1;
  const selectLayer = (): void => {
    model.set("selected_layer", Math.max(-1, siteToSelectedLayer(model.get("site"))));
  };

  const drawCaption = (): void => {
    caption.textContent = `SAE ${model.get("sae_name")} at ${model.get("site_name")} · ${model.get("d_sae")} latents`;
  };

  let spans: HTMLSpanElement[] = [];
  const drawStrip = (): void => {
    const tokens = shownTokens(model.get("tokens") ?? [], model.get("display_tokens"), model.get("token_kinds"));
    spans = tokens.map((token, i) => {
      const span = featureChip(token);
      span.dataset.testid = `token-${i}`;
      span.title = tokenTitle(tokens, i);
      span.style.cursor = "pointer";
      listen(span, "click", () => {
        model.set("selected_tokens", [i]);
        selectLayer();
        model.save_changes();
      });
      return span;
    });
    strip.replaceChildren(...spans);
    colorStrip();
  };

  const colorStrip = (): void => {
    const payload = model.get("latent_activations");
    const acts = payload ? (decodeTensor(payload).data as Float32Array) : new Float32Array(0);
    const top = acts.reduce((a, b) => Math.max(a, b), 0); // no spread: T may be 100k
    const token = selectedToken();
    spans.forEach((span, i) => {
      const value = acts.length === spans.length ? acts[i] : 0;
      const shade = top > 0 ? value / top : 0;
      span.dataset.activation = acts.length === spans.length ? formatActivation(value) : "";
      shadeChip(span, shade);
      span.style.outline = i === token ? "2px solid #f0a000" : "none";
    });
  };

  const latentCleanups: (() => void)[] = []; // the current buttons', replaced per draw
  cleanups.push(() => {
    for (const cleanup of latentCleanups.splice(0)) cleanup();
  });
  const drawLatents = (): void => {
    for (const cleanup of latentCleanups.splice(0)) cleanup();
    const token = selectedToken();
    root.dataset.selectedToken = String(token);
    latentsBox.dataset.token = String(token);
    const latents = decodeTensor(model.get("top_latents"));
    const values = decodeTensor(model.get("top_values")).data as Float32Array;
    const n = latents.shape[1] ?? 0;
    const rows = tokenLatents(latents.data as Float32Array, values, n, token);
    const label = document.createElement("span");
    label.textContent = token < 0 ? "select a token to list its latents" : `top latents of token ${token}: `;
    const buttons = rows.map(({ latent, value }) => {
      const button = document.createElement("button");
      button.dataset.testid = `latent-${latent}`;
      button.dataset.selected = String(latent === model.get("selected_latent"));
      button.textContent = `#${latent} ${formatActivation(value)}`;
      button.style.margin = "1px 3px";
      if (latent === model.get("selected_latent")) button.style.fontWeight = "700";
      const onClick = (): void => {
        model.set("selected_latent", latent);
        selectLayer();
        model.save_changes();
      };
      button.addEventListener("click", onClick);
      latentCleanups.push(() => button.removeEventListener("click", onClick));
      return button;
    });
    if (token >= 0 && rows.length === 0) label.textContent = `no latent is active on token ${token}`;
    latentsBox.replaceChildren(label, ...buttons);
  };

  const drawCard = (): void => {
    const data = model.get("card") ?? {};
    const latent = model.get("selected_latent");
    root.dataset.selectedLatent = String(latent);
    card.dataset.latent = String(data.latent ?? -1);
    card.hidden = data.latent === undefined;
    if (data.latent === undefined) {
      card.replaceChildren();
      return;
    }
    const title = div(undefined, `latent #${data.latent}: max ${formatActivation(data.max ?? 0)} on this text`);
    title.style.fontWeight = "600";
    if (data.density != null) title.textContent += ` · fires on ${(100 * data.density).toPrecision(3)}% of the corpus`;
    const effects = (testid: string, label: string, pairs: [string, number][] = []): HTMLDivElement => {
      const row = div(testid, `${label}: `);
      if (!pairs.length) row.append("(not stored: the latent is not active in this text)");
      for (const [token, logit] of pairs) {
        const chip = featureChip({ text: token, kind: "text" });
        chip.title = `logit ${logit}`;
        row.append(chip);
      }
      return row;
    };
    const parts: HTMLElement[] = [
      title,
      effects("promoted", "promotes", data.promoted),
      effects("suppressed", "suppresses", data.suppressed),
    ];
    if (data.histogram) parts.push(histogram(data.histogram));
    const examples = div("examples");
    (data.examples ?? []).forEach((example, j) => {
      const row = div(`example-${j}`);
      const top = Math.max(...example.values, 0);
      const head = document.createElement("span");
      head.textContent = `${formatActivation(example.activation)} (text ${example.text}): `;
      head.style.color = "#656d76";
      row.append(head);
      example.tokens.forEach((token, i) => {
        const kind = (example.kinds[i] || "text") as TokenKind;
        const chip = featureChip({ text: token, kind }, top > 0 ? example.values[i] / top : 0);
        if (i === example.center) chip.style.outline = "2px solid #f0a000";
        row.append(chip);
      });
      examples.append(row);
    });
    if (data.examples?.length) parts.push(div(undefined, "max-activating examples:"), examples);
    card.replaceChildren(...parts);
  };

  const histogram = (hist: NonNullable<Card["histogram"]>): HTMLDivElement => {
    const box = div(undefined, `activations over ${hist.over} (log-spaced bins, active tokens only):`);
    const width = 300;
    const height = 60;
    const bins = hist.counts.length;
    const svg = document.createElementNS(SVG_NS, "svg");
    svg.dataset.testid = "histogram";
    svg.setAttribute("width", String(width));
    svg.setAttribute("height", String(height));
    svg.style.display = "block";
    for (const bar of histogramBars(hist.counts)) {
      const rect = document.createElementNS(SVG_NS, "rect");
      const w = width / bins;
      rect.setAttribute("x", String(bar.bin * w));
      rect.setAttribute("y", String(height * (1 - bar.height)));
      rect.setAttribute("width", String(Math.max(1, w - 1)));
      rect.setAttribute("height", String(height * bar.height));
      rect.setAttribute("fill", "#4a7fb5");
      rect.dataset.testid = `bin-${bar.bin}`;
      rect.dataset.count = String(bar.count);
      const tip = document.createElementNS(SVG_NS, "title");
      tip.textContent = `${hist.edges[bar.bin].toPrecision(2)}–${hist.edges[bar.bin + 1].toPrecision(2)}: ${bar.count}`;
      rect.appendChild(tip);
      svg.appendChild(rect);
    }
    box.appendChild(svg);
    return box;
  };

  drawCaption();
  drawStrip();
  drawLatents();
  drawCard();
  on("change:tokens", drawStrip);
  on("change:selected_tokens", () => {
    drawLatents();
    colorStrip();
  });
  on("change:selected_latent", drawLatents);
  on("change:top_latents", drawLatents);
  on("change:latent_activations", colorStrip);
  on("change:card", drawCard);
  on("change:sae_name", drawCaption);
  return () => {
    for (const cleanup of cleanups) cleanup();
    root.remove();
  };
}

export default { render };
