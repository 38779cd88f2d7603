/**
 * Runs started by schedules and EventBridge rules: `start-run` records what started them, derives
 * the run id from the event id, and refuses a redelivered event with DuplicateTriggerError (the
 * compiled state machine catches it into its DuplicateTrigger state). Also the execution-status
 * handler finding such a run. Real SQLite store and step runner, no mocks.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { DuplicateTriggerError, NonRetriableError } from '../../../lib/errors.ts';
import { triggeredRunId } from '../../../lib/events/trigger-input.ts';
import { pipeline, Stackline, step } from '../../../lib/index.ts';
import { endRunForExecution } from '../../../lib/orchestrators/execution-status-change.ts';
import { handleStepRunnerRequest, type StepRunnerDeps } from '../../../lib/runtime/step-runner.ts';
import { runCli } from '../../support/cli.ts';
import { createLocalTestEnv, type LocalTestEnv } from '../../support/local-env.ts';

const ingest = step(
  { name: 'ingest', parameters: z.object({ key: z.string() }), outputs: { length: z.number() } },
  ({ params }) => ({ length: params.key.length }),
);
const onUpload = pipeline(
  { name: 'on_upload', parameters: z.object({ key: z.string() }), triggers: [{ s3: { prefix: 'in/' } }] },
  ({ key }) => void ingest({}, { params: { key } }),
);

let env: LocalTestEnv;
let deps: StepRunnerDeps;
beforeEach(async () => {
  env = await createLocalTestEnv();
  deps = { pipelines: [onUpload], stores: env, stackName: 'dev' };
});
afterEach(async () => {
  await env.cleanup();
});

const trigger = { kind: 's3' as const, name: 'stackline-dev-on_upload-s3-0', id: 'event-1' };
const start = (executionArn: string, input: Record<string, unknown> = { trigger }, parameters = { key: 'in/a.csv' }) =>
  handleStepRunnerRequest(
    { action: 'start-run', pipeline: 'on_upload', parameters, tags: [], executionArn, input },
    deps,
  );

describe('runs started by a trigger', () => {
  it('record the trigger and get the run id derived from the event id', async () => {
    const { runId } = await start('arn:exec:1');
    expect(runId).toBe(triggeredRunId('on_upload', trigger));
    expect(runId).toMatch(/^run_[0-9a-z]{26}$/);
    const run = await env.metadata.runs.get(runId);
    expect(run.config.trigger).toEqual(trigger);
    expect(run.parameters).toEqual({ key: 'in/a.csv' });
  });

  it('a redelivered event (another execution, same event id) starts nothing and fails as DuplicateTriggerError', async () => {
    const { runId } = await start('arn:exec:1');
    const error = await start('arn:exec:2').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DuplicateTriggerError);
    expect((error as Error).name).toBe('DuplicateTriggerError');
    expect((error as Error).message).toContain(`its run "${runId}" exists`);
    expect((await env.metadata.runs.list()).items.map((r) => r.id)).toEqual([runId]);
  });

  it('a retried start-run of the same execution gets its own run back', async () => {
    const first = await start('arn:exec:1');
    expect(await start('arn:exec:1')).toEqual(first);
  });

  it('a different event starts a different run', async () => {
    const a = await start('arn:exec:1');
    const b = await start('arn:exec:2', { trigger: { ...trigger, id: 'event-2' } });
    expect(b.runId).not.toBe(a.runId);
  });

  it("parameters the pipeline's schema refuses fail start-run at once (not retried) and record nothing", async () => {
    const error = await start('arn:exec:1', { trigger }, { key: 7 } as never).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NonRetriableError);
    expect((error as Error).message).toMatch(/Invalid parameters for pipeline "on_upload": key/);
    expect((await env.metadata.runs.list()).items).toEqual([]);
  });

  it('the execution-status handler ends a triggered run of an aborted execution, found through its trigger', async () => {
    const { runId } = await start('arn:exec:1');
    const outcome = await endRunForExecution(
      {
        source: 'aws.states',
        'detail-type': 'Step Functions Execution Status Change',
        detail: {
          executionArn: 'arn:exec:1',
          name: '6b1c0d2e-uuid-name',
          status: 'ABORTED',
          input: JSON.stringify({ pipeline: 'on_upload', parameters: { key: 'in/a.csv' }, trigger }),
        },
      },
      env.metadata,
    );
    expect(outcome).toEqual({ runId, action: 'ended', status: 'cancelled' });
  });
});

describe('runs show', () => {
  it('names the trigger that started a run, and the user otherwise', async () => {
    const home = await mkdtemp(join(tmpdir(), 'stackline-trigger-show-'));
    try {
      const stackline = await Stackline.open({ home });
      const base = {
        pipeline: 'on_upload',
        status: 'completed' as const,
        stack: 'default',
        parameters: {},
        tags: [],
        metadata: {},
        createdBy: 'alice',
        startedAt: new Date().toISOString(),
      };
      try {
        await stackline.stack.metadata.runs.create({ ...base, id: 'run_triggered', config: { trigger } });
        await stackline.stack.metadata.runs.create({ ...base, id: 'run_by_hand', config: {} });
      } finally {
        await stackline.close();
      }
      const triggered = await runCli(home, 'runs', 'show', 'run_triggered');
      expect(triggered.stdout).toMatch(/^ {2}by {7}s3 stackline-dev-on_upload-s3-0 \(event-1\)$/m);
      const byHand = await runCli(home, 'runs', 'show', 'run_by_hand');
      expect(byHand.stdout).toMatch(/^ {2}by {7}alice$/m);
      const json = await runCli(home, 'runs', 'show', 'run_triggered', '--json');
      expect(json.json().run.config.trigger).toEqual(trigger);
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  });
});
