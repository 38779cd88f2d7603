/**
 * AWS requests (S3 + DynamoDB) per executed step on the emulator (moto, started here), counted by
 * an SDK middleware on the clients: linear pipelines of 10, 100 and 1,000 steps run by the local
 * orchestrator on AWS stores and by the step runner (invoked in-process as the state machine's
 * Task states invoke it, in one warm container and with a cold container per invocation), and a
 * 1,000-item fan-out spread over 16 containers. The target is a constant cost per step, at most 5.
 *
 * Each measurement gets fresh tables, so one run's records do not slow the next on the emulator
 * (moto scans a whole table for an index query). With a cold container per invocation, the
 * 1,000-step figure counts steps 991–1,000 only (the 990 before them run uncounted in a warm
 * container): what "constant per step" means, at a fraction of the emulator time.
 */

import { handleStepRunnerRequest } from '../lib/runtime/step-runner.ts';
import {
  type CountedAwsStack,
  countFanOut,
  countLocalRun,
  countStepRunnerRun,
  createCountedAwsStack,
  linearRequestPipeline,
} from '../test/support/aws-request-counter.ts';
import { startMoto } from '../test/support/moto.ts';
import { type Benchmark, type Metric, metric, type Target } from './stats.ts';

const PER_STEP_TARGET: Target = { op: '<=', value: 5 };
const NO_CONFLICTS: Target = { op: '<=', value: 0 };
/** Cold containers at this size and above: count the last steps only. */
const COLD_SUBSET_FROM = 1000;
const COLD_SUBSET_STEPS = 10;

type Mode = 'local orchestrator' | 'step runner, warm container' | 'step runner, cold container per step';

async function count(stack: CountedAwsStack, mode: Mode, steps: number) {
  if (mode === 'local orchestrator') return countLocalRun(stack, steps);
  if (mode === 'step runner, warm container') return countStepRunnerRun(stack, steps);
  return countStepRunnerRun(stack, steps, {
    cold: true,
    ...(steps >= COLD_SUBSET_FROM ? { lastSteps: COLD_SUBSET_STEPS } : {}),
  });
}

export const awsRequestsBenchmark: Benchmark = {
  name: 'aws-requests',
  description: 'S3 + DynamoDB requests per executed step on moto: linear runs of 10–1,000 steps, a 1,000-item fan-out',
  async run({ quick, log }) {
    const sizes = quick ? [10, 30] : [10, 100, 1000];
    const fanOutItems = quick ? 100 : 1000;
    const containers = 16;
    const moto = await startMoto();
    const metrics: Metric[] = [];
    const details: Record<string, unknown> = {};
    /** Runs `measure` on fresh tables and a fresh bucket. */
    const fresh = async <T>(measure: (stack: CountedAwsStack) => Promise<T>): Promise<T> => {
      const stack = await createCountedAwsStack(moto.endpoint, []);
      try {
        return await measure(stack);
      } finally {
        await stack.close();
      }
    };
    try {
      const modes: Mode[] = [
        'local orchestrator',
        'step runner, warm container',
        'step runner, cold container per step',
      ];
      for (const mode of modes) {
        const totals: Array<{ steps: number; total: number }> = [];
        for (const steps of sizes) {
          const subset = mode === 'step runner, cold container per step' && steps >= COLD_SUBSET_FROM;
          log(`${mode}: ${steps} steps${subset ? ` (counting steps ${steps - COLD_SUBSET_STEPS + 1}–${steps})` : ''}`);
          const started = performance.now();
          const result = await fresh((stack) => count(stack, mode, steps));
          // The local orchestrator renews its run's lease every heartbeat interval (UpdateItem):
          // a cost per minute of emulator time, not per step. Finishing the run is the one other UpdateItem.
          const renewals =
            mode === 'local orchestrator' ? Math.max(0, (result.byOperation['dynamodb:UpdateItem'] ?? 0) - 1) : 0;
          const total = result.dynamodb + result.s3 - renewals;
          details[`${mode} ${steps}`] = { ...result, seconds: Math.round((performance.now() - started) / 100) / 10 };
          const split =
            `${((result.dynamodb - renewals) / result.steps).toFixed(2)} DynamoDB + ${(result.s3 / result.steps).toFixed(2)} S3` +
            (renewals > 0 ? ` (${renewals} lease renewals not counted)` : '');
          if (subset) {
            metrics.push(
              metric(
                `${mode}, ${steps} steps: each of steps ${steps - COLD_SUBSET_STEPS + 1}–${steps}`,
                total / result.steps,
                'requests/step',
                undefined,
                `${split}; the steps before run uncounted in a warm container (emulator time)`,
              ),
            );
            continue;
          }
          totals.push({ steps, total });
          metrics.push(
            metric(
              `${mode}, ${steps} steps: all requests ÷ steps`,
              total / steps,
              'requests/step',
              undefined,
              `${split}, creating and finishing the run included`,
            ),
          );
        }
        const first = totals[0]!;
        const last = totals.at(-1)!;
        metrics.push(
          metric(
            `${mode}: each executed step (steps ${first.steps + 1}–${last.steps})`,
            (last.total - first.total) / (last.steps - first.steps),
            'requests/step',
            mode === 'step runner, cold container per step' ? undefined : PER_STEP_TARGET,
            'what one more step costs; the run itself adds a fixed 3–5 (create: its snapshot and record; finish)',
          ),
        );
      }
      // Creating a run: its per-step snapshot goes to S3 (one PutObject), its record to DynamoDB.
      for (const steps of [sizes[0]!, sizes.at(-1)!]) {
        log(`creating a run of ${steps} steps, then another of the same pipeline`);
        const [first, again] = await fresh(async (stack) => {
          const p = linearRequestPipeline(steps);
          const deps = { ...stack.deps, pipelines: [p] };
          const create = async () => {
            stack.counter.reset();
            await handleStepRunnerRequest({ action: 'start-run', pipeline: p.name, parameters: {}, tags: [] }, deps);
            return stack.counter.snapshot();
          };
          return [await create(), await create()];
        });
        const total = (counts: Record<string, number>) => Object.values(counts).reduce((a, b) => a + b, 0);
        details[`run creation ${steps}`] = { first, again };
        metrics.push(
          metric(
            `creating a run of ${steps} steps (start-run)`,
            total(first),
            'requests',
            undefined,
            `${Object.entries(first)
              .map(([op, n]) => `${n} ${op}`)
              .join(' + ')}; ${total(again)} for a second run of the same pipeline (the snapshot blob exists)`,
          ),
        );
      }
      log(`fan-out: ${fanOutItems} items over ${containers} containers`);
      const started = performance.now();
      const fanOut = await fresh((stack) => countFanOut(stack, fanOutItems, containers));
      details.fanOut = { ...fanOut, seconds: Math.round((performance.now() - started) / 100) / 10 };
      metrics.push(
        metric(
          `fan-out of ${fanOutItems} items: requests per item`,
          fanOut.perStep,
          'requests/item',
          undefined,
          `${containers} containers, plan-map and collect-map included`,
        ),
        metric(`fan-out of ${fanOutItems} items: failed on conflicts`, fanOut.conflicts, 'items', NO_CONFLICTS),
        metric(
          `fan-out of ${fanOutItems} items: cancelled transactions`,
          fanOut.cancelledTransactions,
          'transactions',
          NO_CONFLICTS,
          'items write disjoint records: none contends on a version counter',
        ),
      );
    } finally {
      await moto.stop();
    }
    return { metrics, details };
  },
};
