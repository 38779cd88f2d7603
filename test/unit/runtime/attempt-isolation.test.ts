import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { loadArtifactVersion } from '../../../lib/artifacts/load-artifact.ts';
import { step } from '../../../lib/index.ts';
import { runPipelineLocally } from '../../../lib/runtime/local-orchestrator.ts';
import { echoPipeline, refusesPipeline, stubbornPipeline } from '../../fixtures/isolation/stubborn-steps.ts';
import { createLocalTestEnv, type LocalTestEnv } from '../../support/local-env.ts';

// Each isolated attempt starts a worker thread that imports the step's module (through tsx here):
// a second or two per attempt on this machine, hence the timeouts.
let env: LocalTestEnv;
let sideDir: string;
beforeEach(async () => {
  env = await createLocalTestEnv();
  sideDir = mkdtempSync(join(tmpdir(), 'stackline-side-'));
});
afterEach(async () => {
  await env.cleanup();
  rmSync(sideDir, { recursive: true, force: true });
});

describe("isolation: 'worker' (the hard stop)", () => {
  it('a timed-out attempt that ignores its signal stops executing: no log, metadata, scratch or side-file write after its timeout', async () => {
    const busyMs = 2500;
    // The parent's event loop (which renews the lease) keeps turning while the step's thread is
    // busy: had the busy loop run on it, one gap would last the whole loop.
    let last = performance.now();
    let longestGap = 0;
    const ticker = setInterval(() => {
      const now = performance.now();
      longestGap = Math.max(longestGap, now - last);
      last = now;
    }, 50);
    const result = await runPipelineLocally(stubbornPipeline, env, { params: { sideDir, busyMs } }).finally(() =>
      clearInterval(ticker),
    );
    expect(longestGap).toBeLessThan(busyMs);
    // Past the moment the first attempt would have written (busy loop + its 100 ms timer), with margin.
    await sleep(busyMs + 500);

    expect(result.run.status).toBe('completed');
    const [stepRun] = await env.metadata.runs.listSteps(result.run.id);
    expect(stepRun).toMatchObject({ status: 'completed', attempts: 2 });
    expect(stepRun!.logs).toContain('attempt 2 ran');
    expect(stepRun!.logs).not.toContain('late line from attempt 1');
    expect(stepRun!.metadata).toMatchObject({ attempt2: true });
    expect(stepRun!.metadata).not.toHaveProperty('late');
    expect(stepRun!.metadata).not.toHaveProperty('attempt1');

    // The side file the first attempt would write after its timeout was never written.
    expect(existsSync(join(sideDir, 'late'))).toBe(false);
    // Each attempt had its own scratch directory; the timed-out one's is gone and stays gone.
    const scratch1 = readFileSync(join(sideDir, 'attempt1-scratch'), 'utf8');
    const scratch2 = readFileSync(join(sideDir, 'attempt2-scratch'), 'utf8');
    expect(scratch1).not.toBe(scratch2);
    expect(existsSync(scratch1)).toBe(false);
    expect(existsSync(scratch2)).toBe(false);

    const output = await env.metadata.artifacts.getVersion('stubborn.attempt');
    expect(output.version).toBe(1);
    expect(await loadArtifactVersion(env.materializers, output, env.artifacts)).toBe(2);
  }, 30_000);

  it('cancelling the run terminates a running isolated attempt', async () => {
    const controller = new AbortController();
    const running = runPipelineLocally(stubbornPipeline, env, {
      params: { sideDir, busyMs: 1500 },
      signal: controller.signal,
    });
    while (!existsSync(join(sideDir, 'attempt1-scratch'))) await sleep(20);
    controller.abort();
    const result = await running;
    await sleep(2000);

    expect(result.run.status).toBe('cancelled');
    expect(existsSync(join(sideDir, 'late'))).toBe(false);
    expect(existsSync(readFileSync(join(sideDir, 'attempt1-scratch'), 'utf8'))).toBe(false);
    expect(readdirSync(sideDir)).toEqual(['attempt1-scratch']);
  }, 30_000);

  it('inputs and outputs cross the worker boundary intact, and context calls reach the parent', async () => {
    const result = await runPipelineLocally(echoPipeline, env);

    expect(result.run.status).toBe('completed');
    const echo = (await env.metadata.runs.listSteps(result.run.id)).find((s) => s.stepId === 'isolated_echo')!;
    expect(echo.logs).toEqual(['got 5 bytes']);
    expect(echo.metadata).toMatchObject({ isBuffer: true, modelFound: false, promoteRefusedAs: 'NotFoundError' });
    const bytes = await env.metadata.artifacts.getVersion('isolated_echo.bytes');
    expect(await loadArtifactVersion(env.materializers, bytes, env.artifacts)).toEqual(Buffer.from('hello world'));
    const total = await env.metadata.artifacts.getVersion('isolated_echo.total');
    expect(total.metadata).toEqual({ rows: 3 });
    expect(await loadArtifactVersion(env.materializers, total, env.artifacts)).toBe(6);
  }, 30_000);

  it('refuses an unknown isolation value when the step is defined', () => {
    expect(() =>
      step({ name: 'odd', outputs: { x: z.number() }, isolation: 'thread' as never }, () => ({ x: 1 })),
    ).toThrow(/Step "odd": isolation must be 'in-process' or 'worker' \(got "thread"\)/);
  });

  it('an error thrown in the worker keeps its class: a NonRetriableError is not retried', async () => {
    const result = await runPipelineLocally(refusesPipeline, env);

    expect(result.run.status).toBe('failed');
    const [stepRun] = await env.metadata.runs.listSteps(result.run.id);
    expect(stepRun).toMatchObject({ status: 'failed', attempts: 1 });
    expect(stepRun!.error).toMatchObject({ type: 'NonRetriableError', message: 'refused on purpose' });
  }, 30_000);
});
