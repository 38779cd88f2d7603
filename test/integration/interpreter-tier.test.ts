/**
 * The interpreter tier: compiled state machines executed by aws-local-stepfunctions, every Lambda
 * task bound to the real Lambda handler (`createLambdaHandler`, in process) and every ECS task to
 * the ECS entry point (`runEcsTask`), against S3 and DynamoDB on moto. Not covered here: the Step
 * Functions service itself, Lambda packaging and IAM (the bundle and CDK tests cover those).
 */
import { randomUUID } from 'node:crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { CreateBucketCommand, GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import * as featureEngineeringModule from '../../examples/reference/feature-engineering.ts';
import * as trainingModule from '../../examples/reference/training.ts';
import { runEcsTask } from '../../functions/step-runner/ecs.ts';
import { createLambdaHandler } from '../../functions/step-runner/lambda.ts';
import { compileToAsl, type EcsRunnerOptions } from '../../lib/compiler/compile-to-asl.ts';
import { NonRetriableError, type PipelineDefinition, pipeline, step } from '../../lib/index.ts';
import { createTables, tableNamesFor } from '../../lib/metadata/dynamodb/table-definitions.ts';
import type { StepRun } from '../../lib/metadata/types.ts';
import { createAwsStepRunnerDeps } from '../../lib/runtime/aws-step-runner-config.ts';
import { runPipelineLocally } from '../../lib/runtime/local-orchestrator.ts';
import type { StepEnvironment } from '../../lib/runtime/step-executor.ts';
import type { StepRunnerDeps } from '../../lib/runtime/step-runner.ts';
import { newId } from '../../lib/util/ids.ts';
import { createLocalTestEnv, type LocalTestEnv } from '../support/local-env.ts';
import { executeLocally, type LocalExecution } from '../support/local-step-functions.ts';
import { awsTestClientConfig, type MotoServer, startMoto } from '../support/moto.ts';

// ---------- pipelines ----------

const Num = z.number();
const seed = step(
  { name: 'it_seed', parameters: z.object({ n: z.number().int() }), outputs: { value: Num } },
  ({ params }) => ({ value: params.n }),
);
const addOne = step({ name: 'it_add_one', inputs: { x: Num }, outputs: { value: Num } }, ({ inputs }) => ({
  value: inputs.x + 1,
}));
const times = step(
  { name: 'it_times', inputs: { x: Num }, parameters: z.object({ k: z.number() }), outputs: { value: Num } },
  ({ inputs, params }) => ({ value: inputs.x * params.k }),
);
const sum = step({ name: 'it_sum', inputs: { a: Num, b: Num }, outputs: { value: Num } }, ({ inputs }) => ({
  value: inputs.a + inputs.b,
}));
const range = step(
  { name: 'it_range', parameters: z.object({ n: z.number().int() }), outputs: { items: z.array(Num) } },
  ({ params }) => ({ items: Array.from({ length: params.n }, (_, i) => i) }),
);
let squareCalls = 0;
const square = step({ name: 'it_square', inputs: { x: Num }, outputs: { value: Num } }, ({ inputs }) => {
  squareCalls++;
  return { value: inputs.x * inputs.x };
});
const total = step({ name: 'it_total', inputs: { values: z.array(Num) }, outputs: { value: Num } }, ({ inputs }) => ({
  value: inputs.values.reduce((a, b) => a + b, 0),
}));
const heavy = step(
  {
    name: 'it_heavy',
    inputs: { x: Num },
    outputs: { value: Num },
    runner: 'ecs',
    resources: { cpu: 1, memoryMb: 2048 },
  },
  ({ inputs }) => ({ value: inputs.x * 100 }),
);
let flakyFailuresLeft = 0;
const flaky = step(
  { name: 'it_flaky', inputs: { x: Num }, outputs: { value: Num }, retries: { maxRetries: 2, backoffMs: 1000 } },
  ({ inputs }) => {
    if (flakyFailuresLeft-- > 0) throw new Error('the feature store is warming up');
    return { value: inputs.x };
  },
);
let brokenCalls = 0;
const broken = step(
  { name: 'it_broken', inputs: { x: Num }, outputs: { value: Num }, retries: { maxRetries: 2, backoffMs: 1000 } },
  () => {
    brokenCalls++;
    throw new Error('the upstream API returned 500');
  },
);
let rejectingCalls = 0;
const rejecting = step(
  { name: 'it_rejecting', inputs: { x: Num }, outputs: { value: Num }, retries: { maxRetries: 3, backoffMs: 1000 } },
  () => {
    rejectingCalls++;
    throw new NonRetriableError('row 17 has no label');
  },
);

