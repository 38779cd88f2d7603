import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { handleStepRunnerRequest } from '../../lib/runtime/step-runner.ts';
import {
  type CountedAwsStack,
  countFanOut,
  countLocalRun,
  countStepRunnerRun,
  createCountedAwsStack,
  linearRequestPipeline,
} from '../support/aws-request-counter.ts';
import { type MotoServer, startMoto } from '../support/moto.ts';

/**
 * AWS requests (S3 + DynamoDB, counted by an SDK middleware) per executed step. Counts are
 * deterministic, so these are exact comparisons, not timings: a run of n steps costs a fixed part
 * (create and finish the run) plus the same requests for every step, whatever n is.
 * `npm run bench -- --only aws-requests` reports the same figures at 10, 100 and 1,000 steps.
 */

let moto: MotoServer;
let stack: CountedAwsStack;

beforeAll(async () => {
  moto = await startMoto();
  stack = await createCountedAwsStack(moto.endpoint, []);
});

afterAll(async () => {
  await stack?.close();
  await moto?.stop();
});

/** Requests per step beyond the fixed part, and the fixed part, from runs of two sizes. */
function perStepAndFixed(small: { steps: number; total: number }, large: { steps: number; total: number }) {
  const perStep = (large.total - small.total) / (large.steps - small.steps);
  return { perStep, fixedSmall: small.total - perStep * small.steps, fixedLarge: large.total - perStep * large.steps };
}

async function sizes(count: (steps: number) => Promise<{ steps: number; dynamodb: number; s3: number }>) {
  const small = await count(4);
  const large = await count(12);
  return perStepAndFixed(
    { steps: small.steps, total: small.dynamodb + small.s3 },
    { steps: large.steps, total: large.dynamodb + large.s3 },
  );
}

describe('AWS requests per executed step', () => {
  it('a local run on AWS stores makes 5 requests per step, the same at 4 and 12 steps', async () => {
    const { perStep, fixedSmall, fixedLarge } = await sizes((n) => countLocalRun(stack, n));
    expect(perStep).toBe(5);
    expect(fixedSmall).toBe(fixedLarge);
  }, 120_000);

  it('a local run reads no step record back and downloads no output it has just uploaded', async () => {
    const { byOperation } = await countLocalRun(stack, 6);
    expect(byOperation['dynamodb:GetItem'] ?? 0).toBe(0);
    expect(byOperation['s3:GetObject'] ?? 0).toBe(0);
    expect(byOperation['dynamodb:TransactWriteItems']).toBe(2 * 6 + 1);
  }, 120_000);

  it('the step runner in one warm container makes 5 requests per step, the same at 4 and 12 steps', async () => {
    const { perStep, fixedSmall, fixedLarge } = await sizes((n) => countStepRunnerRun(stack, n));
    expect(perStep).toBe(5);
    expect(fixedSmall).toBe(fixedLarge);
  }, 120_000);

  it('the step runner with a cold container per invocation makes the same requests per step at 4 and 12 steps', async () => {
    const { perStep, fixedSmall, fixedLarge } = await sizes((n) => countStepRunnerRun(stack, n, { cold: true }));
    expect(perStep).toBeLessThanOrEqual(11);
    expect(fixedSmall).toBe(fixedLarge);
  }, 120_000);

  it('creating a run writes its per-step snapshot to S3 once and the run record once, whatever its size', async () => {
    const creation = async (steps: number) => {
      const p = linearRequestPipeline(steps);
      stack.counter.reset();
      await handleStepRunnerRequest(
        { action: 'start-run', pipeline: p.name, parameters: {}, tags: [] },
        { ...stack.deps, pipelines: [p] },
      );
      return stack.counter.snapshot();
    };
    const fresh = { 's3:PutObject': 1, 'dynamodb:TransactWriteItems': 1 };
    expect(await creation(7)).toEqual(fresh);
    expect(await creation(700)).toEqual(fresh);
    // The same pipeline again: the blob is there (the conditional PutObject is refused), and checked.
    expect(await creation(7)).toEqual({ ...fresh, 's3:HeadObject': 1 });
  }, 120_000);

  it('a fan-out over 8 containers completes every item with no cancelled transaction, about 5 requests per item', async () => {
    const result = await countFanOut(stack, 40, 8);
    expect(result.conflicts).toBe(0);
    expect(result.cancelledTransactions).toBe(0);
    expect(result.perStep).toBeLessThanOrEqual(6);
    // Every Query is a cache lookup (one per item, one for the list): plan-map, the items and
    // collect-map read the records they need by key and never list the run's step runs.
    expect(result.byOperation['dynamodb:Query']).toBe(40 + 1);

    // Each item's output is recorded under its own step run, numbered by the item, not by a counter.
    const { metadata } = stack.deps.stores;
    const item = (await metadata.runs.latestSteps(result.runId, ['req_square[3]'])).get('req_square[3]')!;
    const [version] = await metadata.artifacts.getVersionsByIds([item.outputs.out!]);
    expect(version).toMatchObject({ name: 'req_square.out.items', version: 4, producerStepRunId: item.id });
    const collected = await metadata.artifacts.getVersion('req_square.out');
    expect(collected).toMatchObject({ materializer: 'collection', dataType: 'collection:40' });
    const listed = (await metadata.artifacts.list({ limit: 500 })).items.map((summary) => summary.name);
    expect(listed).toContain('req_square.out');
    expect(listed).not.toContain('req_square.out.items');
  }, 180_000);
});
