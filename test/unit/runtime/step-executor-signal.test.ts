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
