/// <reference lib="webworker" />
/** Lays large graphs out off the page's thread (see `useLayout` in components/Graph.tsx). */
import { type LayoutInput, layOut } from './layout.ts';

self.onmessage = (event: MessageEvent<{ id: number; input: LayoutInput }>) => {
  self.postMessage({ id: event.data.id, layout: layOut(event.data.input) });
};
