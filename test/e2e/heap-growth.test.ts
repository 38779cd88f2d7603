/**
 * The real binary holds V8's heap at its size through Stackline's own bookkeeping and lets a step's
 * code size it as V8 would (lib/runtime/heap-growth.ts). The run's memory figures live in
 * `npm run bench` (bench/cli.ts); this guards the mechanism they rest on.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

const exec = promisify(execFile);
let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stackline-heap-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Runs test/fixtures/pipelines/heap-probe.ts (400 trivial steps, then one that allocates heavily). */
async function probe(env: Record<string, string> = {}) {
  const out = join(dir, `probe-${Object.keys(env).join('-') || 'default'}.json`);
  await exec(
    process.execPath,
    ['bin/stackline.js', 'run', 'test/fixtures/pipelines/heap-probe.ts', '--no-cache', '--json'],
    {
      env: { ...process.env, STACKLINE_HOME: join(dir, 'home'), HEAP_PROBE_OUT: out, NO_COLOR: '1', ...env },
      maxBuffer: 64 * 1024 * 1024,
    },
  );
  return JSON.parse(await readFile(out, 'utf8')) as { afterBookkeeping: number; afterUserCode: number };
}

describe('the heap through a run', () => {
  it('keeps the young generation at its starting size through 400 steps of bookkeeping, where V8 alone grows it', async () => {
    const held = await probe();
    const released = await probe({ STACKLINE_HOLD_HEAP: '0' });
    // V8 starts a semi-space at 1 MiB (2 MiB of new space); alone it had doubled it at least twice.
    expect(held.afterBookkeeping).toBeLessThanOrEqual(2 * 1024 * 1024);
    expect(released.afterBookkeeping).toBeGreaterThanOrEqual(4 * held.afterBookkeeping);
  }, 60_000);

  it("lets a step's own code grow it as V8 would", async () => {
    const held = await probe();
    expect(held.afterUserCode).toBeGreaterThanOrEqual(4 * held.afterBookkeeping);
  }, 60_000);
});
