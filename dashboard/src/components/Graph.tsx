import dagre, { type Point } from '@dagrejs/dagre';
import { useMemo } from 'react';

export interface GraphNode {
  id: string;
  /** First line, bold. */
  title: string;
  /** Further lines. */
  lines: string[];
  /** CSS class: the status colour. */
  className: string;
  selected?: boolean;
}
export interface GraphEdge {
  from: string;
  to: string;
}

const NODE_WIDTH = 190;
const LINE_HEIGHT = 15;
/** Above this many nodes, rank with longest-path and keep dagre's first ordering of each layer. */
const LARGE_GRAPH = 150;

const nodeHeight = (n: GraphNode) => 22 + LINE_HEIGHT * n.lines.length;

interface Layout {
  width: number;
  height: number;
  positions: Map<string, Point>;
  edges: { key: string; points: Point[] }[];
}

/**
 * What the layout depends on: node ids and heights, edges, direction. Selecting a node or
 * recolouring one by status changes none of it, so neither lays the graph out again.
 */
function layoutKey(nodes: GraphNode[], edges: GraphEdge[], direction: string): string {
  return JSON.stringify([direction, nodes.map((n) => [n.id, n.lines.length]), edges.map((e) => [e.from, e.to])]);
}

function layOut(nodes: GraphNode[], edges: GraphEdge[], direction: 'TB' | 'LR'): Layout {
  const large = nodes.length > LARGE_GRAPH;
  const g = new dagre.graphlib.Graph();
  g.setGraph({
    rankdir: direction,
    nodesep: 24,
    ranksep: 40,
    marginx: 8,
    marginy: 8,
    // Network simplex (dagre's default ranker) grows steeply: minutes for 1,000 steps, where
    // longest-path takes seconds (see `npm run bench`). Small graphs keep the tidier ranking.
    ...(large ? { ranker: 'longest-path' } : {}),
  });
  g.setDefaultEdgeLabel(() => ({}));
  for (const n of nodes) g.setNode(n.id, { width: NODE_WIDTH, height: nodeHeight(n) });
  for (const e of edges) if (g.hasNode(e.from) && g.hasNode(e.to)) g.setEdge(e.from, e.to);
  // Crossing minimisation (sweeps until four rounds bring no gain) is half of a large graph's
  // layout time: large graphs keep dagre's initial depth-first order of each layer instead.
  dagre.layout(g, large ? { disableOptimalOrderHeuristic: true } : {});
  const graph = g.graph();
  return {
    width: graph.width ?? 0,
    height: graph.height ?? 0,
    positions: new Map(nodes.map((n) => [n.id, g.node(n.id)])),
    edges: g.edges().map((e) => ({ key: `${e.v}->${e.w}`, points: (g.edge(e).points ?? []) as Point[] })),
  };
}

/**
 * A directed graph laid out by dagre (top to bottom, as data flows) and drawn as SVG: one box per
 * node, one path per edge. Layout runs once per graph shape, not per render
 * or selection.
 */
export function Graph(props: {
  nodes: GraphNode[];
  edges: GraphEdge[];
  onSelect?: (id: string) => void;
  label: string;
  direction?: 'TB' | 'LR';
}) {
  const direction = props.direction ?? 'TB';
  const key = layoutKey(props.nodes, props.edges, direction);
  // biome-ignore lint/correctness/useExhaustiveDependencies: `key` stands for nodes, edges and direction
  const layout = useMemo(() => layOut(props.nodes, props.edges, direction), [key]);

  return (
    <svg
      className="graph"
      role="img"
      aria-label={props.label}
      width={layout.width}
      height={layout.height}
      viewBox={`0 0 ${layout.width} ${layout.height}`}
    >
      <defs>
        <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" orient="auto">
          <path d="M0,0 L10,5 L0,10 z" fill="#8a94a6" />
        </marker>
      </defs>
      {layout.edges.map((e) => (
        <path
          key={e.key}
          className="edge"
          markerEnd="url(#arrow)"
          d={e.points.map((p, i) => `${i === 0 ? 'M' : 'L'}${p.x},${p.y}`).join(' ')}
        />
      ))}
      {props.nodes.map((n) => {
        const p = layout.positions.get(n.id);
        if (!p) return null;
        const height = nodeHeight(n);
        return (
          // biome-ignore lint/a11y/useSemanticElements: an SVG group cannot be a <button>
          <g
            key={n.id}
            data-node={n.id}
            className={`node ${n.className}${n.selected ? ' selected' : ''}`}
            transform={`translate(${p.x - NODE_WIDTH / 2},${p.y - height / 2})`}
            onClick={() => props.onSelect?.(n.id)}
            onKeyDown={(e) => e.key === 'Enter' && props.onSelect?.(n.id)}
            role="button"
            tabIndex={0}
          >
            <rect width={NODE_WIDTH} height={height} rx={6} />
            <text x={8} y={16} className="title">
              {n.title}
            </text>
            {n.lines.map((line, i) => (
              <text key={line} x={8} y={16 + LINE_HEIGHT * (i + 1)}>
                {line}
              </text>
            ))}
          </g>
        );
      })}
    </svg>
  );
}
