import dagre, { type Point } from '@dagrejs/dagre';

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

/** Lays a directed graph out with dagre: top to bottom (or left to right), as data flows. */
export function layOut(input: LayoutInput): Layout {
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
  dagre.layout(g, large ? { disableOptimalOrderHeuristic: true } : {});
  const graph = g.graph();
  return {
    width: graph.width ?? 0,
    height: graph.height ?? 0,
    positions: new Map(input.nodes.map((n) => [n.id, { x: g.node(n.id).x, y: g.node(n.id).y }])),
    edges: g.edges().map((e) => ({ key: `${e.v}->${e.w}`, points: (g.edge(e).points ?? []) as Point[] })),
  };
}
