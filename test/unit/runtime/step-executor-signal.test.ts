import { getEventListeners } from 'node:events';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { pipeline, step } from '../../../lib/index.ts';
import { createRun, prepareRun } from '../../../lib/runtime/run-lifecycle.ts';
import { executeStep } from '../../../lib/runtime/step-executor.ts';
import { createLocalTestEnv, type LocalTestEnv } from '../../support/local-env.ts';

let env: LocalTestEnv;
beforeEach(async () => {
  env = await createLocalTestEnv();
});
afterEach(async () => {
  await env.cleanup();
});

const constant = step(
  { name: 'constant', parameters: z.object({ value: z.number() }), outputs: { value: z.number() } },
  ({ params }) => ({ value: params.value }),
);
const timed = step(
  { name: 'timed', outputs: { ok: z.boolean() }, timeoutMs: 60_000, retries: { maxRetries: 0 } },
  () => ({ ok: true }),
);
const many = pipeline({ name: 'many_constants' }, () => {
  for (let i = 0; i < 12; i++) constant({}, { id: `c${i}`, params: { value: i } });
  timed();
});

describe('the run signal a step executes under', () => {
  it('carries no listener of a finished step: a run of any size holds none of its steps alive', async () => {
    const prepared = await prepareRun(many, {}, env);
    const { run } = await createRun(many, prepared, env, { stack: 'default' });
    const controller = new AbortController();
    for (const node of prepared.graph.nodes) {
      const result = await executeStep(
        { run: { id: run.id, pipeline: many.name }, node, inputs: {}, cache: false, signal: controller.signal },
        env,
      );
      expect(result.stepRun.status).toBe('completed');
    }
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });
});

describe("a step's own signal (made when the step first reads it)", () => {
  it('is already aborted, with the timeout as its reason, when first read after the attempt timed out', async () => {
    let seen: { aborted: boolean; reason: unknown } | undefined;
    const slow = step(
      { name: 'slow', outputs: { ok: z.boolean() }, timeoutMs: 50, retries: { maxRetries: 0 } },
      async ({ context }) => {
        await new Promise((resolve) => setTimeout(resolve, 200));
        seen = { aborted: context.signal.aborted, reason: context.signal.reason };
        return { ok: true };
      },
    );
    const p = pipeline({ name: 'slow_one' }, () => {
      slow();
    });
    const prepared = await prepareRun(p, {}, env);
    const { run } = await createRun(p, prepared, env, { stack: 'default' });
    await expect(
      executeStep(
        { run: { id: run.id, pipeline: p.name }, node: prepared.graph.nodes[0]!, inputs: {}, cache: false },
        env,
      ),
    ).rejects.toThrow(/timed out after 50 ms/);
    await new Promise((resolve) => setTimeout(resolve, 250));
    expect(seen?.aborted).toBe(true);
    expect(String(seen?.reason)).toMatch(/timed out after 50 ms/);
  });

  it('aborts a signal read before the run is cancelled, and the context still lists its fields', async () => {
    const controller = new AbortController();
    let fields: string[] = [];
    let sawAbort = false;
    const waits = step({ name: 'waits', outputs: { ok: z.boolean() } }, async ({ context }) => {
      fields = Object.keys(context);
      const signal = context.signal;
      setTimeout(() => controller.abort(new Error('stop')), 20);
      await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
      sawAbort = signal.aborted;
      return { ok: true };
    });
    const p = pipeline({ name: 'waits_one' }, () => {
      waits();
    });
    const prepared = await prepareRun(p, {}, env);
    const { run } = await createRun(p, prepared, env, { stack: 'default' });
    await expect(
      executeStep(
        {
          run: { id: run.id, pipeline: p.name },
          node: prepared.graph.nodes[0]!,
          inputs: {},
          cache: false,
          signal: controller.signal,
        },
        env,
      ),
    ).rejects.toThrow(/cancelled/);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(sawAbort).toBe(true);
    expect(fields).toEqual(expect.arrayContaining(['runId', 'stepRunId', 'stepId', 'pipeline', 'attempt', 'models']));
  });
});
