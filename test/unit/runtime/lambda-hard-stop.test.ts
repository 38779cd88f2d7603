import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createLambdaHandler } from '../../../functions/step-runner/lambda.ts';
import { pipeline, step } from '../../../lib/index.ts';
import { SqliteMetadataStore } from '../../../lib/metadata/sqlite/sqlite-metadata-store.ts';
import { createLocalTestEnv, type LocalTestEnv } from '../../support/local-env.ts';

const run = promisify(execFile);

let env: LocalTestEnv;
beforeEach(async () => {
  env = await createLocalTestEnv();
});
afterEach(async () => {
  await env.cleanup();
});

let slowCalls = 0;
const slow = step({ name: 'slow_without_timeout', outputs: { done: z.boolean() } }, async () => {
  slowCalls++;
  await sleep(3000);
  return { done: true };
});
const slowPipeline = pipeline({ name: 'lambda_slow' }, () => {
  slow();
});

const nextTurns = async (n: number) => {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
};

describe('the Lambda handler stops a timed-out invocation for real', () => {
  it("answers with a StepTimeoutError timeoutEarlyInMillis before the function's timeout, then exits the process after the response", async () => {
    const exits: number[] = [];
    const handler = createLambdaHandler(
      { slowPipeline },
      (pipelines) => ({ pipelines, stores: env, stackName: 'lambda-test' }),
      { timeoutEarlyInMillis: 500, exit: (code) => exits.push(code) },
    );
    const { runId } = (await handler({ action: 'start-run', pipeline: 'lambda_slow' }, {} as never)) as {
      runId: string;
    };
    const deadline = Date.now() + 1200;
    const context = { getRemainingTimeInMillis: () => deadline - Date.now() } as never;
    const started = Date.now();
    const answer = await handler(
      { action: 'run-step', pipeline: 'lambda_slow', runId, stepId: 'slow_without_timeout' },
      context,
    ).catch((error: Error) => error);

    // Answered at the early timeout (~700 ms), not when the step would end (3 s).
    expect(Date.now() - started).toBeLessThan(1200);
    expect(slowCalls).toBe(1);
    expect(answer).toMatchObject({ name: 'StepTimeoutError' });
    expect((answer as Error).message).toMatch(/stopped 500 ms before the Lambda function's timeout/);
    // The exit is not immediate: the runtime first posts the response (one event-loop turn later).
    expect(exits).toEqual([]);
    await nextTurns(3);
    expect(exits).toEqual([0]);
    // A later invocation in the same (not yet exited) process would exit at once rather than run.
    await handler({ action: 'finish-run', pipeline: 'lambda_slow', runId, status: 'completed' }, {} as never).catch(
      () => {},
    );
    expect(exits).toEqual([0, 0]);
  });

  it('does not exit after an invocation that did not time out', async () => {
    const exits: number[] = [];
    const handler = createLambdaHandler(
      { slowPipeline },
      (pipelines) => ({ pipelines, stores: env, stackName: 'lambda-test' }),
      { exit: (code) => exits.push(code) },
    );
    await handler({ action: 'start-run', pipeline: 'lambda_slow' }, {} as never);
    await handler(
      { action: 'run-step', pipeline: 'lambda_slow', runId: 'run_missing', stepId: 'x' },
      {} as never,
    ).catch(() => {});
    await nextTurns(3);
    expect(exits).toEqual([]);
  });

  it('a step that outlives its timeoutMs is answered with StepTimeoutError and its process is gone before the step could write again', async () => {
    const sideDir = mkdtempSync(join(tmpdir(), 'stackline-lambda-side-'));
    try {
      const { stdout } = await run(
        process.execPath,
        ['--import', 'tsx', 'test/fixtures/isolation/lambda-straggler.ts', sideDir],
        { cwd: process.cwd(), timeout: 30_000 },
      );
      const exitedAt = Date.now();
      const response = JSON.parse(stdout.trim().split('\n').at(-1)!);
      expect(response).toMatchObject({ errorType: 'StepTimeoutError' });
      expect(response.errorMessage).toMatch(/timed out after 300 ms/);
      const startedAt = Number(readFileSync(join(sideDir, 'started'), 'utf8'));
      // The process exited before the step's late write was due (1.5 s after it started)…
      expect(exitedAt).toBeLessThan(startedAt + 1500 + 2000);
      await sleep(Math.max(0, startedAt + 2000 - Date.now()));
      // …and the write never happened.
      expect(existsSync(join(sideDir, 'late'))).toBe(false);
      // The step run was recorded failed with the timeout, without the late log line.
      const { dir, runId } = JSON.parse(readFileSync(join(sideDir, 'env'), 'utf8'));
      const metadata = SqliteMetadataStore.open(join(dir, 'metadata.db'));
      try {
        const [stepRun] = await metadata.runs.listSteps(runId);
        expect(stepRun).toMatchObject({ status: 'failed', error: { type: 'StepTimeoutError' } });
        expect(stepRun!.logs ?? []).not.toContain('late line');
      } finally {
        await metadata.close();
        rmSync(dir, { recursive: true, force: true });
      }
    } finally {
      rmSync(sideDir, { recursive: true, force: true });
    }
  }, 40_000);
});
