import dagre, { type Edge, type Point } from '@dagrejs/dagre';

export const NODE_WIDTH = 190;
/** Above this many nodes, rank with longest-path, keep dagre's first ordering of each layer, and lay out in a worker. */
export const LARGE_GRAPH = 150;

export interface LayoutInput {
  direction: 'TB' | 'LR';
  nodes: { id: string; height: number }[];
  edges: { from: string; to: string }[];
}

export interface Layout {
  width: number;
  height: number;
  positions: Map<string, Point>;
  edges: { key: string; points: Point[] }[];
}

/**
 * Lays a directed graph out with dagre: top to bottom (or left to right), as data flows.
 * `minimiseCrossings` overrides the size rule below (the bench compares both).
 */
export function layOut(input: LayoutInput, minimiseCrossings?: boolean): Layout {
  const large = input.nodes.length > LARGE_GRAPH;
  const g = new dagre.graphlib.Graph();
  g.setGraph({
    rankdir: input.direction,
    nodesep: 24,
    ranksep: 40,
    marginx: 8,
    marginy: 8,
    // Network simplex (dagre's default ranker) grows steeply: minutes for 1,000 steps, where
    // longest-path takes seconds (see `npm run bench`). Small graphs keep the tidier ranking.
    ...(large ? { ranker: 'longest-path' } : {}),
  });
  g.setDefaultEdgeLabel(() => ({}));
  for (const n of input.nodes) g.setNode(n.id, { width: NODE_WIDTH, height: n.height });
  for (const e of input.edges) if (g.hasNode(e.from) && g.hasNode(e.to)) g.setEdge(e.from, e.to);
  // Crossing minimisation (sweeps until four rounds bring no gain) is half of a large graph's
  // layout time: large graphs keep dagre's initial depth-first order of each layer instead.
  dagre.layout(g, { disableOptimalOrderHeuristic: !(minimiseCrossings ?? !large) });
  const graph = g.graph();
  return {
    width: graph.width ?? 0,
    height: graph.height ?? 0,
    positions: new Map(input.nodes.map((n) => [n.id, { x: g.node(n.id).x, y: g.node(n.id).y }])),
    edges: g.edges().map((e: Edge) => ({ key: `${e.v}->${e.w}`, points: (g.edge(e).points ?? []) as Point[] })),
  };
}

/** Pairs of edges between the same two ranks that cross (for graphs whose edges span one rank). */
export function crossings(layout: Layout, input: LayoutInput): number {
  const byRank = new Map<number, [number, number][]>();
  for (const e of input.edges) {
    const from = layout.positions.get(e.from);
    const to = layout.positions.get(e.to);
    if (!from || !to) continue;
    const rank = byRank.get(from.y) ?? byRank.set(from.y, []).get(from.y)!;
    rank.push([from.x, to.x]);
  }
  let count = 0;
  for (const edges of byRank.values())
    for (let a = 0; a < edges.length; a++)
      for (let b = a + 1; b < edges.length; b++)
        if ((edges[a]![0] - edges[b]![0]) * (edges[a]![1] - edges[b]![1]) < 0) count++;
  return count;
}
