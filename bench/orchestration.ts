/**
 * Local orchestrator benchmarks: per-step orchestration overhead of `runPipelineLocally` on linear
 * pipelines of trivial steps, and the cost of a fully cached re-run.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { LocalArtifactStore } from '../lib/artifacts/local-artifact-store.ts';
import { MaterializerRegistry } from '../lib/artifacts/materializers.ts';
import { pipeline } from '../lib/dsl/pipeline.ts';
import { step } from '../lib/dsl/step.ts';
import type { StepContext } from '../lib/dsl/types.ts';
import { SqliteMetadataStore } from '../lib/metadata/sqlite/sqlite-metadata-store.ts';
import { type RunEvent, type RunResult, runPipelineLocally } from '../lib/runtime/local-orchestrator.ts';
import type { StepEnvironment } from '../lib/runtime/step-executor.ts';
import { type Benchmark, type BenchOptions, collectGarbage, type Metric, median, metric, percentile } from './stats.ts';

/** Per-step overhead target of the local orchestrator. */
const PER_STEP_TARGET_MS = 2;
/** Fully cached re-run of the 100-step pipeline. */
const CACHED_RERUN_TARGET_MS = 150;

// --- the pipeline under test ----------------------------------------------------------------

const source = step({ name: 'bench_source', outputs: { value: z.number() } }, () => ({ value: 0 }));
const increment = step(
  { name: 'bench_increment', inputs: { x: z.number() }, outputs: { value: z.number() } },
  ({ inputs }) => ({ value: inputs.x + 1 }),
);

/** `s0 → s1 → … → s<n-1>`: one source step, then one step definition invoked n-1 times. */
export function linearPipeline(steps: number) {
  return pipeline({ name: `bench_linear_${steps}` }, () => {
    let { value } = source({}, { id: 's0' });
    for (let i = 1; i < steps; i++) ({ value } = increment({ x: value }, { id: `s${i}` }));
  });
}

// --- environment ----------------------------------------------------------------------------

export interface BenchEnv extends StepEnvironment {
  dir: string;
  close(): Promise<void>;
}

