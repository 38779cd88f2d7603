/**
 * AWS requests (S3 + DynamoDB) per executed step on the emulator (moto, started here), counted by
 * an SDK middleware on the clients: linear pipelines of 10, 100 and 1,000 steps run by the local
 * orchestrator on AWS stores and by the step runner (invoked in-process as the state machine's
 * Task states invoke it, in one warm container and with a cold container per invocation), and a
 * 1,000-item fan-out spread over 16 containers. The target is a constant cost per step, at most 5.
 */
import {
  type CountedAwsStack,
  countFanOut,
  countLocalRun,
  countStepRunnerRun,
  createCountedAwsStack,
} from '../test/support/aws-request-counter.ts';
import { startMoto } from '../test/support/moto.ts';
import { type Benchmark, type Metric, metric, type Target } from './stats.ts';

const PER_STEP_TARGET: Target = { op: '<=', value: 5 };
const NO_CONFLICTS: Target = { op: '<=', value: 0 };

type Mode = 'local orchestrator' | 'step runner, warm container' | 'step runner, cold container per step';

async function count(stack: CountedAwsStack, mode: Mode, steps: number) {
  if (mode === 'local orchestrator') return countLocalRun(stack, steps);
  return countStepRunnerRun(stack, steps, { cold: mode === 'step runner, cold container per step' });
}

export const awsRequestsBenchmark: Benchmark = {
  name: 'aws-requests',
  description: 'S3 + DynamoDB requests per executed step on moto: linear runs of 10–1,000 steps, a 1,000-item fan-out',
  async run({ quick, log }) {
    const sizes = quick ? [10, 30] : [10, 100, 1000];
    const fanOutItems = quick ? 100 : 1000;
    const containers = 16;
    const moto = await startMoto();
    const stack = await createCountedAwsStack(moto.endpoint, []);
    const metrics: Metric[] = [];
    const details: Record<string, unknown> = {};
    try {
      const modes: Mode[] = [
        'local orchestrator',
        'step runner, warm container',
        'step runner, cold container per step',
      ];
      for (const mode of modes) {
        const totals: Array<{ steps: number; total: number }> = [];
        for (const steps of sizes) {
          log(`${mode}: ${steps} steps`);
          const result = await count(stack, mode, steps);
          const total = result.dynamodb + result.s3;
          totals.push({ steps, total });
          details[`${mode} ${steps}`] = result;
          metrics.push(
            metric(
              `${mode}, ${steps} steps: all requests ÷ steps`,
              total / steps,
              'requests/step',
              undefined,
              `${(result.dynamodb / steps).toFixed(2)} DynamoDB + ${(result.s3 / steps).toFixed(2)} S3, creating and finishing the run included`,
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
            'what one more step costs; the run itself adds a fixed 2–4 (create, finish)',
          ),
        );
      }
      log(`fan-out: ${fanOutItems} items over ${containers} containers`);
      const fanOut = await countFanOut(stack, fanOutItems, containers);
      details.fanOut = fanOut;
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
      await stack.close();
      await moto.stop();
    }
    return { metrics, details };
  },
};
