import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
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

describe('attempts', () => {
  it('a timed-out attempt that keeps running cannot write after its timeout, and its retry starts clean', async () => {
    const late: Array<{ what: string; error?: string }> = [];
    const dirs: string[] = [];
    let lateDone!: () => void;
    const lateFinished = new Promise<void>((resolve) => {
      lateDone = resolve;
    });
    const stubborn = step(
      { name: 'stubborn', outputs: { attempt: z.number() }, timeoutMs: 50, retries: { maxRetries: 1, backoffMs: 1 } },
      async ({ context }) => {
        const dir = context.tmpDir;
        dirs.push(dir);
        context.logMetadata({ [`attempt${context.attempt}`]: true });
        if (context.attempt === 1) {
          writeFileSync(join(dir, 'partial'), 'from attempt 1');
          // Ignores its abort signal and keeps going after the timeout.
          await new Promise((resolve) => setTimeout(resolve, 200));
          for (const [what, write] of [
            ['log', () => context.log('late line from attempt 1')],
            ['metadata', () => context.logMetadata({ late: true })],
            ['tmpDir', () => context.tmpDir],
          ] as const) {
            try {
              write();
              late.push({ what });
            } catch (error) {
              late.push({ what, error: (error as Error).name });
            }
          }
          lateDone();
          return { attempt: 1 };
        }
        context.log('attempt 2 ran');
        expect(existsSync(join(dir, 'partial'))).toBe(false);
        return { attempt: 2 };
      },
    );

    const result = await runPipelineLocally(
      pipeline({ name: 'stubborn' }, () => void stubborn()),
      env,
    );
    await lateFinished;

    expect(result.run.status).toBe('completed');
    const stepRun = (await env.metadata.runs.listSteps(result.run.id))[0]!;
    expect(stepRun.attempts).toBe(2);
    expect(stepRun.logs).toEqual(['attempt 2 ran']);
    expect(stepRun.metadata).toMatchObject({ attempt2: true });
    expect(stepRun.metadata).not.toHaveProperty('attempt1');
    expect(stepRun.metadata).not.toHaveProperty('late');
    expect(late).toEqual([
      { what: 'log', error: 'StepTimeoutError' },
      { what: 'metadata', error: 'StepTimeoutError' },
      { what: 'tmpDir', error: 'StepTimeoutError' },
    ]);
    // Each attempt had its own scratch directory; the timed-out one's is gone.
    expect(dirs).toHaveLength(2);
    expect(dirs[0]).not.toBe(dirs[1]);
    expect(existsSync(dirs[0]!)).toBe(false);
    expect(await env.metadata.artifacts.getVersion('stubborn.attempt')).toMatchObject({ version: 1 });
  });
});
