import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  ConflictError,
  NonRetriableError,
  NotFoundError,
  OutputValidationError,
  type PipelineDefinition,
  pipeline,
  StepFailedError,
  step,
} from '../../../lib/index.ts';
import { runPipelineLocally } from '../../../lib/runtime/local-orchestrator.ts';
import {
  errorFromCatch,
  handleStepRunnerRequest,
  type ParsedStepRunnerRequest,
  parseStepRunnerRequest,
  type StepRunnerDeps,
  toStepFunctionsError,
} from '../../../lib/runtime/step-runner.ts';
import type { StepRunnerRequest } from '../../../lib/runtime/step-runner-protocol.ts';
import { createLocalTestEnv, type LocalTestEnv } from '../../support/local-env.ts';

// ---------- pipelines ----------

const calls: string[] = [];

const source = step(
  { name: 'source', parameters: z.object({ n: z.number().int() }), outputs: { values: z.array(z.number()) } },
  ({ params }) => {
    calls.push('source');
    return { values: Array.from({ length: params.n }, (_, i) => i + 1) };
  },
);
const double = step(
  { name: 'double', inputs: { values: z.array(z.number()) }, outputs: { doubled: z.array(z.number()) } },
  ({ inputs }) => {
    calls.push('double');
    return { doubled: inputs.values.map((v) => v * 2) };
  },
);
const square = step(
  { name: 'square', inputs: { value: z.number(), offset: z.number() }, outputs: { squared: z.number() } },
  ({ inputs }) => {
    calls.push(`square:${inputs.value}`);
    return { squared: inputs.value ** 2 + inputs.offset };
  },
);
const offset = step({ name: 'offset', outputs: { value: z.number() } }, () => {
  calls.push('offset');
  return { value: 1 };
});
const join = step(
  {
    name: 'join',
    inputs: { doubled: z.array(z.number()), squares: z.array(z.number()) },
    outputs: {
      total: { schema: z.object({ sum: z.number(), items: z.number() }), artifact: 'runner_total', modelRole: 'model' },
    },
  },
  ({ inputs }) => {
    calls.push('join');
    return {
      total: {
        sum: [...inputs.doubled, ...inputs.squares].reduce((a, b) => a + b, 0),
        items: inputs.squares.length,
      },
    };
  },
);

/** A diamond with a fan-out on one side, producing versions of a model. */
const diamond = pipeline(
  { name: 'runner_diamond', parameters: z.object({ n: z.number().int().default(4) }), model: { name: 'runner_model' } },
  ({ n }) => {
    const { values } = source({}, { params: { n } });
    const { doubled } = double({ values });
    const { value } = offset();
    const { squared } = square.map({ value: values, offset: value }, { over: 'value' });
    join({ doubled, squares: squared });
  },
);

let flakyFailures = 0;
const flaky = step({ name: 'flaky', inputs: { values: z.array(z.number()) }, outputs: { n: z.number() } }, () => {
  if (flakyFailures > 0) {
    flakyFailures--;
    throw new Error('the feature store timed out');
  }
  return { n: 1 };
});
const rejects = step({ name: 'rejects', inputs: { n: z.number() }, outputs: { n: z.number() } }, () => {
  throw new NonRetriableError('row 17 has no label');
});
const invalid = step({ name: 'invalid', inputs: { n: z.number() }, outputs: { n: z.number() } }, () => ({
  n: 'seven' as unknown as number,
}));
const slow = step(
  { name: 'slow', inputs: { n: z.number() }, outputs: { n: z.number() }, timeoutMs: 20 },
  async ({ context }) => {
    await new Promise((resolve, reject) => {
      const timer = setTimeout(resolve, 2000);
      context.signal.addEventListener('abort', () => {
        clearTimeout(timer);
        reject(new Error('aborted'));
      });
    });
    return { n: 1 };
  },
);
const failingItem = step(
  { name: 'failing_item', inputs: { value: z.number() }, outputs: { v: z.number() } },
  ({ inputs }) => {
    if (inputs.value === 3) throw new Error(`item ${inputs.value} is corrupt`);
    return { v: inputs.value };
  },
);