/** A fresh local stack as `stackline` uses by default: SQLite file (WAL) + artifacts on disk. */
export async function createEnv(parent: string): Promise<BenchEnv> {
  await mkdir(parent, { recursive: true });
  const dir = await mkdtemp(join(parent, 'env-'));
  const metadata = SqliteMetadataStore.open(join(dir, 'metadata.db'));
  return {
    dir,
    metadata,
    artifacts: new LocalArtifactStore(join(dir, 'artifacts')),
    materializers: MaterializerRegistry.withBuiltins({ cacheDir: join(dir, 'materialized') }),
    async close() {
      await metadata.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

// --- measurements ---------------------------------------------------------------------------

interface TimedRun {
  totalMs: number;
  result: RunResult;
  /** Per step: step-started → step-finished (load inputs, call, store outputs, record). */
  execMs: number[];
  /** Per step after the first: previous step-finished → this step-finished (everything for one step). */
  intervalMs: number[];
  /** Process CPU time (user + system, all threads) during the run. */
  cpuMs: number;
}

async function timedRun(env: BenchEnv, steps: number, cache: boolean): Promise<TimedRun> {
  const p = linearPipeline(steps);
  const started = new Map<string, number>();
  const finished: number[] = [];
  const execMs: number[] = [];
  const onEvent = (event: RunEvent) => {
    if (event.type === 'step-started') started.set(event.stepId, performance.now());
    else if (event.type === 'step-finished') {
      const now = performance.now();
      finished.push(now);
      const start = started.get(event.stepId);
      if (start !== undefined) execMs.push(now - start);
    }
  };
  collectGarbage();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const result = await runPipelineLocally(p, env, { cache, onEvent });
  const totalMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  assert.equal(result.run.status, 'completed', `the ${steps}-step run did not complete`);
  assert.equal(result.steps.length, steps);
  const intervalMs = finished.slice(1).map((t, i) => t - finished[i]!);
  return { totalMs, result, execMs, intervalMs, cpuMs: (cpu.user + cpu.system) / 1000 };
}

/** The same step functions called directly in a loop: what the steps themselves cost. */
async function directCallsPerStepMs(steps: number): Promise<number> {
  const context = {} as StepContext;
  const calls = Math.max(200_000, steps);
  const chains = Math.ceil(calls / steps);
  collectGarbage();
  const t0 = performance.now();
  let last = 0;
  for (let c = 0; c < chains; c++) {
    let out = (await source.spec.fn({ inputs: {}, params: {}, context })) as { value: number };
    for (let i = 1; i < steps; i++) {
      out = (await increment.spec.fn({ inputs: { x: out.value }, params: {}, context })) as { value: number };
    }
    last = out.value;
  }
  const ms = performance.now() - t0;
  assert.equal(last, steps - 1);
  return ms / (chains * steps);
}

function sizesFor(quick: boolean): Array<{ steps: number; repetitions: number }> {
  return quick
    ? [
        { steps: 10, repetitions: 3 },
        { steps: 100, repetitions: 3 },
      ]
    : [
        { steps: 10, repetitions: 5 },
        { steps: 100, repetitions: 5 },
        { steps: 1000, repetitions: 3 },
      ];
}

async function warmUp(options: BenchOptions): Promise<void> {
  const env = await createEnv(options.tmpDir);
  try {
    await timedRun(env, 50, false);
    await timedRun(env, 50, true);
  } finally {
    await env.close();
  }
}

export const orchestrationBenchmark: Benchmark = {
  name: 'orchestration',
  description: 'per-step overhead of runPipelineLocally, linear pipeline of trivial steps, cache off',
  async run(options) {
    const metrics: Metric[] = [];
    const details: Record<string, unknown> = {};
    options.log('orchestration: warm-up');
    await warmUp(options);
    for (const { steps, repetitions } of sizesFor(options.quick)) {
      const runs: TimedRun[] = [];
      for (let r = 0; r < repetitions; r++) {
        options.log(`orchestration: ${steps} steps, run ${r + 1}/${repetitions}`);
        // A fresh stack each time: the realistic cost of a run, not of a growing database.
        const env = await createEnv(options.tmpDir);
        try {
          runs.push(await timedRun(env, steps, false));
        } finally {
          await env.close();
        }
      }
      const totals = runs.map((r) => r.totalMs);
      const perStep = totals.map((t) => t / steps);
      const exec = runs.flatMap((r) => r.execMs);
      const intervals = runs.flatMap((r) => r.intervalMs);
      const baseline = await directCallsPerStepMs(steps);
      const overhead = median(perStep);
      metrics.push(
        metric(`${steps} steps: total (median of ${repetitions})`, median(totals), 'ms'),
        metric(
          `${steps} steps: per-step overhead (total/steps)`,
          overhead,
          'ms',
          { op: '<', value: PER_STEP_TARGET_MS },
          steps === 10
            ? 'wall time of runPipelineLocally (cache off) on a fresh SQLite(WAL)+disk stack, divided by steps'
            : undefined,
        ),
        metric(`${steps} steps: per-step median (finished→finished)`, median(intervals), 'ms'),
        metric(`${steps} steps: per-step p95 (finished→finished)`, percentile(intervals, 95), 'ms'),
        metric(`${steps} steps: step exec median (started→finished)`, median(exec), 'ms'),
        metric(
          `${steps} steps: process CPU per step (user+sys)`,
          median(runs.map((r) => r.cpuMs / steps)),
          'ms',
          undefined,
          steps === 10
            ? 'CPU time of all threads (can exceed wall time); compare with tmpfs via --tmp /dev/shm'
            : undefined,
        ),
        metric(`${steps} steps: baseline direct call per step`, baseline * 1000, 'µs'),
        metric(`${steps} steps: overhead / baseline`, overhead / baseline, '×'),
      );
      if (steps >= 1000) {
        // Growth within a run would mean per-step work that scales with the run's size.
        const tenth = Math.floor(steps / 10);
        const head = runs.flatMap((r) => r.intervalMs.slice(0, tenth));
        const tail = runs.flatMap((r) => r.intervalMs.slice(-tenth));
        metrics.push(
          metric(`${steps} steps: per-step median, first ${tenth}`, median(head), 'ms'),
          metric(
            `${steps} steps: per-step median, last ${tenth}`,
            median(tail),
            'ms',
            undefined,
            'compare with the first tenth: growth means per-step cost depends on run size',
          ),
        );
      }
      details[`steps_${steps}`] = {
        totalsMs: totals,
        perStepMs: perStep,
        baselinePerStepMs: baseline,
        runSetupPlusFirstStepMs: runs.map((r) => r.totalMs - r.intervalMs.reduce((a, b) => a + b, 0)),
      };
    }
    return { metrics, details };
  },
};

export const cachedRerunBenchmark: Benchmark = {
  name: 'cached-rerun',
  description: 'fully cached re-run of the 100-step linear pipeline',
  async run(options) {
    const steps = 100;
    const repetitions = options.quick ? 3 : 5;
    await warmUp(options);
    const env = await createEnv(options.tmpDir);
    try {
      options.log('cached-rerun: first run (fills the cache)');
      const cold = await timedRun(env, steps, true);
      assert.ok(
        cold.result.steps.every((s) => s.stepRun?.status === 'completed'),
        'the first run should execute every step',
      );
      const totals: number[] = [];
      for (let r = 0; r < repetitions; r++) {
        options.log(`cached-rerun: re-run ${r + 1}/${repetitions}`);
        const rerun = await timedRun(env, steps, true);
        const notCached = rerun.result.steps.filter((s) => s.stepRun?.status !== 'cached').map((s) => s.node.id);
        assert.deepEqual(notCached, [], `re-run ${r + 1}: steps not served from the cache: ${notCached.join(', ')}`);
        totals.push(rerun.totalMs);
      }
      const rerunMs = median(totals);
      return {
        metrics: [
          metric(`first run, cache on (fills the cache)`, cold.totalMs, 'ms'),
          metric(
            `cached re-run: total (median of ${repetitions})`,
            rerunMs,
            'ms',
            { op: '<', value: CACHED_RERUN_TARGET_MS },
            `asserted: all ${steps} steps of every re-run were "cached"`,
          ),
          metric('cached re-run: per step', rerunMs / steps, 'ms'),
        ],
        details: { steps, coldMs: cold.totalMs, rerunsMs: totals },
      };
    } finally {
      await env.close();
    }
  },
};