const linear = pipeline({ name: 'it_linear', parameters: z.object({ n: z.number().int().default(2) }) }, ({ n }) => {
  const { value } = seed({}, { params: { n } });
  const { value: plusOne } = addOne({ x: value });
  times({ x: plusOne }, { params: { k: 10 } });
});
const diamond = pipeline({ name: 'it_diamond', parameters: z.object({ n: z.number().int().default(3) }) }, ({ n }) => {
  const { value } = seed({}, { params: { n } });
  const { value: left } = addOne({ x: value });
  const { value: right } = times({ x: value }, { params: { k: 2 } });
  sum({ a: left, b: right });
});
const fanOut = pipeline({ name: 'it_fan_out', parameters: z.object({ n: z.number().int().default(5) }) }, ({ n }) => {
  const { items } = range({}, { params: { n } });
  const { value } = square.map({ x: items }, { over: 'x', maxConcurrency: 4 });
  total({ values: value });
});
const mixed = pipeline({ name: 'it_mixed' }, () => {
  const { value } = seed({}, { params: { n: 4 } });
  const { value: big } = heavy({ x: value });
  addOne({ x: big });
});
const retrying = pipeline({ name: 'it_retrying' }, () => {
  const { value } = seed({}, { params: { n: 7 } });
  flaky({ x: value });
});
const failing = pipeline({ name: 'it_failing' }, () => {
  const { value } = seed({}, { params: { n: 8 } });
  const { value: after } = broken({ x: value });
  addOne({ x: after });
});
const nonRetriable = pipeline({ name: 'it_non_retriable' }, () => {
  const { value } = seed({}, { params: { n: 9 } });
  rejecting({ x: value });
});
const wideFanOut = pipeline(
  { name: 'it_wide_fan_out', parameters: z.object({ n: z.number().int().default(1000) }) },
  ({ n }) => {
    const { items } = range({}, { params: { n } });
    const { value } = square.map({ x: items }, { over: 'x', maxConcurrency: 50 });
    total({ values: value });
  },
);

let ecsRejectingCalls = 0;
const ecsRejecting = step(
  {
    name: 'it_ecs_rejecting',
    inputs: { x: Num },
    outputs: { value: Num },
    runner: 'ecs',
    retries: { maxRetries: 3, backoffMs: 1000 },
  },
  () => {
    ecsRejectingCalls++;
    throw new NonRetriableError('the training set has no rows');
  },
);
let ecsFlakyFailuresLeft = 0;
let ecsFlakyCalls = 0;
const ecsFlaky = step(
  {
    name: 'it_ecs_flaky',
    inputs: { x: Num },
    outputs: { value: Num },
    runner: 'ecs',
    retries: { maxRetries: 3, backoffMs: 1000 },
  },
  ({ inputs }) => {
    ecsFlakyCalls++;
    if (ecsFlakyFailuresLeft-- > 0) throw new Error('the GPU node went away');
    return { value: inputs.x * 2 };
  },
);
const ecsNonRetriable = pipeline({ name: 'it_ecs_non_retriable' }, () => {
  const { value } = seed({}, { params: { n: 10 } });
  ecsRejecting({ x: value });
});
const ecsRetrying = pipeline(
  { name: 'it_ecs_retrying', parameters: z.object({ n: z.number().int().default(11) }) },
  ({ n }) => {
    const { value } = seed({}, { params: { n } });
    ecsFlaky({ x: value });
  },
);

const testModule = {
  linear,
  diamond,
  fanOut,
  mixed,
  retrying,
  failing,
  nonRetriable,
  wideFanOut,
  ecsNonRetriable,
  ecsRetrying,
};

// ---------- the emulated account ----------

const LAMBDA_ARN = 'arn:aws:lambda:us-east-1:123456789012:function:stackline-step-runner';
const ECS: EcsRunnerOptions = {
  clusterArn: 'arn:aws:ecs:us-east-1:123456789012:cluster/stackline',
  taskDefinitionArn: 'arn:aws:ecs:us-east-1:123456789012:task-definition/stackline-step-runner:1',
  containerName: 'step-runner',
  subnets: ['subnet-0123456789abcdef0'],
};
const suffix = randomUUID().slice(0, 8);
const BUCKET = `stackline-it-${suffix}`;
const TABLE_PREFIX = `it${suffix}`;

let moto: MotoServer;
let s3: S3Client;
let dynamo: DynamoDBClient;
/** The same stores the runner uses, for assertions. */
let stores: StepEnvironment;