const failures = pipeline(
  {
    name: 'runner_failures',
    parameters: z.object({ failing: z.enum(['flaky', 'rejects', 'invalid', 'slow', 'item']) }),
  },
  ({ failing }) => {
    const { values } = source({}, { params: { n: 4 } });
    const { n } = flaky({ values });
    if (failing === 'rejects') rejects({ n });
    if (failing === 'invalid') invalid({ n });
    if (failing === 'slow') slow({ n });
    if (failing === 'item') failingItem.map({ value: values }, { over: 'value' });
  },
);

// ---------- a state machine, by hand ----------

let env: LocalTestEnv;
let localEnv: LocalTestEnv;
let deps: StepRunnerDeps;
const itemObjects = new Map<string, string>();

beforeEach(async () => {
  env = await createLocalTestEnv();
  localEnv = await createLocalTestEnv();
  itemObjects.clear();
  deps = {
    pipelines: [diamond, failures],
    stores: env,
    stackName: 'test-stack',
    actor: 'tester',
    itemsLocation: {
      bucket: 'items-bucket',
      prefix: 'stackline/',
      write: async (key, body) => {
        itemObjects.set(key, body);
      },
    },
  };
  calls.length = 0;
  flakyFailures = 0;
});
afterEach(async () => {
  await env.cleanup();
  await localEnv.cleanup();
});

/** Sends a request as a Task state would: a raw event, validated first. */
function send<R extends StepRunnerRequest>(request: R, runnerDeps = deps) {
  return handleStepRunnerRequest(
    parseStepRunnerRequest(request) as Extract<ParsedStepRunnerRequest, { action: R['action'] }>,
    runnerDeps,
  );
}

/**
 * Drives a run the way the compiled state machine does: start-run; run-step per node in
 * topological order (plan-map, run-step per item, collect-map for a fan-out); finish-run, with
 * `failed` and the Catch's `{ Error, Cause }` when a task fails.
 */
async function drive(p: PipelineDefinition, parameters: Record<string, unknown> = {}, runnerDeps = deps) {
  const log: Array<{ action: string; stepId?: string; response: unknown }> = [];
  const { runId } = await send({ action: 'start-run', pipeline: p.name, parameters }, runnerDeps);
  const graph = p.build(p.parseParameters(parameters));
  try {
    for (const node of graph.nodes) {
      const ids = { pipeline: p.name, runId, stepId: node.id };
      if (!node.map) {
        log.push({
          action: 'run-step',
          stepId: node.id,
          response: await send({ action: 'run-step', ...ids }, runnerDeps),
        });
        continue;
      }
      const plan = await send({ action: 'plan-map', ...ids }, runnerDeps);
      log.push({ action: 'plan-map', stepId: node.id, response: plan });
      const items = 'items' in plan ? plan.items : (JSON.parse(itemObjects.get(plan.itemsKey)!) as number[]);
      for (const mapIndex of items) {
        log.push({
          action: 'run-step',
          stepId: `${node.id}[${mapIndex}]`,
          response: await send({ action: 'run-step', ...ids, mapIndex }, runnerDeps),
        });
      }
      log.push({
        action: 'collect-map',
        stepId: node.id,
        response: await send({ action: 'collect-map', ...ids }, runnerDeps),
      });
    }
  } catch (error) {
    const e = error as Error;
    const Cause = JSON.stringify({ errorType: e.name, errorMessage: e.message, trace: [] });
    await send(
      { action: 'finish-run', pipeline: p.name, runId, status: 'failed', error: { Error: e.name, Cause } },
      runnerDeps,
    );
    return { runId, log, error: e };
  }
  await send({ action: 'finish-run', pipeline: p.name, runId, status: 'completed' }, runnerDeps);
  return { runId, log, error: undefined };
}

async function outputHashes(target: LocalTestEnv, runId: string) {
  const steps = await target.metadata.runs.listSteps(runId);
  const hashes: Record<string, string> = {};
  for (const s of steps) {
    for (const [name, id] of Object.entries(s.outputs)) {
      hashes[`${s.stepId}.${name}`] = (await target.metadata.artifacts.getVersionById(id)).contentHash;
    }
  }
  return hashes;
}

