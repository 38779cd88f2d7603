import { describe, expect, it } from 'vitest';
import { crossings, LARGE_GRAPH, type LayoutInput, layOut, NODE_WIDTH } from '../../../dashboard/src/layout.ts';

const id = (i: number) => `s${i}`;
/** `layers` layers of `width` steps, each reading steps i and i+1 (wrapping) of the layer above. */
function layered(width: number, layers: number): LayoutInput {
  const n = width * layers;
  const upstream = (i: number) =>
    i < width ? [] : [...new Set([i - width, i - width - (i % width) + ((i + 1) % width)])];
  return {
    direction: 'TB',
    nodes: Array.from({ length: n }, (_, i) => ({ id: id(i), height: 52 })),
    edges: Array.from({ length: n }, (_, i) => upstream(i).map((u) => ({ from: id(u), to: id(i) }))).flat(),
  };
}

describe('the dashboard DAG layout', () => {
  it('lays graphs up to the large size out with dagre crossing minimisation, as before', () => {
    const input = layered(5, 6);
    expect(input.nodes.length).toBeLessThanOrEqual(LARGE_GRAPH);
    const layout = layOut(input);
    expect(layout).toEqual(layOut(input, true));
    expect(layout).not.toEqual(layOut(input, false));
  });

  it('lays large graphs out without the crossing sweeps: every node placed, none overlapping', () => {
    const input = layered(20, 10);
    expect(input.nodes.length).toBeGreaterThan(LARGE_GRAPH);
    const layout = layOut(input);
    expect(layout).toEqual(layOut(input, false));
    expect(layout.positions.size).toBe(input.nodes.length);
    expect(layout.edges).toHaveLength(input.edges.length);
    const rows = new Map<number, number[]>();
    for (const p of layout.positions.values()) rows.set(p.y, [...(rows.get(p.y) ?? []), p.x]);
    expect(rows.size).toBe(10);
    for (const xs of rows.values()) {
      const sorted = xs.sort((a, b) => a - b);
      for (let i = 1; i < sorted.length; i++) expect(sorted[i]! - sorted[i - 1]!).toBeGreaterThanOrEqual(NODE_WIDTH);
    }
    // The price: more crossings than dagre's sweeps leave.
    expect(crossings(layout, input)).toBeGreaterThan(crossings(layOut(input, true), input));
  });

  it('counts two edges between the same ranks that swap sides as one crossing', () => {
    const input: LayoutInput = {
      direction: 'TB',
      nodes: ['a', 'b', 'c', 'd'].map((n) => ({ id: n, height: 20 })),
      edges: [
        { from: 'a', to: 'd' },
        { from: 'b', to: 'c' },
      ],
    };
    const at = (x: number, y: number) => ({ x, y });
    const layout = {
      width: 0,
      height: 0,
      edges: [],
      positions: new Map([
        ['a', at(0, 0)],
        ['b', at(10, 0)],
        ['c', at(0, 50)],
        ['d', at(10, 50)],
      ]),
    };
    expect(crossings(layout, input)).toBe(1);
    layout.positions.set('c', at(20, 50));
    expect(crossings(layout, input)).toBe(0);
  });
});
