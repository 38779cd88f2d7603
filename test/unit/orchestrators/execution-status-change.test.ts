import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createExecutionStatusHandler } from '../../../functions/execution-status/lambda.ts';
import { NonRetriableError } from '../../../lib/errors.ts';
import { runDraft, stepDraft } from '../../conformance/metadata-store.conformance.ts';
import { createLocalTestEnv, type LocalTestEnv } from '../../support/local-env.ts';

let env: LocalTestEnv;
beforeEach(async () => {
  env = await createLocalTestEnv();
});
afterEach(async () => {
  await env.cleanup();
});

function event(status: string, name: string, input?: unknown) {
  return {
    source: 'aws.states',
    'detail-type': 'Step Functions Execution Status Change',
    detail: {
      executionArn: `arn:aws:states:eu-west-1:123456789012:execution:stackline-training:${name}`,
      name,
      status,
      ...(input === undefined ? {} : { input: JSON.stringify(input) }),
    },
  };
}

describe('the execution status-change handler', () => {
  it('ends the run of an aborted execution as cancelled, with its running step runs', async () => {
    const run = await env.metadata.runs.create(runDraft());
    const step = await env.metadata.runs.startStep(stepDraft(run.id));
    const handler = createExecutionStatusHandler(() => env.metadata);

    const outcome = await handler(event('ABORTED', run.id), {} as never);

    expect(outcome).toEqual({ runId: run.id, action: 'ended', status: 'cancelled' });
    expect((await env.metadata.runs.get(run.id)).error?.type).toBe('ExecutionAborted');
    expect((await env.metadata.runs.getStep(step.id)).status).toBe('cancelled');
  });

  it('finds the run by the execution input and ends a timed-out execution as failed', async () => {
    const run = await env.metadata.runs.create(runDraft());
    const handler = createExecutionStatusHandler(() => env.metadata);

    const outcome = await handler(event('TIMED_OUT', 'some-other-name', { runId: run.id }), {} as never);

    expect(outcome).toMatchObject({ runId: run.id, action: 'ended', status: 'failed' });
    expect((await env.metadata.runs.get(run.id)).error?.type).toBe('ExecutionTimedOut');
  });

  it('leaves finished runs, succeeded executions and unknown runs alone, and refuses other events', async () => {
    const run = await env.metadata.runs.create(runDraft());
    await env.metadata.runs.finish(run.id, 'completed', new Date().toISOString());
    const handler = createExecutionStatusHandler(() => env.metadata);

    expect(await handler(event('FAILED', run.id), {} as never)).toMatchObject({ action: 'already-finished' });
    expect(await handler(event('SUCCEEDED', 'x'), {} as never)).toEqual({ action: 'not-ended' });
    expect(await handler(event('FAILED', 'run_unknown'), {} as never)).toMatchObject({ action: 'unknown-run' });
    expect((await env.metadata.runs.get(run.id)).status).toBe('completed');
    await expect(handler({ source: 'aws.s3' }, {} as never)).rejects.toBeInstanceOf(NonRetriableError);
  });
});