beforeAll(async () => {
  moto = await startMoto();
  s3 = new S3Client(awsTestClientConfig(moto.endpoint));
  dynamo = new DynamoDBClient(awsTestClientConfig(moto.endpoint));
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
  await createTables(dynamo, tableNamesFor(TABLE_PREFIX));
  // What the CDK stack sets on the function and the task definition (read at the first invocation).
  Object.assign(process.env, {
    STACKLINE_STACK: 'aws-it',
    STACKLINE_ARTIFACT_BUCKET: BUCKET,
    STACKLINE_ARTIFACT_PREFIX: 'stackline',
    STACKLINE_TABLE_PREFIX: TABLE_PREFIX,
    STACKLINE_PROMOTERS: 'iris_training',
    AWS_REGION: 'us-east-1',
    AWS_ENDPOINT_URL: moto.endpoint,
    AWS_ACCESS_KEY_ID: 'test',
    AWS_SECRET_ACCESS_KEY: 'test',
  });
  stores = createAwsStepRunnerDeps([]).stores;
});

afterAll(async () => {
  s3?.destroy();
  dynamo?.destroy();
  await moto?.stop();
});

const silent = { write: () => true };

/**
 * Compiles `p` and executes it with its tasks bound to the Lambda handler and the ECS entry point
 * made from `module` (one deployment per pipeline module, as `stackline bundle` makes them).
 */
async function execute(
  module: Record<string, unknown>,
  p: PipelineDefinition,
  input: { parameters?: Record<string, unknown>; runId?: string } = {},
  options: {
    resolveDeps?: (pipelines: PipelineDefinition[]) => StepRunnerDeps;
    readItems?: (bucket: string, key: string) => Promise<unknown[]>;
  } = {},
): Promise<LocalExecution & { runId: string }> {
  const handler = createLambdaHandler(module, options.resolveDeps);
  const { definition } = compileToAsl(p, { lambdaFunctionArn: LAMBDA_ARN, ecs: ECS });
  const execution = await executeLocally(
    definition,
    { pipeline: p.name, parameters: input.parameters ?? {}, ...(input.runId ? { runId: input.runId } : {}) },
    {
      lambda: (payload) => handler(payload, {} as never),
      ecs: (request, taskToken, stepFunctions) =>
        runEcsTask(module, request, {
          stdout: silent,
          stderr: silent,
          taskToken,
          stepFunctions,
          ...(options.resolveDeps ? { resolveDeps: options.resolveDeps } : {}),
        }),
      readItems:
        options.readItems ??
        (async (bucket, key) => {
          const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
          return JSON.parse(await object.Body!.transformToString()) as unknown[];
        }),
    },
  );
  const runId = execution.taskCalls.map((call) => (call.request as { runId?: string }).runId).find(Boolean);
  return { ...execution, runId: runId! };
}

async function outputValue(runId: string, stepId: string, output = 'value', target: StepEnvironment = stores) {
  const steps = await target.metadata.runs.listSteps(runId);
  const stepRun = steps
    .filter((s) => s.stepId === stepId && (s.status === 'completed' || s.status === 'cached'))
    .at(-1)!;
  const version = await target.metadata.artifacts.getVersionById(stepRun.outputs[output]!);
  return target.materializers.get(version.materializer).load(version, { store: target.artifacts });
}

const summary = (steps: StepRun[]) => steps.map((s) => `${s.stepId}:${s.status}`);

