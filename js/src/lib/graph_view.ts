// The graph view's pure parts: the node and edge tables the kernel sends, the slider's
// pruning rule and the layout. Python half: llmasos_widgets/widgets/_graph_view.py (the same
// columns; `visible_at` there is this file's `visibleAt`, tested against each other).

/** Columns of the `nodes` table (_graph_view.py NODE_COLUMNS). */
export const NODE_COLUMNS = ["node", "kind", "layer", "position", "index", "value", "influence", "rank_start"] as const;
const N_COLUMNS = NODE_COLUMNS.length;

/** AttributionGraph NODE_KINDS order. */
export const NODE_KINDS = ["feature", "error", "token", "logit"] as const;
export type NodeKind = (typeof NODE_KINDS)[number];

export interface GraphNode {
  row: number;
  node: number;
  kind: NodeKind;
  layer: number;
  position: number;
  index: number;
  value: number;
  influence: number;
  rankStart: number;
}

export interface GraphEdge {
  row: number;
  source: number; // row of the nodes table
  target: number;
  weight: number;
}

export function readNodes(table: Float32Array): GraphNode[] {
  const out: GraphNode[] = [];
  for (let row = 0; row * N_COLUMNS < table.length; row++) {
    const at = (c: number): number => table[row * N_COLUMNS + c];
    out.push({
      row,
      node: at(0),
      kind: NODE_KINDS[at(1)] ?? "feature",
      layer: at(2),
      position: at(3),
      index: at(4),
      value: at(5),
      influence: at(6),
      rankStart: at(7),
    });
  }
  return out;
}

export function readEdges(table: Float32Array): GraphEdge[] {
  const out: GraphEdge[] = [];
  for (let row = 0; row * 3 < table.length; row++) {
    out.push({ row, source: table[row * 3], target: table[row * 3 + 1], weight: table[row * 3 + 2] });
  }
  return out;
}

const alwaysShown = (kind: NodeKind): boolean => kind === "token" || kind === "logit";

/**
 * What the slider at `threshold` shows (the rule in _graph_view.py's docstring): feature and
 * error nodes while the influence share ranked above them is below `threshold`; tokens and
 * logits always; edges between shown nodes; then, iteratively, feature/error nodes without an
 * outgoing edge and features without an incoming one are hidden.
 */
export function visibleAt(nodes: GraphNode[], edges: GraphEdge[], threshold: number): { nodes: boolean[]; edges: boolean[] } {
  let shown = nodes.map((n) => alwaysShown(n.kind) || n.rankStart < threshold);
  for (;;) {
    const edgeShown = edges.map((e) => shown[e.source] && shown[e.target]);
    const hasOut = new Array<boolean>(nodes.length).fill(false);
    const hasIn = new Array<boolean>(nodes.length).fill(false);
    edges.forEach((e, i) => {
      if (!edgeShown[i]) return;
      hasOut[e.source] = true;
      hasIn[e.target] = true;
    });
    const now = nodes.map((n, i) => {
      if (!shown[i] || alwaysShown(n.kind)) return shown[i];
      if (!hasOut[i]) return false;
      return n.kind !== "feature" || hasIn[i];
    });
    if (now.every((v, i) => v === shown[i])) return { nodes: shown, edges: edgeShown };
    shown = now;
  }
}

export interface Layout {
  width: number;
  height: number;
  x: number[]; // per node row
  y: number[];
  r: number[];
  columnX: number[]; // per position: column centre
  rowY: number[]; // per row (0 = tokens, 1 + layer, n_layers + 1 = logits): row centre
}

/** Row of a node: tokens at the bottom (0), layer l at 1 + l, logits on top (n_layers + 1). */
export function nodeRow(node: Pick<GraphNode, "kind" | "layer">, nLayers: number): number {
  if (node.kind === "token") return 0;
  if (node.kind === "logit") return nLayers + 1;
  return node.layer + 1;
}

/**
 * Positions by column, rows by layer (tokens at the bottom). Nodes sharing a cell sit side
 * by side, most influential in the middle; radius grows with sqrt(influence). Logits (all at
 * the last position) spread over the whole top row in their order, so their labels fit.
 */
export function layoutGraph(nodes: GraphNode[], nLayers: number, nPositions: number, options: { columnWidth?: number; rowHeight?: number; margin?: number } = {}): Layout {
  const columnWidth = options.columnWidth ?? 72;
  const rowHeight = options.rowHeight ?? 56;
  const margin = options.margin ?? 28;
  const nRows = nLayers + 2;
  const width = margin * 2 + columnWidth * Math.max(1, nPositions);
  const height = margin * 2 + rowHeight * nRows;
  const columnX = Array.from({ length: nPositions }, (_, p) => margin + columnWidth * (p + 0.5));
  const rowY = Array.from({ length: nRows }, (_, r) => height - margin - rowHeight * (r + 0.5));
  const top = nodes.reduce((m, n) => (alwaysShown(n.kind) ? m : Math.max(m, Math.abs(n.influence))), 0);
  const cells = new Map<string, GraphNode[]>();
  for (const node of nodes) {
    const key = `${nodeRow(node, nLayers)}:${node.position}`;
    const cell = cells.get(key) ?? [];
    cell.push(node);
    cells.set(key, cell);
  }
  const x = new Array<number>(nodes.length).fill(0);
  const y = new Array<number>(nodes.length).fill(0);
  const r = new Array<number>(nodes.length).fill(0);
  // logits (one position, up to a dozen) spread over the top row, most probable first
  const logits = nodes.filter((n) => n.kind === "logit");
  logits.forEach((node, k) => {
    const span = width - 2 * margin;
    x[node.row] = margin + (span * (k + 0.5)) / logits.length;
    y[node.row] = rowY[nRows - 1];
    r[node.row] = 5;
  });
  for (const cell of cells.values()) {
    if (cell[0].kind === "logit") continue;
    // most influential in the middle: order by influence, then alternate sides
    const sorted = [...cell].sort((a, b) => b.influence - a.influence || a.row - b.row);
    const step = Math.min(14, (columnWidth - 8) / Math.max(1, sorted.length));
    sorted.forEach((node, k) => {
      const side = k === 0 ? 0 : (k % 2 === 1 ? 1 : -1) * Math.ceil(k / 2);
      const row = nodeRow(node, nLayers);
      x[node.row] = columnX[node.position] + side * step;
      y[node.row] = rowY[row];
      const share = top > 0 ? Math.sqrt(Math.abs(node.influence) / top) : 0;
      r[node.row] = alwaysShown(node.kind) ? 5 : 2.5 + 5 * share;
    });
  }
  return { width, height, x, y, r, columnX, rowY };
}

/** Stroke of an edge: width and opacity by |weight| against the largest, colour by sign. */
export function edgeStroke(weight: number, largest: number): { width: number; opacity: number; color: string } {
  const share = largest > 0 ? Math.min(1, Math.abs(weight) / largest) : 0;
  return {
    width: 0.5 + 3.5 * share,
    opacity: 0.15 + 0.75 * share,
    color: weight >= 0 ? "#2f6db5" : "#c9432f",
  };
}

/** Short label of a node for its tooltip and card title. */
export function nodeLabel(node: GraphNode, logitLabel?: string): string {
  if (node.kind === "feature") return `L${node.layer} #${node.index} @${node.position}`;
  if (node.kind === "error") return `error L${node.layer} @${node.position}`;
  if (node.kind === "token") return `token @${node.position}`;
  return `logit ${logitLabel ?? `#${node.index}`}`;
}
