/**
 * The ECS entry point's error paths, with a recording stand-in for the Step Functions client
 * (the round trip against moto is in test/integration/ecs-task-token.test.ts).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { runEcsTask, type TaskTokenClient } from '../../../functions/step-runner/ecs.ts';
import { type PipelineDefinition, pipeline, step } from '../../../lib/index.ts';
import { handleStepRunnerRequest, type StepRunnerDeps } from '../../../lib/runtime/step-runner.ts';
import { createLocalTestEnv, type LocalTestEnv } from '../../support/local-env.ts';

let slowResolve: (() => void) | undefined;
const slow = step({ name: 'ee_slow', outputs: { value: z.number() } }, async () => {
  await new Promise<void>((resolve) => {
    slowResolve = resolve;
  });
  return { value: 1 };
});
const quick = step({ name: 'ee_quick', outputs: { value: z.number() } }, () => ({ value: 2 }));
const slowPipeline = pipeline({ name: 'ee_slow_pipeline' }, () => {
  slow({});
});
const quickPipeline = pipeline({ name: 'ee_quick_pipeline' }, () => {
  quick({});
});
const module = { slowPipeline, quickPipeline };

let local: LocalTestEnv;
beforeEach(async () => {
  local = await createLocalTestEnv();
});
afterEach(async () => {
  await local.cleanup();
});

const deps = (pipelines: readonly PipelineDefinition[]): StepRunnerDeps => ({
  pipelines,
  stores: local,
  stackName: 'ee',
});

async function requestFor(p: PipelineDefinition, stepId: string): Promise<string> {
  const { runId } = await handleStepRunnerRequest(
    { action: 'start-run', pipeline: p.name, parameters: {}, tags: [] },
    deps([p]),
  );
  return JSON.stringify({ action: 'run-step', pipeline: p.name, runId, stepId });
}

/** Records every command; `refuse` names commands that fail like the service does. */
function recordingClient(refuse: Record<string, string> = {}) {
  const calls: Array<{ command: string; input: Record<string, string> }> = [];
  const client: TaskTokenClient = {
    send: (async (command: { constructor: { name: string }; input: Record<string, string> }) => {
      const name = command.constructor.name.replace(/Command$/, '');
      calls.push({ command: name, input: command.input });
      if (refuse[name]) throw Object.assign(new Error('Task Timed Out'), { name: refuse[name] });
      return {};
    }) as never,
  };
  return { client, calls };
}

describe('runEcsTask', () => {
  it('reports nothing to Step Functions without a task token: prints the response, exit 0', async () => {
    const { client, calls } = recordingClient();
    const out: string[] = [];
    const code = await runEcsTask(module, await requestFor(quickPipeline, 'ee_quick'), {
      stdout: { write: (text: string) => out.push(text) },
      stderr: { write: () => true },
      taskToken: undefined,
      stepFunctions: client,
      resolveDeps: deps,
    });
    expect(code).toBe(0);
    expect(calls).toEqual([]);
    expect(JSON.parse(out.join(''))).toMatchObject({ stepId: 'ee_quick', status: 'completed' });
  });

  it('heartbeats while the step runs, and stops when Step Functions refuses one (the state timed out)', async () => {
    const { client, calls } = recordingClient({});
    const err: string[] = [];
    const running = runEcsTask(module, await requestFor(slowPipeline, 'ee_slow'), {
      stdout: { write: () => true },
      stderr: { write: (text: string) => err.push(text) },
      taskToken: 'token-1',
      stepFunctions: client,
      heartbeatIntervalMs: 5,
      resolveDeps: deps,
    });
    await expect.poll(() => calls.filter((c) => c.command === 'SendTaskHeartbeat').length).toBeGreaterThanOrEqual(3);
    // From now on the service refuses: the token's state has timed out.
    const refused = calls.length;
    client.send = (async (command: { constructor: { name: string }; input: Record<string, string> }) => {
      calls.push({ command: command.constructor.name.replace(/Command$/, ''), input: command.input });
      throw Object.assign(new Error('Task Timed Out'), { name: 'TaskTimedOut' });
    }) as never;
    await expect.poll(() => err.join('')).toMatch(/refused a heartbeat \(TaskTimedOut: Task Timed Out\)/);
    const afterRefusal = calls.length;
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(calls.length).toBe(afterRefusal);
    expect(afterRefusal).toBe(refused + 1);
    slowResolve!();
    // The step finishes and is recorded; its late success report is refused too: exit 1, said on stderr.
    expect(await running).toBe(1);
    expect(calls.at(-1)).toMatchObject({ command: 'SendTaskSuccess', input: { taskToken: 'token-1' } });
    expect(err.join('')).toMatch(/Could not report the step's outcome to Step Functions: TaskTimedOut/);
  });

  it('fails with NonRetriableError on a request that is not JSON, reported on the token', async () => {
    const { client, calls } = recordingClient();
    const code = await runEcsTask(module, '{not json', {
      stdout: { write: () => true },
      stderr: { write: () => true },
      taskToken: 'token-2',
      stepFunctions: client,
      resolveDeps: deps,
    });
    expect(code).toBe(1);
    const failure = calls.find((c) => c.command === 'SendTaskFailure')!;
    expect(failure.input.error).toBe('NonRetriableError');
    expect(JSON.parse(failure.input.cause!)).toEqual({
      errorType: 'NonRetriableError',
      errorMessage: expect.stringMatching(/^The step runner request is not JSON/),
    });
  });
});