describe('compiled pipelines on the interpreter, with the real step runner on moto', () => {
  it('runs a linear pipeline, creating the run itself when the input has no runId', async () => {
    const execution = await execute(testModule, linear, { parameters: { n: 4 } });
    expect(execution.error).toBeUndefined();
    const run = await stores.metadata.runs.get(execution.runId);
    expect(run).toMatchObject({
      status: 'completed',
      stack: 'aws-it',
      parameters: { n: 4 },
      config: { orchestrator: 'step-functions', executionArn: expect.stringMatching(/^arn:aws:states:/) },
    });
    expect(summary(await stores.metadata.runs.listSteps(run.id))).toEqual([
      'it_seed:completed',
      'it_add_one:completed',
      'it_times:completed',
    ]);
    expect(await outputValue(run.id, 'it_times')).toBe(50);
  });

  it('runs the branches of a diamond in a Parallel state and joins them', async () => {
    const runId = newId('run');
    const execution = await execute(testModule, diamond, { runId });
    expect(execution.error).toBeUndefined();
    expect(execution.runId).toBe(runId);
    expect((await stores.metadata.runs.get(runId)).status).toBe('completed');
    expect(await outputValue(runId, 'it_sum')).toBe(3 + 1 + 3 * 2);
  });

  it('fans out over an inline Map and serves the whole fan-out from the cache the second time', async () => {
    squareCalls = 0;
    const first = await execute(testModule, fanOut, { parameters: { n: 5 } });
    expect(first.error).toBeUndefined();
    expect(squareCalls).toBe(5);
    expect(await outputValue(first.runId, 'it_total')).toBe(0 + 1 + 4 + 9 + 16);
    const steps = await stores.metadata.runs.listSteps(first.runId);
    expect(summary(steps).sort()).toEqual(
      ['it_range', 'it_square', ...[0, 1, 2, 3, 4].map((i) => `it_square[${i}]`), 'it_total']
        .map((s) => `${s}:completed`)
        .sort(),
    );

    const second = await execute(testModule, fanOut, { parameters: { n: 5 } });
    expect(second.error).toBeUndefined();
    expect(squareCalls).toBe(5);
    expect(summary(await stores.metadata.runs.listSteps(second.runId))).toEqual([
      'it_range:cached',
      'it_square:cached',
      'it_total:cached',
    ]);
  });

  it('runs an ECS step through the ECS entry point between Lambda steps', async () => {
    const execution = await execute(testModule, mixed);
    expect(execution.error).toBeUndefined();
    expect(execution.taskCalls.map((call) => `${call.state}:${(call.request as { action: string }).action}`)).toEqual([
      'StartRun:start-run',
      'Step_it_seed:run-step',
      'Step_it_heavy:run-step',
      'Step_it_add_one:run-step',
      'FinishRun:finish-run',
    ]);
    expect(await outputValue(execution.runId, 'it_add_one')).toBe(401);
  });

  it('retries a step that throws once, as the state machine Retry says, then completes the run', async () => {
    flakyFailuresLeft = 1;
    const execution = await execute(testModule, retrying);
    expect(execution.error).toBeUndefined();
    expect(execution.taskCalls.filter((call) => call.state === 'Step_it_flaky')).toHaveLength(2);
    const steps = await stores.metadata.runs.listSteps(execution.runId);
    expect(steps.map((s) => `${s.stepId}:${s.status}:${s.attempts}`)).toEqual([
      'it_seed:completed:1',
      'it_flaky:failed:1',
      'it_flaky:completed:1',
    ]);
    expect((await stores.metadata.runs.get(execution.runId)).status).toBe('completed');
  });

  it('fails the run when a step keeps throwing: error recorded, nothing left running, execution failed', async () => {
    brokenCalls = 0;
    const execution = await execute(testModule, failing);
    expect(execution.error).toMatchObject({ name: 'StepFailed' });
    expect(brokenCalls).toBe(3);
    const run = await stores.metadata.runs.get(execution.runId);
    expect(run.status).toBe('failed');
    expect(run.error).toEqual({
      type: 'StepFailedError',
      message: 'Step "it_broken" failed after 1 attempt: the upstream API returned 500',
    });
    const steps = await stores.metadata.runs.listSteps(execution.runId);
    expect(summary(steps)).toEqual(['it_seed:completed', 'it_broken:failed', 'it_broken:failed', 'it_broken:failed']);
    expect(steps.filter((s) => s.status === 'running')).toEqual([]);
  });

  it('does not retry a NonRetriableError', async () => {
    rejectingCalls = 0;
    const execution = await execute(testModule, nonRetriable);
    expect(execution.error).toMatchObject({ name: 'StepFailed' });
    expect(rejectingCalls).toBe(1);
    expect((await stores.metadata.runs.get(execution.runId)).error).toMatchObject({ type: 'NonRetriableError' });
  });
});

