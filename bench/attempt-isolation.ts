/**
 * What the hard stop costs: a one-step run whose step runs in-process against the same step with
 * `isolation: 'worker'` (a worker thread per attempt that imports this module again). Reported as
 * a ratio against the in-process run measured in the same process.
 */
import assert from 'node:assert/strict';
import { z } from 'zod';
import { pipeline } from '../lib/dsl/pipeline.ts';
import { step } from '../lib/dsl/step.ts';
import { runPipelineLocally } from '../lib/runtime/local-orchestrator.ts';
import { createEnv } from './orchestration.ts';
import { type Benchmark, median, metric } from './stats.ts';

const config = { outputs: { value: z.number() }, parameters: z.object({ n: z.number() }) } as const;
const inProcess = step({ name: 'bench_in_process', ...config }, ({ params }) => ({ value: params.n + 1 }));
const isolated = step({ name: 'bench_isolated', ...config, isolation: 'worker' }, ({ params }) => ({
  value: params.n + 1,
}));
const inProcessPipeline = pipeline(
  { name: 'bench_in_process', parameters: z.object({ n: z.number() }) },
  ({ n }) => void inProcess({}, { params: { n } }),
);
const isolatedPipeline = pipeline(
  { name: 'bench_isolated', parameters: z.object({ n: z.number() }) },
  ({ n }) => void isolated({}, { params: { n } }),
);

export const attemptIsolationBenchmark: Benchmark = {
  name: 'isolation',
  description: "one-step run: in-process step vs isolation: 'worker' (thread start + module import per attempt)",
  async run({ quick, tmpDir, log }) {
    const env = await createEnv(tmpDir);
    const runs = quick ? 3 : 10;
    const time = async (p: typeof inProcessPipeline, n: number) => {
      const started = performance.now();
      const { run } = await runPipelineLocally(p, env, { params: { n }, cache: false });
      assert.equal(run.status, 'completed');
      return performance.now() - started;
    };
    try {
      await time(inProcessPipeline, -1);
      const plain: number[] = [];
      const worker: number[] = [];
      for (let i = 0; i < runs; i++) {
        log(`isolation: run ${i + 1}/${runs}`);
        plain.push(await time(inProcessPipeline, i));
        worker.push(await time(isolatedPipeline, i));
      }
      const plainMs = median(plain);
      const workerMs = median(worker);
      return {
        metrics: [
          metric('in-process run (median)', plainMs, 'ms'),
          metric("isolation: 'worker' run (median)", workerMs, 'ms'),
          metric('worker / in-process', workerMs / plainMs, '×', undefined, 'the price of the hard stop, per attempt'),
        ],
        details: { plain, worker },
      };
    } finally {
      await env.close();
    }
  },
};
