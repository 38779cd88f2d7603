import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { pipeline, step } from '../../../lib/index.ts';
import { runPipelineLocally } from '../../../lib/runtime/local-orchestrator.ts';
import { createLocalTestEnv, type LocalTestEnv } from '../../support/local-env.ts';

let env: LocalTestEnv;
beforeEach(async () => {
  env = await createLocalTestEnv();
});
afterEach(async () => {
  await env.cleanup();
});

const shards = step(
  { name: 'shards', parameters: z.object({ values: z.array(z.number()) }), outputs: { items: z.array(z.number()) } },
  ({ params }) => ({ items: params.values }),
);
const calls: number[] = [];
let running = 0;
let peak = 0;
const square = step(
  {
    name: 'square',
    inputs: { item: z.number(), offset: z.number() },
    outputs: { squared: z.number(), label: z.string() },
  },
  async ({ inputs }) => {
    calls.push(inputs.item);
    running++;
    peak = Math.max(peak, running);
    await new Promise((r) => setTimeout(r, 2));
    running--;
    if (inputs.item < 0) throw new Error(`negative item ${inputs.item}`);
    return { squared: inputs.item ** 2 + inputs.offset, label: `#${inputs.item}` };
  },
);
const offset = step({ name: 'offset', outputs: { value: z.number() } }, () => ({ value: 0 }));
const total = step(
  {
    name: 'total',
    inputs: { squares: z.array(z.number()), labels: z.array(z.string()) },
    outputs: { sum: z.number(), joined: z.string() },
  },
  ({ inputs }) => ({ sum: inputs.squares.reduce((a, b) => a + b, 0), joined: inputs.labels.join(',') }),
);

const fan = pipeline(
  { name: 'fan', parameters: z.object({ values: z.array(z.number()), width: z.number().int().default(3) }) },
  ({ values, width }) => {
    const { items } = shards({}, { params: { values } });
    const { value } = offset();
    const { squared, label } = square.map({ item: items, offset: value }, { over: 'item', maxConcurrency: width });
    total({ squares: squared, labels: label });
  },
);

beforeEach(() => {
  calls.length = 0;
  peak = 0;
});

describe('fan-out', () => {
  it('runs the step once per item and hands the downstream step every output as a list, in order', async () => {
    const result = await runPipelineLocally(fan, env, { params: { values: [3, 1, 2, 5, 4] } });
    expect(result.run.status).toBe('completed');
    expect([...calls].sort()).toEqual([1, 2, 3, 4, 5]);
    const sum = result.steps.find((s) => s.node.id === 'total')!.result!.outputs;
    expect(await env.materializers.get('json').load(sum.sum!, { store: env.artifacts })).toBe(55);
    expect(await env.materializers.get('string').load(sum.joined!, { store: env.artifacts })).toBe('#3,#1,#2,#5,#4');
    const steps = await env.metadata.runs.listSteps(result.run.id);
    expect(
      steps
        .map((s) => s.stepId)
        .filter((id) => id.startsWith('square'))
        .sort(),
    ).toEqual(['square', 'square[0]', 'square[1]', 'square[2]', 'square[3]', 'square[4]']);
    const collection = result.steps.find((s) => s.node.id === 'square')!.result!.outputs.squared!;
    expect(collection).toMatchObject({ name: 'square.squared', materializer: 'collection', dataType: 'collection:5' });
    expect((await env.metadata.artifacts.listVersions('square.squared.items')).items).toHaveLength(5);
  });

  it('keeps at most maxConcurrency items in flight', async () => {
    await runPipelineLocally(fan, env, { params: { values: Array.from({ length: 12 }, (_, i) => i), width: 2 } });
    expect(peak).toBe(2);
  });

  it('reuses the whole fan-out from the cache when nothing changed, without running an item', async () => {
    await runPipelineLocally(fan, env, { params: { values: [1, 2, 3] } });
    calls.length = 0;
    const again = await runPipelineLocally(fan, env, { params: { values: [1, 2, 3] } });
    expect(calls).toEqual([]);
    expect(again.steps.map((s) => s.stepRun!.status)).toEqual(['cached', 'cached', 'cached', 'cached']);
  });

  it('re-runs only the items that changed when the list changes', async () => {
    await runPipelineLocally(fan, env, { params: { values: [1, 2, 3] } });
    calls.length = 0;
    const changed = await runPipelineLocally(fan, env, { params: { values: [1, 20, 3] } });
    expect(calls).toEqual([20]);
    const statuses = (await env.metadata.runs.listSteps(changed.run.id)).filter((s) => s.stepId.startsWith('square['));
    expect(statuses.map((s) => `${s.stepId}:${s.status}`).sort()).toEqual([
      'square[0]:cached',
      'square[1]:completed',
      'square[2]:cached',
    ]);
  });

  it('fails the run when an item fails, ends the fan-out step failed and skips what depends on it', async () => {
    const result = await runPipelineLocally(fan, env, { params: { values: [1, -2, 3], width: 1 } });
    expect(result.run.status).toBe('failed');
    expect(result.run.error?.message).toContain('negative item -2');
    const steps = await env.metadata.runs.listSteps(result.run.id);
    expect(steps.find((s) => s.stepId === 'square')!.status).toBe('failed');
    expect(steps.some((s) => s.stepId === 'total')).toBe(false);
    expect(steps.every((s) => s.status !== 'running')).toBe(true);
  });

  it('handles an empty list', async () => {
    const result = await runPipelineLocally(fan, env, { params: { values: [] } });
    expect(result.run.status).toBe('completed');
    const out = result.steps.find((s) => s.node.id === 'total')!.result!.outputs.sum!;
    expect(await env.materializers.get('json').load(out, { store: env.artifacts })).toBe(0);
  });

  it('rejects mapping over an input the step does not have', () => {
    const bad = pipeline({ name: 'bad_map' }, () => {
      const { items } = shards({}, { params: { values: [1] } });
      const { value } = offset();
      (square.map as (i: object, o: object) => void)({ item: items, offset: value }, { over: 'nope' });
    });
    expect(() => bad.build({})).toThrow(/\.map over "nope", which is not one of its inputs/);
  });
});