describe('the reference pipelines on the interpreter', () => {
  let local: LocalTestEnv;
  beforeAll(async () => {
    local = await createLocalTestEnv();
  });
  afterAll(async () => {
    await local?.cleanup();
  });

  it('trains the same model as a local run: same artifacts, step records and model version', async () => {
    const { featureEngineering } = featureEngineeringModule;
    const { training, MODEL_NAME } = trainingModule;

    const features = await execute(featureEngineeringModule, featureEngineering);
    expect(features.error).toBeUndefined();
    const trained = await execute(trainingModule, training);
    expect(trained.error).toBeUndefined();

    await runPipelineLocally(featureEngineering, local, { actor: 'it' });
    const localRun = (await runPipelineLocally(training, local, { actor: 'it' })).run;
    expect(localRun.status).toBe('completed');
    const awsRun = await stores.metadata.runs.get(trained.runId);
    expect(awsRun.status).toBe('completed');

    const hashOf = async (target: StepEnvironment, name: string) =>
      (await target.metadata.artifacts.getVersion(name, 'latest')).contentHash;
    for (const artifact of ['iris_model', 'iris_metrics', 'iris_preprocessor', 'iris_train_features']) {
      expect(await hashOf(stores, artifact), artifact).toBe(await hashOf(local, artifact));
    }

    const stepsOf = async (target: StepEnvironment, runId: string) =>
      (await target.metadata.runs.listSteps(runId)).map((s) => `${s.stepId}:${s.status}:${s.stepName}:${s.cacheKey}`);
    expect((await stepsOf(stores, awsRun.id)).sort()).toEqual((await stepsOf(local, localRun.id)).sort());
    expect(awsRun.parameters).toEqual(localRun.parameters);
    expect(awsRun.tags).toEqual(localRun.tags);

    const versionOf = async (target: StepEnvironment) => {
      const version = await target.metadata.models.getVersion(MODEL_NAME, 'latest');
      return {
        number: version.number,
        stage: version.stage,
        metadata: version.metadata,
        artifacts: version.artifacts.map((a) => `${a.role}:${a.artifactName}`).sort(),
      };
    };
    const awsVersion = await versionOf(stores);
    expect(awsVersion).toEqual(await versionOf(local));
    expect(awsVersion).toMatchObject({ number: 1, stage: 'production' });
    expect(awsVersion.artifacts).toEqual([
      'data:iris_metrics',
      'data:iris_scaler',
      'data:iris_test_features',
      'data:iris_train_features',
      'deployment:iris_preprocessor',
      'model:iris_checkpoint',
      'model:iris_model',
    ]);
  });
});

describe('duplicate deliveries and Lambda failures', () => {
  it('every run-step delivered twice, Lambda errors injected before and after steps: each step runs once, results equal a clean run', async () => {
    let seed = 7;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const handler = createLambdaHandler(testModule);
    let injected = 0;
    let duplicates = 0;
    const failedBefore = new Set<string>();
    const failedAfter = new Set<string>();
    const lambda = async (payload: unknown) => {
      const request = payload as { action: string };
      if (request.action !== 'run-step') return handler(payload, {} as never);
      // At most one injected failure before and one after per request: fewer than the state
      // machine's Lambda retries, whatever order the Map items arrive in.
      const key = JSON.stringify(payload);
      if (!failedBefore.has(key) && random() < 0.3) {
        failedBefore.add(key);
        injected++;
        throw Object.assign(new Error('Rate exceeded'), { name: 'Lambda.TooManyRequestsException' });
      }
      // Delivered twice at once: one runs the step, the other waits on its lease or returns its result.
      duplicates++;
      const [first, second] = await Promise.allSettled([handler(payload, {} as never), handler(payload, {} as never)]);
      const settled = first.status === 'fulfilled' ? first : second;
      if (settled.status === 'rejected') throw (first as PromiseRejectedResult).reason;
      if (!failedAfter.has(key) && random() < 0.3) {
        failedAfter.add(key);
        // The step completed but its response was lost: Step Functions retries the delivery.
        injected++;
        throw Object.assign(new Error('Service error'), { name: 'Lambda.ServiceException' });
      }
      return settled.value;
    };
    const { definition } = compileToAsl(fanOut, { lambdaFunctionArn: LAMBDA_ARN });
    squareCalls = 0;
    const chaotic = await executeLocally(definition, { pipeline: 'it_fan_out', parameters: { n: 9 } }, { lambda });
    expect(chaotic.error).toBeUndefined();
    const runId = chaotic.taskCalls.map((call) => (call.request as { runId?: string }).runId).find(Boolean)!;

    // Each of the 9 items is recorded once, and each that ran (not served from the cache, which
    // earlier tests fill) ran exactly once, despite the duplicates and retries.
    const items = (await stores.metadata.runs.listSteps(runId)).filter((s) => /^it_square\[\d+\]$/.test(s.stepId));
    expect(items.map((s) => s.stepId).sort()).toEqual(Array.from({ length: 9 }, (_, i) => `it_square[${i}]`).sort());
    expect(squareCalls).toBe(items.filter((s) => s.status === 'completed').length);
    expect(squareCalls).toBeGreaterThan(0);
    expect(injected).toBeGreaterThan(0);
    expect(duplicates).toBeGreaterThan(9);
    const chaoticRun = await stores.metadata.runs.get(runId);
    expect(chaoticRun.status).toBe('completed');

    const clean = await createLocalTestEnv();
    try {
      const cleanRun = (await runPipelineLocally(fanOut, clean, { params: { n: 9 } })).run;
      const stepsOf = async (target: StepEnvironment, id: string) =>
        (await target.metadata.runs.listSteps(id))
          // Earlier tests filled the cache for some items: done is done, whether run or reused.
          .map((s) => `${s.stepId}:${s.status === 'cached' ? 'completed' : s.status}:${s.cacheKey}`)
          .sort();
      expect(await stepsOf(stores, runId)).toEqual(await stepsOf(clean, cleanRun.id));
      const hash = async (target: StepEnvironment, name: string) =>
        (await target.metadata.artifacts.getVersion(name, 'latest')).contentHash;
      expect(await hash(stores, 'it_total.value')).toBe(await hash(clean, 'it_total.value'));
      expect(await outputValue(runId, 'it_total')).toBe(
        Array.from({ length: 9 }, (_, i) => i * i).reduce((a, b) => a + b),
      );
    } finally {
      await clean.cleanup();
    }
  });
});