describe('the step runner, driven request by request like a state machine', () => {
  it('produces the same artifacts, step runs and model links as a local run', async () => {
    const local = await runPipelineLocally(diamond, localEnv, { params: { n: 4 } });
    expect(local.run.status).toBe('completed');

    const { runId, error } = await drive(diamond, { n: 4 });
    expect(error).toBeUndefined();
    const run = await env.metadata.runs.get(runId);
    expect(run).toMatchObject({
      status: 'completed',
      stack: 'test-stack',
      parameters: { n: 4 },
      createdBy: 'tester',
      config: { orchestrator: 'step-functions' },
    });

    expect(await outputHashes(env, runId)).toEqual(await outputHashes(localEnv, local.run.id));
    const statuses = async (target: LocalTestEnv, id: string) =>
      (await target.metadata.runs.listSteps(id)).map((s) => `${s.stepId}:${s.status}`).sort();
    expect(await statuses(env, runId)).toEqual(await statuses(localEnv, local.run.id));

    const links = async (target: LocalTestEnv, modelVersionId: string | undefined) =>
      (await target.metadata.models.getVersionById(modelVersionId!)).artifacts.map(
        (a) => `${a.role}:${a.artifactName}`,
      );
    expect(await links(env, run.modelVersionId)).toEqual(await links(localEnv, local.run.modelVersionId));
    expect(await links(env, run.modelVersionId)).toEqual(['model:runner_total']);
  });

  it('serves a second identical run from the cache without running any step', async () => {
    await drive(diamond, { n: 4 });
    calls.length = 0;
    const { log, error } = await drive(diamond, { n: 4 });
    expect(error).toBeUndefined();
    expect(calls).toEqual([]);
    expect(log.map((entry) => [entry.action, entry.stepId, entry.response])).toEqual([
      ['run-step', 'source', expect.objectContaining({ status: 'cached' })],
      ['run-step', 'double', expect.objectContaining({ status: 'cached' })],
      ['run-step', 'offset', expect.objectContaining({ status: 'cached' })],
      ['plan-map', 'square', { count: 0, items: [] }],
      ['collect-map', 'square', expect.objectContaining({ status: 'cached' })],
      ['run-step', 'join', expect.objectContaining({ status: 'cached' })],
    ]);
  });

  it('writes a wide fan-out item list to the items location instead of returning it', async () => {
    const { runId, log, error } = await drive(diamond, { n: 5 }, { ...deps, distributedMapThreshold: 3 });
    expect(error).toBeUndefined();
    const key = `stackline/runs/${runId}/square/items.json`;
    expect(log.find((entry) => entry.action === 'plan-map')!.response).toEqual({
      count: 5,
      itemsBucket: 'items-bucket',
      itemsKey: key,
    });
    expect(JSON.parse(itemObjects.get(key)!)).toEqual([0, 1, 2, 3, 4]);
  });

  it('records a step that throws as failed, names the error StepFailedError and fails the run with nothing left running', async () => {
    flakyFailures = 1;
    const { runId, error } = await drive(failures, { failing: 'flaky' });
    expect(error).toBeInstanceOf(StepFailedError);
    expect(error!.name).toBe('StepFailedError');
    expect(error!.message).toMatch(/Step "flaky" failed after 1 attempt: the feature store timed out/);

    const run = await env.metadata.runs.get(runId);
    expect(run.status).toBe('failed');
    expect(run.error).toEqual({ type: 'StepFailedError', message: error!.message });
    const steps = await env.metadata.runs.listSteps(runId);
    expect(steps.map((s) => `${s.stepId}:${s.status}`)).toEqual(['source:completed', 'flaky:failed']);
  });

  it('runs a step again when the state machine retries it, without retrying in process', async () => {
    flakyFailures = 1;
    const { runId } = await send({ action: 'start-run', pipeline: failures.name, parameters: { failing: 'flaky' } });
    const ids = { pipeline: failures.name, runId };
    await send({ action: 'run-step', ...ids, stepId: 'source' });
    await expect(send({ action: 'run-step', ...ids, stepId: 'flaky' })).rejects.toThrow(StepFailedError);
    await expect(send({ action: 'run-step', ...ids, stepId: 'flaky', attempt: 1 })).resolves.toMatchObject({
      status: 'completed',
    });
    const steps = await env.metadata.runs.listSteps(runId);
    expect(steps.map((s) => `${s.stepId}:${s.status}:${s.attempts}`)).toEqual([
      'source:completed:1',
      'flaky:failed:1',
      'flaky:completed:1',
    ]);
  });

  it('does not run a completed step again when its response was lost and the task is retried', async () => {
    const { runId } = await send({ action: 'start-run', pipeline: diamond.name, parameters: {} });
    const first = await send({ action: 'run-step', pipeline: diamond.name, runId, stepId: 'source' });
    const again = await send({ action: 'run-step', pipeline: diamond.name, runId, stepId: 'source' });
    expect(again).toEqual(first);
    expect(calls).toEqual(['source']);
  });

  it.each([
    ['rejects', 'NonRetriableError', /row 17 has no label/],
    ['invalid', 'NonRetriableError', /output "n" does not match its schema/],
    ['slow', 'StepTimeoutError', /timed out after 20 ms/],
  ] as const)(
    'names a %s failure %s so the state machine can tell whether to retry',
    async (failing, name, message) => {
      const { error } = await drive(failures, { failing });
      expect(error!.name).toBe(name);
      expect(error!.message).toMatch(message);
    },
  );

  it('fails a fan-out whose item throws, leaving neither the parent nor any item running', async () => {
    const { runId, error } = await drive(failures, { failing: 'item' });
    expect(error!.name).toBe('StepFailedError');
    expect(error!.message).toMatch(/item 3 is corrupt/);
    const steps = await env.metadata.runs.listSteps(runId);
    expect(steps.filter((s) => s.status === 'running')).toEqual([]);
    expect(steps.find((s) => s.stepId === 'failing_item')).toMatchObject({
      status: 'failed',
      error: { type: 'StepFailedError' },
    });
    expect((await env.metadata.runs.get(runId)).status).toBe('failed');
  });

  it('names the items a collect-map is missing', async () => {
    const { runId } = await send({ action: 'start-run', pipeline: diamond.name, parameters: { n: 3 } });
    const ids = { pipeline: diamond.name, runId };
    for (const stepId of ['source', 'double', 'offset']) await send({ action: 'run-step', ...ids, stepId });
    expect(await send({ action: 'plan-map', ...ids, stepId: 'square' })).toEqual({ count: 3, items: [0, 1, 2] });
    await send({ action: 'run-step', ...ids, stepId: 'square', mapIndex: 1 });
    await expect(send({ action: 'collect-map', ...ids, stepId: 'square' })).rejects.toThrow(
      expect.objectContaining({
        name: 'NonRetriableError',
        message: expect.stringMatching(/2 of 3 items have not completed \(0, 2\)/),
      }),
    );
  });

  it('reuses the parent of a retried plan-map instead of leaving a second one running', async () => {
    const { runId } = await send({ action: 'start-run', pipeline: diamond.name, parameters: { n: 2 } });
    const ids = { pipeline: diamond.name, runId };
    for (const stepId of ['source', 'double', 'offset']) await send({ action: 'run-step', ...ids, stepId });
    await send({ action: 'plan-map', ...ids, stepId: 'square' });
    expect(await send({ action: 'plan-map', ...ids, stepId: 'square' })).toEqual({ count: 2, items: [0, 1] });
    const parents = (await env.metadata.runs.listSteps(runId)).filter((s) => s.stepId === 'square');
    expect(parents).toHaveLength(1);
  });
});

