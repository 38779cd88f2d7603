/**
 * When Stackline holds V8's heap (lib/runtime/heap-growth.ts), and what holding does, measured in a
 * fresh Node process (the flags are process-wide, so the test's own process is left alone).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { holdHeapGrowth } from '../../../lib/runtime/heap-growth.ts';

const exec = promisify(execFile);
const MODULE = pathToFileURL(resolve('lib/runtime/heap-growth.ts')).href;

// Bookkeeping-like work outside any step: objects that live across a few scavenges and then die,
// next to a live set in the old generation; then the same work as a step's code.
const SCRIPT = `
import { getHeapSpaceStatistics } from 'node:v8';
import { PerformanceObserver, constants } from 'node:perf_hooks';
const { holdHeapGrowth, asUserCode } = await import(${JSON.stringify(MODULE)});
const size = (name) => getHeapSpaceStatistics().find((s) => s.space_name === name).space_size;
let fullCollections = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) if (e.detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) fullCollections++;
}).observe({ entryTypes: ['gc'] });
const held = holdHeapGrowth({ STACKLINE_HOLD_HEAP: process.argv[2] }, []);
const churn = () => {
  let keep = [];
  for (let i = 0; i < 600_000; i++) {
    keep.push({ i, s: 'x' + i });
    if (keep.length > 30_000) keep = [];
  }
};
const live = Array.from({ length: 200_000 }, (_, i) => ({ i, s: 'live' + i }));
churn();
const young = size('new_space');
await new Promise((done) => setTimeout(done, 20)); // GC entries reach the observer a tick later
const collections = fullCollections;
const userYoung = await asUserCode(async () => { churn(); return size('new_space'); });
console.log(JSON.stringify({ held, young, userYoung, fullCollections: collections, live: live.length }));
`;

let dir: string;
let script: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stackline-heap-unit-'));
  script = join(dir, 'probe.mjs');
  await writeFile(script, SCRIPT);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function measure(hold: '1' | '0') {
  const { stdout } = await exec(process.execPath, ['--import', 'tsx', script, hold]);
  return JSON.parse(stdout) as { held: boolean; young: number; userYoung: number; fullCollections: number };
}

describe('holdHeapGrowth', () => {
  it('keeps the young generation small and collects the old one sooner, outside step code only', async () => {
    const held = await measure('1');
    const released = await measure('0');
    expect([held.held, released.held]).toEqual([true, false]);
    expect(released.young).toBeGreaterThanOrEqual(4 * held.young);
    // The old generation grows to 1.2 × what survived before the next full collection.
    expect(held.fullCollections).toBeGreaterThan(released.fullCollections);
    // Inside asUserCode V8 sizes it as usual.
    expect(held.userYoung).toBeGreaterThanOrEqual(4 * held.young);
  }, 60_000);

  it('leaves the heap to V8 when the user sized it, opted out, or the V8 is not one it knows', () => {
    expect(holdHeapGrowth({ STACKLINE_HOLD_HEAP: '0' }, [])).toBe(false);
    expect(holdHeapGrowth({ NODE_OPTIONS: '--max-semi-space-size=64' }, [])).toBe(false);
    expect(holdHeapGrowth({}, ['--heap-growing-percent=50'])).toBe(false);
    expect(holdHeapGrowth({}, [], '14.1.146.1')).toBe(false);
  });
});