describe('wide fan-outs', () => {
  it('runs a fan-out wider than the threshold as a Distributed Map reading its items from S3', async () => {
    const execution = await execute(testModule, wideFanOut, { parameters: { n: 45 } });
    expect(execution.error).toBeUndefined();
    const items = (await stores.metadata.runs.listSteps(execution.runId)).filter((s) =>
      s.stepId.startsWith('it_square['),
    );
    expect(new Set(items.map((s) => s.stepId)).size).toBe(45);
    const plan = execution.taskCalls.findIndex((call) => call.state === 'PlanMap_it_square');
    expect(
      execution.taskCalls.slice(plan + 1, plan + 46).every((call) => call.state === 'DistributedStep_it_square'),
    ).toBe(true);
    expect(await outputValue(execution.runId, 'it_total')).toBe((44 * 45 * 89) / 6);
  });

  /**
   * 1,000 items against moto take minutes (measured: ~3.5 items/s and slowing: every item's step
   * record allocates the next version of one artifact name, and moto's DynamoDB slows down as the
   * table grows), so this case runs the same interpreter and the same Lambda handler core against
   * a local stack (SQLite + disk), which proves the payload bound just as well.
   */
  it('runs 1,000 items with every state and task payload under 8 KB', async () => {
    const local = await createLocalTestEnv();
    const itemObjects = new Map<string, string>();
    try {
      const resolveDeps = (pipelines: PipelineDefinition[]): StepRunnerDeps => ({
        pipelines,
        stores: local,
        stackName: 'local-interpreter',
        itemsLocation: {
          bucket: 'local-items',
          prefix: 'stackline',
          write: async (key, body) => {
            itemObjects.set(key, body);
          },
        },
      });
      squareCalls = 0;
      const started = performance.now();
      const execution = await execute(
        testModule,
        wideFanOut,
        { parameters: { n: 1000 } },
        { resolveDeps, readItems: async (_bucket, key) => JSON.parse(itemObjects.get(key)!) as unknown[] },
      );
      const seconds = (performance.now() - started) / 1000;
      expect(execution.error).toBeUndefined();
      expect(squareCalls).toBe(1000);
      expect(await outputValue(execution.runId, 'it_total', 'value', local)).toBe((999 * 1000 * 1999) / 6);
      console.info(
        `1,000-item fan-out (local stores): ${seconds.toFixed(1)} s, ${execution.taskCalls.length} task calls; ` +
          `largest state ${execution.largestState.bytes} B (${execution.largestState.where}); ` +
          `largest task payload ${execution.largestTaskPayload.bytes} B (${execution.largestTaskPayload.where})`,
      );
      expect(execution.largestState.bytes).toBeLessThan(8 * 1024);
      expect(execution.largestTaskPayload.bytes).toBeLessThan(8 * 1024);
    } finally {
      await local.cleanup();
    }
  });
});