describe('run lifecycle requests', () => {
  it('returns the existing run when start-run is delivered twice with the same run id', async () => {
    const request = { action: 'start-run', pipeline: diamond.name, parameters: { n: 2 }, runId: 'run_fixed' } as const;
    expect(await send(request)).toEqual({ runId: 'run_fixed' });
    expect(await send(request)).toEqual({ runId: 'run_fixed' });
    expect((await env.metadata.runs.list()).items.map((r) => r.id)).toEqual(['run_fixed']);
    expect((await env.metadata.models.listVersions('runner_model')).items).toHaveLength(1);
  });

  it('records the execution ARN on the run it starts', async () => {
    const executionArn = 'arn:aws:states:us-east-1:123456789012:execution:runner_diamond:abc';
    const { runId } = await send({ action: 'start-run', pipeline: diamond.name, executionArn, tags: ['env:test'] });
    expect(await env.metadata.runs.get(runId)).toMatchObject({
      config: { orchestrator: 'step-functions', executionArn },
      tags: ['env:test'],
    });
  });

  it('rejects invalid parameters at start-run as NonRetriableError, recording nothing', async () => {
    await expect(send({ action: 'start-run', pipeline: diamond.name, parameters: { n: 'four' } })).rejects.toThrow(
      expect.objectContaining({ name: 'NonRetriableError', message: expect.stringMatching(/n: /) }),
    );
    expect((await env.metadata.runs.list()).items).toEqual([]);
  });

  it('treats a repeated finish-run as done, whatever status it carries', async () => {
    const { runId } = await send({ action: 'start-run', pipeline: diamond.name });
    const finish = { action: 'finish-run', pipeline: diamond.name, runId } as const;
    expect(await send({ ...finish, status: 'completed' })).toEqual({ runId, status: 'completed' });
    expect(await send({ ...finish, status: 'completed' })).toEqual({ runId, status: 'completed' });
    expect(await send({ ...finish, status: 'failed', error: { Error: 'States.Timeout' } })).toEqual({
      runId,
      status: 'completed',
    });
  });

  it('refuses to run a step of a run that has finished', async () => {
    const { runId } = await send({ action: 'start-run', pipeline: diamond.name });
    await send({
      action: 'finish-run',
      pipeline: diamond.name,
      runId,
      status: 'failed',
      error: { Error: 'States.ALL' },
    });
    await expect(send({ action: 'run-step', pipeline: diamond.name, runId, stepId: 'source' })).rejects.toThrow(
      expect.objectContaining({
        name: 'NonRetriableError',
        message: expect.stringMatching(/already finished \(failed\)/),
      }),
    );
    expect(calls).toEqual([]);
  });

  it('rejects an unknown step id as NonRetriableError', async () => {
    const { runId } = await send({ action: 'start-run', pipeline: diamond.name });
    await expect(send({ action: 'run-step', pipeline: diamond.name, runId, stepId: 'nope' })).rejects.toThrow(
      expect.objectContaining({ name: 'NonRetriableError', message: expect.stringMatching(/has no step "nope"/) }),
    );
  });

  it('rejects an unknown pipeline and a malformed request as NonRetriableError, naming what is wrong', async () => {
    await expect(send({ action: 'start-run', pipeline: 'other' })).rejects.toThrow(
      expect.objectContaining({ name: 'NonRetriableError', message: expect.stringMatching(/no pipeline "other"/) }),
    );
    expect(() => parseStepRunnerRequest({ action: 'run-step', pipeline: 'p', runId: 'r', mapIndex: -1 })).toThrow(
      expect.objectContaining({ name: 'NonRetriableError', message: expect.stringMatching(/stepId: .*mapIndex: /) }),
    );
  });
});

