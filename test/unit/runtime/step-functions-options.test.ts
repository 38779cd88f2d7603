import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ValidationError } from '../../../lib/errors.ts';
import { pipeline, step } from '../../../lib/index.ts';
import { runOnStepFunctions } from '../../../lib/orchestrators/step-functions-orchestrator.ts';
import { handleStepRunnerRequest, type StepRunnerDeps } from '../../../lib/runtime/step-runner.ts';
import type { StackRuntime } from '../../../lib/stacks/project.ts';
import { createLocalTestEnv, type LocalTestEnv } from '../../support/local-env.ts';

let calls = 0;
const make = step({ name: 'make', outputs: { value: z.number() } }, () => {
  calls++;
  return { value: 1 };
});
const once = pipeline({ name: 'once' }, () => void make());

let env: LocalTestEnv;
let deps: StepRunnerDeps;
beforeEach(async () => {
  env = await createLocalTestEnv();
  deps = { pipelines: [once], stores: env, stackName: 'sfn' };
  calls = 0;
});
afterEach(async () => {
  await env.cleanup();
});

async function runOnce(input: Record<string, unknown>) {
  const { runId } = await handleStepRunnerRequest(
    { action: 'start-run', pipeline: 'once', parameters: {}, tags: [], input },
    deps,
  );
  const step = await handleStepRunnerRequest({ action: 'run-step', pipeline: 'once', runId, stepId: 'make' }, deps);
  return { run: await env.metadata.runs.get(runId), status: step.status };
}

describe('run options on Step Functions', () => {
  it('--no-cache, per-step cache settings and tags in the execution input reach the run and its steps', async () => {
    expect((await runOnce({})).status).toBe('completed');
    expect((await runOnce({})).status).toBe('cached');

    const uncached = await runOnce({ cache: false, tags: ['team:ml'] });
    expect(uncached.status).toBe('completed');
    expect(uncached.run.config.cache).toBe(false);
    expect(uncached.run.tags).toEqual(['team:ml']);

    const perStep = await runOnce({ stepCache: { make: false } });
    expect(perStep.status).toBe('completed');
    expect(calls).toBe(3);
  });

  it('refuses --concurrency with a clear error before creating anything', async () => {
    const stack = {
      name: 'prod',
      components: {
        orchestrator: { type: 'step-functions', roleArn: 'arn:aws:iam::123456789012:role/sfn' },
        stepRunner: { type: 'lambda', functionName: 'runner' },
      },
      metadata: env.metadata,
    } as unknown as StackRuntime;

    const error = await runOnStepFunctions(once, stack, { concurrency: 2 }).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(ValidationError);
    expect((error as Error).message).toContain('--concurrency does not apply to Step Functions runs');
    expect((await env.metadata.runs.list()).items).toEqual([]);
  });
});