describe('ECS steps report their outcome on the task token', () => {
  it('does not retry a NonRetriableError thrown in an ECS step: one task, the error named by the container', async () => {
    ecsRejectingCalls = 0;
    const execution = await execute(testModule, ecsNonRetriable);
    expect(execution.error).toMatchObject({ name: 'StepFailed' });
    expect(ecsRejectingCalls).toBe(1);
    expect(execution.taskCalls.filter((call) => call.state === 'Step_it_ecs_rejecting')).toHaveLength(1);
    expect(execution.taskTokenCalls.filter((call) => call.command !== 'SendTaskHeartbeat')).toEqual([
      { command: 'SendTaskFailure', taskToken: expect.any(String), error: 'NonRetriableError' },
    ]);
    expect(execution.taskTokenCalls.some((call) => call.command === 'SendTaskHeartbeat')).toBe(true);
    const run = await stores.metadata.runs.get(execution.runId);
    expect(run.status).toBe('failed');
    expect(run.error).toMatchObject({ type: 'NonRetriableError', message: expect.stringContaining('no rows') });
  });

  it('retries a transient failure of an ECS step as its retries say, then completes the run', async () => {
    ecsFlakyCalls = 0;
    ecsFlakyFailuresLeft = 2;
    const execution = await execute(testModule, ecsRetrying, { parameters: { n: 21 } });
    expect(execution.error).toBeUndefined();
    expect(ecsFlakyCalls).toBe(3);
    expect(execution.taskTokenCalls.filter((call) => call.command !== 'SendTaskHeartbeat')).toEqual([
      { command: 'SendTaskFailure', taskToken: expect.any(String), error: 'StepFailedError' },
      { command: 'SendTaskFailure', taskToken: expect.any(String), error: 'StepFailedError' },
      { command: 'SendTaskSuccess', taskToken: expect.any(String) },
    ]);
    const steps = await stores.metadata.runs.listSteps(execution.runId);
    expect(summary(steps)).toEqual([
      'it_seed:completed',
      'it_ecs_flaky:failed',
      'it_ecs_flaky:failed',
      'it_ecs_flaky:completed',
    ]);
    expect(await outputValue(execution.runId, 'it_ecs_flaky')).toBe(42);
  });

  it('fails the state with States.Timeout when the container stops without sending the token back', async () => {
    const handler = createLambdaHandler(testModule);
    const { definition } = compileToAsl(ecsRetrying, { lambdaFunctionArn: LAMBDA_ARN, ecs: ECS });
    let containers = 0;
    const execution = await executeLocally(
      definition,
      { pipeline: 'it_ecs_retrying', parameters: { n: 31 } },
      {
        lambda: (payload) => handler(payload, {} as never),
        // Killed before it reported (out of memory, stopped): no token, no heartbeats.
        ecs: async () => {
          containers++;
          return 137;
        },
      },
    );
    // A dead task is retried like a step timeout (States.Timeout), then the run fails with it.
    expect(containers).toBe(4);
    expect(execution.error).toMatchObject({ name: 'StepFailed' });
    const runId = execution.taskCalls.map((call) => (call.request as { runId?: string }).runId).find(Boolean)!;
    expect((await stores.metadata.runs.get(runId)).error).toMatchObject({ type: 'States.Timeout' });
  });
});

