import { useEffect, useMemo, useRef, useState } from 'react';
import { LARGE_GRAPH, type Layout, type LayoutInput, layOut, NODE_WIDTH } from '../layout.ts';

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

const LINE_HEIGHT = 15;

const nodeHeight = (n: GraphNode) => 22 + LINE_HEIGHT * n.lines.length;

/**
 * What the layout depends on: node ids and heights, edges, direction. Selecting a node or
 * recolouring one by status changes none of it, so neither lays the graph out again.
 */
function layoutInput(nodes: GraphNode[], edges: GraphEdge[], direction: 'TB' | 'LR'): LayoutInput {
  return {
    direction,
    nodes: nodes.map((n) => ({ id: n.id, height: nodeHeight(n) })),
    edges: edges.map((e) => ({ from: e.from, to: e.to })),
  };
}

let worker: Worker | undefined;
let requests = 0;
const waiting = new Map<number, (layout: Layout) => void>();

/** Lays a large graph out in a Web Worker, so the page around it renders and responds meanwhile. */
function layOutInWorker(id: number, input: LayoutInput): Promise<Layout> {
  if (!worker) {
    worker = new Worker(new URL('../layout-worker.ts', import.meta.url), { type: 'module' });
    worker.onmessage = (event: MessageEvent<{ id: number; layout: Layout }>) => {
      waiting.get(event.data.id)?.(event.data.layout);
      waiting.delete(event.data.id);
    };
  }
  return new Promise((resolve) => {
    waiting.set(id, resolve);
    worker?.postMessage({ id, input });
  });
}

const EMPTY: Layout = { width: 0, height: 0, positions: new Map(), edges: [] };

/**
 * The graph's layout: computed here for small graphs, in a worker for large ones. While a large
 * graph's new shape is being laid out, the last layout stays drawn (`current` false); before the
 * first, nothing is.
 */
function useLayout(input: LayoutInput): { layout: Layout; current: boolean } {
  const key = JSON.stringify(input);
  const large = input.nodes.length > LARGE_GRAPH && typeof Worker !== 'undefined';
  // biome-ignore lint/correctness/useExhaustiveDependencies: `key` stands for the input
  const sync = useMemo(() => (large ? undefined : layOut(input)), [key, large]);
  const [done, setDone] = useState<{ key: string; layout: Layout; request: number }>();
  const mounted = useRef(true);
  useEffect(() => {
    mounted.current = true;
    return () => {
      mounted.current = false;
    };
  }, []);
  // An older shape's layout that lands after a newer one was asked for is still drawn (the nodes
  // are the same or nearly so) until the newer one lands: first render does not wait for both.
  // biome-ignore lint/correctness/useExhaustiveDependencies: `key` stands for the input
  useEffect(() => {
    if (!large) return;
    const request = ++requests;
    layOutInWorker(request, input).then((layout) => {
      if (mounted.current) setDone((last) => (last && last.request > request ? last : { key, layout, request }));
    });
  }, [key, large]);
  if (sync) return { layout: sync, current: true };
  return { layout: done?.layout ?? EMPTY, current: done?.key === key };
}

/**
 * A directed graph laid out by dagre (top to bottom, as data flows) and drawn as SVG: one box per
 * node, one path per edge. Layout runs once per graph shape, not per render or selection; large
 * graphs are laid out in a worker while the rest of the page is already there.
 */
export function Graph(props: {
  nodes: GraphNode[];
  edges: GraphEdge[];
  onSelect?: (id: string) => void;
  label: string;
  direction?: 'TB' | 'LR';
}) {
  const direction = props.direction ?? 'TB';
  const { layout, current } = useLayout(layoutInput(props.nodes, props.edges, direction));

  return (
    <>
      {!current && (
        <p className="muted" data-testid="graph-pending">
          Laying out {props.nodes.length.toLocaleString('en')} nodes…
        </p>
      )}
      <svg
        className="graph"
        role="img"
        aria-label={props.label}
        aria-busy={!current}
        data-layout={current ? 'current' : 'pending'}
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
    </>
  );
}