describe('toStepFunctionsError', () => {
  it('names deterministic failures anywhere in the cause chain NonRetriableError', () => {
    const invalid = new StepFailedError('Step "x" failed: bad output', {
      cause: new OutputValidationError('output "n" does not match its schema'),
    });
    expect(toStepFunctionsError(invalid)).toMatchObject({ name: 'NonRetriableError', message: invalid.message });
    expect(toStepFunctionsError(new NotFoundError('no such run'))).toMatchObject({ name: 'NonRetriableError' });
  });

  it('keeps the names of failures a retry may fix', () => {
    const lostRaces = new ConflictError('gave up after 200 attempts lost to concurrent writers; try again');
    expect(toStepFunctionsError(lostRaces).name).toBe('ConflictError');
    const throttled = Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' });
    expect(toStepFunctionsError(throttled)).toBe(throttled);
    const stepError = new StepFailedError('Step "x" failed after 1 attempt: boom', { cause: new Error('boom') });
    expect(toStepFunctionsError(stepError)).toBe(stepError);
  });
});

describe('errorFromCatch', () => {
  it('reads the Lambda error message from a JSON cause and keeps other causes as they are', () => {
    expect(
      errorFromCatch({
        Error: 'StepFailedError',
        Cause: JSON.stringify({ errorType: 'StepFailedError', errorMessage: 'boom' }),
      }),
    ).toEqual({ type: 'StepFailedError', message: 'boom' });
    expect(errorFromCatch({ Error: 'States.TaskFailed', Cause: 'Essential container in task exited' })).toEqual({
      type: 'States.TaskFailed',
      message: 'Essential container in task exited',
    });
    expect(errorFromCatch(undefined)).toEqual({
      type: 'States.Runtime',
      message: 'The state machine failed with States.Runtime.',
    });
  });
});