describe('duplicate deliveries and Lambda failures on the reference scenario', () => {
  /**
   * Fresh tables and a fresh bucket on moto, so version numbers can be compared with a clean run's
   * exactly; the runner reads them from its environment, as the deployed function does.
   */
  async function freshStores(name: string) {
    const bucket = `${BUCKET}-${name}`;
    const tablePrefix = `${TABLE_PREFIX}${name}`;
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    await createTables(dynamo, tableNamesFor(tablePrefix));
    const env = { ...process.env, STACKLINE_ARTIFACT_BUCKET: bucket, STACKLINE_TABLE_PREFIX: tablePrefix };
    const byPipelines = new Map<readonly PipelineDefinition[], StepRunnerDeps>();
    const resolveDeps = (pipelines: PipelineDefinition[]) => {
      const deps = byPipelines.get(pipelines) ?? createAwsStepRunnerDeps(pipelines, env);
      byPipelines.set(pipelines, deps);
      return deps;
    };
    return { resolveDeps, stores: createAwsStepRunnerDeps([], env).stores };
  }

  /** Runs the reference feature engineering and training through the interpreter; `chaos` wraps each Lambda call. */
  async function runScenario(
    resolveDeps: (pipelines: PipelineDefinition[]) => StepRunnerDeps,
    chaos?: (call: (payload: unknown) => Promise<unknown>, payload: unknown) => Promise<unknown>,
  ) {
    const runIds: string[] = [];
    for (const [module, p] of [
      [featureEngineeringModule, featureEngineeringModule.featureEngineering],
      [trainingModule, trainingModule.training],
    ] as const) {
      const handler = createLambdaHandler(module, resolveDeps);
      const call = (payload: unknown) => handler(payload, {} as never);
      const { definition } = compileToAsl(p, { lambdaFunctionArn: LAMBDA_ARN });
      const execution = await executeLocally(
        definition,
        { pipeline: p.name, parameters: {} },
        { lambda: (payload) => (chaos ? chaos(call, payload) : call(payload)) },
      );
      expect(execution.error, p.name).toBeUndefined();
      runIds.push(execution.taskCalls.map((c) => (c.request as { runId?: string }).runId).find(Boolean)!);
    }
    return runIds;
  }

  /** What a run leaves behind, in a form two stores can be compared by. */
  async function outcome(target: StepEnvironment, runIds: string[]) {
    const runs = [];
    for (const runId of runIds) {
      const run = await target.metadata.runs.get(runId);
      const steps = (await target.metadata.runs.listSteps(runId))
        .map((s) => `${s.stepId}:${s.status}:${s.attempts}:${s.cacheKey}`)
        .sort();
      runs.push({ pipeline: run.pipeline, status: run.status, steps });
    }
    const artifacts: string[] = [];
    for (const summary of (await target.metadata.artifacts.list()).items) {
      for (const v of (await target.metadata.artifacts.listVersions(summary.name)).items)
        artifacts.push(`${v.name}@${v.version}:${v.contentHash}`);
    }
    const model = trainingModule.MODEL_NAME;
    const versions = (await target.metadata.models.listVersions(model)).items.map((v) => ({
      number: v.number,
      stage: v.stage,
      metadata: v.metadata,
      artifacts: v.artifacts.map((a) => `${a.role}:${a.artifactName}`).sort(),
    }));
    const history = (await target.metadata.models.history(model)).items.map(
      (h) => `v${h.versionNumber}:${h.fromStage ?? '-'}→${h.toStage}`,
    );
    return { runs, artifacts: artifacts.sort(), versions, history };
  }

  it('every run-step delivered twice and Lambda errors injected at random steps: runs, artifacts and model versions equal a clean run', async () => {
    let seed = 11;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    let injected = 0;
    let duplicates = 0;
    const failedBefore = new Set<string>();
    const failedAfter = new Set<string>();
    const chaos = async (call: (payload: unknown) => Promise<unknown>, payload: unknown) => {
      if ((payload as { action: string }).action !== 'run-step') return call(payload);
      // At most one injected failure before and one after per request: fewer than the Lambda retrier allows.
      const key = JSON.stringify(payload);
      if (!failedBefore.has(key) && random() < 0.3) {
        failedBefore.add(key);
        injected++;
        throw Object.assign(new Error('Rate exceeded'), { name: 'Lambda.TooManyRequestsException' });
      }
      // Delivered twice at once: one runs the step, the other waits on its lease or returns its result.
      duplicates++;
      const [first, second] = await Promise.allSettled([call(payload), call(payload)]);
      const settled = first.status === 'fulfilled' ? first : second;
      if (settled.status === 'rejected') throw (first as PromiseRejectedResult).reason;
      if (!failedAfter.has(key) && random() < 0.3) {
        // The step completed but the response was lost: Step Functions delivers it again.
        failedAfter.add(key);
        injected++;
        throw Object.assign(new Error('Service error'), { name: 'Lambda.ServiceException' });
      }
      return settled.value;
    };

    const chaotic = await freshStores('chaos');
    const chaoticRuns = await runScenario(chaotic.resolveDeps, chaos);
    const clean = await freshStores('clean');
    const cleanRuns = await runScenario(clean.resolveDeps);

    const [got, want] = await Promise.all([outcome(chaotic.stores, chaoticRuns), outcome(clean.stores, cleanRuns)]);
    console.info(
      `reference scenario with ${duplicates} duplicated run-step deliveries and ${injected} injected Lambda errors: ` +
        `${got.artifacts.length} artifact versions, ${got.versions.length} model version(s), equal to a clean run`,
    );
    expect(injected).toBeGreaterThan(2);
    expect(duplicates).toBeGreaterThanOrEqual(8);
    expect(got.runs.every((r) => r.status === 'completed')).toBe(true);
    // Each step ran once (one step run, one attempt), whatever was delivered twice or retried.
    expect(got.runs).toEqual(want.runs);
    expect(got.artifacts).toEqual(want.artifacts);
    expect(got.versions).toEqual(want.versions);
    expect(got.versions.map((v) => `${v.number}:${v.stage}`)).toEqual(['1:production']);
    expect(got.history).toEqual(want.history);
  }, 300_000);
});
