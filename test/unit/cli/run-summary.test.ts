import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { summarizeRun, writeRunSummary } from '../../../lib/cli/commands/run.ts';
import { type CliIo, printJson } from '../../../lib/cli/io.ts';
import { pipeline, step } from '../../../lib/index.ts';
import { explainRun, explainStepRuns } from '../../../lib/runtime/explain.ts';
import { type RunResult, runPipelineLocally } from '../../../lib/runtime/local-orchestrator.ts';
import { createLocalTestEnv, type LocalTestEnv } from '../../support/local-env.ts';

let env: LocalTestEnv;
beforeEach(async () => {
  env = await createLocalTestEnv();
});
afterEach(async () => {
  await env.cleanup();
});

function capture() {
  const writes: string[] = [];
  const io: CliIo = {
    stdout: { write: (t: string) => writes.push(t) },
    stderr: { write: () => true },
    cwd: '/',
    env: {},
  };
  return { io, writes, text: () => writes.join('') };
}

const first = step({ name: 'first', outputs: { n: z.number() } }, () => ({ n: 1 }));
const next = step({ name: 'next', inputs: { n: z.number() }, outputs: { n: z.number() } }, ({ inputs }) => ({
  n: inputs.n + 1,
}));
const fails = step({ name: 'fails', inputs: { n: z.number() }, outputs: { n: z.number() } }, () => {
  throw new Error('no: "quoted"\nand a second line');
});

describe('stackline run --json, written one step at a time', () => {
  it('prints exactly what the whole summary printed at once would, across write chunks', async () => {
    // ~700 bytes a step: 200 steps cross the 64 KiB chunks the writer flushes.
    const long = pipeline({ name: 'long_summary' }, () => {
      let { n } = first();
      for (let i = 1; i < 200; i++) ({ n } = next({ n }, { id: `next_${i}` }));
    });
    const result = await runPipelineLocally(long, env, { cache: false });
    const explanations = await explainStepRuns(
      env.metadata,
      result.run,
      result.steps.flatMap((s) => (s.stepRun ? [s.stepRun] : [])),
    );
    const whole = capture();
    printJson(whole.io, summarizeRun(result, explanations));
    const streamed = capture();
    await writeRunSummary(streamed.io, result, env.metadata);
    expect(streamed.text()).toBe(whole.text());
    expect(streamed.writes.length).toBeGreaterThan(1);
    expect(JSON.parse(streamed.text()).steps).toHaveLength(200);
    // A run that kept no step results: the same summary, read back from the store in batches.
    const bare = { run: result.run, steps: result.steps.map(({ node }) => ({ node })) };
    const fromStore = capture();
    await writeRunSummary(fromStore.io, bare, env.metadata, { fromStore: true });
    expect(fromStore.text()).toBe(whole.text());
  });

  it('waits for a full stream to drain instead of queueing the whole summary', async () => {
    const long = pipeline({ name: 'slow_reader_summary' }, () => {
      let { n } = first();
      for (let i = 1; i < 400; i++) ({ n } = next({ n }, { id: `next_${i}` }));
    });
    const result = await runPipelineLocally(long, env, { cache: false });
    const received: Buffer[] = [];
    let mostQueued = 0;
    const slow = new Writable({
      highWaterMark: 1024,
      write(chunk: Buffer, _encoding, done) {
        received.push(chunk);
        setTimeout(done, 1);
      },
    });
    const io: CliIo = { stdout: slow, stderr: { write: () => true }, cwd: '/', env: {} };
    const write = slow.write.bind(slow);
    slow.write = ((text: string) => {
      const ok = write(text);
      mostQueued = Math.max(mostQueued, slow.writableLength);
      return ok;
    }) as typeof slow.write;
    await writeRunSummary(io, result, env.metadata);
    await new Promise((resolve) => slow.end(resolve));
    const whole = capture();
    printJson(whole.io, summarizeRun(result, await explainRun(env.metadata, result.run.id)));
    expect(Buffer.concat(received).toString()).toBe(whole.text());
    // One chunk (64 KiB and one step) at most, not the ~140 KB summary.
    expect(mostQueued).toBeLessThan(70 * 1024);
    expect(whole.text().length).toBeGreaterThan(2 * 70 * 1024);
  });

  it('matches for a failed run with a step that never ran, and for a run without steps', async () => {
    const broken = pipeline({ name: 'broken_summary' }, () => {
      const { n } = first();
      const { n: m } = fails({ n });
      next({ n: m });
    });
    const result = await runPipelineLocally(broken, env, { cache: false });
    expect(result.run.status).toBe('failed');
    const explanations = await explainRun(env.metadata, result.run.id);
    const bare: RunResult = { run: result.run, steps: result.steps.map(({ node }) => ({ node })) };
    const cases: Array<[RunResult, boolean]> = [
      [result, false],
      [bare, true],
      [{ run: result.run, steps: [] }, false],
    ];
    for (const [r, fromStore] of cases) {
      const whole = capture();
      printJson(whole.io, summarizeRun(r === bare ? result : r, explanations));
      const streamed = capture();
      await writeRunSummary(streamed.io, r, env.metadata, { fromStore });
      expect(streamed.text()).toBe(whole.text());
    }
  });
});

describe("a long run's explanations", () => {
  it("look up each batch's steps in the earlier run by key, never reading its whole step list", async () => {
    const seeded = step(
      { name: 'seeded', parameters: z.object({ start: z.number() }), outputs: { n: z.number() } },
      ({ params }) => ({ n: params.start }),
    );
    const long = pipeline({ name: 'long_explained', parameters: z.object({ start: z.number() }) }, ({ start }) => {
      let { n } = seeded({}, { params: { start } });
      for (let i = 1; i < 250; i++) ({ n } = next({ n }, { id: `next_${i}` }));
    });
    const before = await runPipelineLocally(long, env, { params: { start: 1 } });
    const after = await runPipelineLocally(long, env, { params: { start: 1000 }, keepResults: false });
    const calls = { listSteps: 0, latestSteps: 0 };
    const runs = new Proxy(env.metadata.runs, {
      get(target, key, receiver) {
        const value = Reflect.get(target, key, receiver);
        if (key === 'listSteps' || key === 'latestSteps') calls[key]++;
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const metadata = new Proxy(env.metadata, {
      get: (target, key, receiver) => (key === 'runs' ? runs : Reflect.get(target, key, receiver)),
    });
    const out = capture();
    await writeRunSummary(out.io, after, metadata, { fromStore: true });
    const steps = JSON.parse(out.text()).steps;
    expect(steps).toHaveLength(250);
    // Every step missed, each compared with its own step run in the earlier run.
    expect(new Set(steps.map((s: { explain: { verdict: string } }) => s.explain.verdict))).toEqual(
      new Set(['changed']),
    );
    expect(
      new Set(steps.map((s: { explain: { comparedWith: { runId: string } } }) => s.explain.comparedWith.runId)),
    ).toEqual(new Set([before.run.id]));
    expect(steps[0].explain.summary).toBe(`miss since run ${before.run.id}: parameter start: 1 → 1000`);
    // Three batches of 100: each reads its own steps' results, then their counterparts earlier.
    expect(calls).toEqual({ listSteps: 0, latestSteps: 6 });
  });
});
