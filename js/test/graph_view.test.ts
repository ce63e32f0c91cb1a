import { describe, expect, it } from "vitest";
import { edgeStroke, layoutGraph, nodeRow, readEdges, readNodes, visibleAt } from "../src/lib/graph_view";
import { GRAPH_FIXTURE } from "./fixtures/graph_cases";

const nodes = readNodes(new Float32Array(GRAPH_FIXTURE.nodes));
const edges = readEdges(new Float32Array(GRAPH_FIXTURE.edges));

describe("readNodes / readEdges", () => {
  it("read the kernel's tables column by column", () => {
    expect(nodes.length).toBe(9);
    expect(nodes[1]).toMatchObject({ row: 1, node: 1, kind: "feature", layer: 1, position: 2, index: 2 });
    expect(nodes[3]).toMatchObject({ node: 9, kind: "error", layer: 1, position: 2 });
    expect(nodes[4]).toMatchObject({ node: 10, kind: "token", layer: -1, position: 0 });
    expect(nodes[8]).toMatchObject({ node: 14, kind: "logit", layer: 2, index: 41 });
    expect(edges[edges.length - 1]).toMatchObject({ source: 1, target: 7, weight: 3 });
  });
});

describe("visibleAt", () => {
  it("shows what Python's visible_at shows at every threshold", () => {
    for (const c of GRAPH_FIXTURE.cases) {
      const shown = visibleAt(nodes, edges, c.threshold);
      expect({ threshold: c.threshold, nodes: shown.nodes }).toEqual({ threshold: c.threshold, nodes: c.nodes });
      expect({ threshold: c.threshold, edges: shown.edges }).toEqual({ threshold: c.threshold, edges: c.edges });
    }
  });
  it("always shows tokens and logits", () => {
    const shown = visibleAt(nodes, edges, 0.01);
    nodes.forEach((n, i) => {
      if (n.kind === "token" || n.kind === "logit") expect(shown.nodes[i]).toBe(true);
    });
  });
});

describe("layoutGraph", () => {
  it("puts tokens at the bottom, logits on top and positions left to right", () => {
    const layout = layoutGraph(nodes, 2, 3);
    const y = (kind: string): number[] => nodes.filter((n) => n.kind === kind).map((n) => layout.y[n.row]);
    expect(Math.min(...y("token"))).toBeGreaterThan(Math.max(...y("feature")));
    expect(Math.max(...y("logit"))).toBeLessThan(Math.min(...y("feature")));
    expect(layout.columnX[0]).toBeLessThan(layout.columnX[1]);
    expect(nodeRow({ kind: "error", layer: 1 }, 2)).toBe(2);
  });
  it("sizes features by influence and keeps nodes of one cell apart", () => {
    const layout = layoutGraph(nodes, 2, 3);
    expect(layout.r[1]).toBeGreaterThan(layout.r[2]); // node 1 (0.84) over node 2 (0.05)
    const cell = nodes.filter((n) => n.position === 2 && n.kind !== "token" && n.layer === 1);
    expect(new Set(cell.map((n) => layout.x[n.row])).size).toBe(cell.length);
  });
});

describe("edgeStroke", () => {
  it("scales by |weight| and colours by sign", () => {
    const strong = edgeStroke(-3, 3);
    const weak = edgeStroke(0.3, 3);
    expect(strong.width).toBeGreaterThan(weak.width);
    expect(strong.opacity).toBeGreaterThan(weak.opacity);
    expect(strong.color).not.toBe(weak.color);
  });
});

describe("layoutGraph logits", () => {
  it("spreads the logits over the top row in their order", () => {
    const layout = layoutGraph(nodes, 2, 3);
    const logits = nodes.filter((n) => n.kind === "logit");
    const xs = logits.map((n) => layout.x[n.row]);
    expect(xs[0]).toBeLessThan(xs[1]);
    expect(xs[1] - xs[0]).toBeGreaterThanOrEqual((layout.width - 2 * 28) / 2 - 1e-9);
  });
});
