/**
 * Counts the AWS requests Stackline's stores make, with an SDK middleware on the clients — the
 * measure behind `bench/aws-requests.ts` and the request-count tests. Counts are deterministic
 * (same pipeline, same store state → same requests), so tests may compare them exactly.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { z } from 'zod';
import { createMaterializerRegistry } from '../../lib/artifacts/registry.ts';
import { S3ArtifactStore } from '../../lib/artifacts/s3-artifact-store.ts';
import { pipeline } from '../../lib/dsl/pipeline.ts';
import { step } from '../../lib/dsl/step.ts';
import { DynamoDbMetadataStore } from '../../lib/metadata/dynamodb/dynamodb-metadata-store.ts';
import { createTables, type DynamoDbTableNames, tableNamesFor } from '../../lib/metadata/dynamodb/table-definitions.ts';
import { withStoreRules } from '../../lib/metadata/store-rules.ts';
import { runPipelineLocally } from '../../lib/runtime/local-orchestrator.ts';
import { handleStepRunnerRequest, type StepRunnerDeps } from '../../lib/runtime/step-runner.ts';
import { awsTestClientConfig } from './moto.ts';

type Handler = (args: unknown) => Promise<unknown>;
interface CountableStack {
  add(
    middleware: (next: Handler, context: { commandName?: string }) => Handler,
    options: { step: 'deserialize'; name: string; priority: 'low' },
  ): void;
}

/** Requests per service and operation (`dynamodb:TransactWriteItems`), and errors by name. */
export class RequestCounter {
  readonly requests = new Map<string, number>();
  readonly errors = new Map<string, number>();

  /** Counts every HTTP attempt the client makes (retries included), and the errors it gets back. */
  attach(client: DynamoDBClient | S3Client, service: 'dynamodb' | 's3'): void {
    (client.middlewareStack as unknown as CountableStack).add(
      (next, context) => async (args) => {
        const name = `${service}:${String(context.commandName ?? 'unknown').replace(/Command$/, '')}`;
        this.requests.set(name, (this.requests.get(name) ?? 0) + 1);
        try {
          return await next(args);
        } catch (error) {
          const errorName = `${service}:${(error as Error).name}`;
          this.errors.set(errorName, (this.errors.get(errorName) ?? 0) + 1);
          throw error;
        }
      },
      { step: 'deserialize', name: 'stacklineRequestCounter', priority: 'low' },
    );
  }

  total(service?: 'dynamodb' | 's3'): number {
    let sum = 0;
    for (const [name, count] of this.requests)
      if (service === undefined || name.startsWith(`${service}:`)) sum += count;
    return sum;
  }

  /** Resets the counts (between the phases a caller measures). */
  reset(): void {
    this.requests.clear();
    this.errors.clear();
  }

  /** `{ 'dynamodb:Query': 3, ... }`, sorted by name. */
  snapshot(): Record<string, number> {
    return Object.fromEntries([...this.requests].sort(([a], [b]) => a.localeCompare(b)));
  }
}

/** AWS stores on an emulator endpoint (fresh tables and bucket), their clients counted. */
export interface CountedAwsStack {
  counter: RequestCounter;
  deps: StepRunnerDeps;
  /** New store instances on the same counted clients: what a fresh (cold) Lambda container has. */
  coldDeps(): StepRunnerDeps;
  tables: DynamoDbTableNames;
  close(): Promise<void>;
}

/** Fresh DynamoDB tables and an S3 bucket under a unique prefix, with the step runner's dependencies on them. */
export async function createCountedAwsStack(
  endpoint: string,
  pipelines: StepRunnerDeps['pipelines'],
): Promise<CountedAwsStack> {
  const counter = new RequestCounter();
  const dynamodb = new DynamoDBClient(awsTestClientConfig(endpoint));
  const s3 = new S3Client({ ...awsTestClientConfig(endpoint), forcePathStyle: true });
  const prefix = `req${randomUUID().slice(0, 8)}`;
  const tables = tableNamesFor(prefix);
  await createTables(dynamodb, tables);
  await s3.send(new CreateBucketCommand({ Bucket: prefix }));
  // Counted from here on: setup is not part of any run.
  counter.attach(dynamodb, 'dynamodb');
  counter.attach(s3, 's3');
  const dir = await mkdtemp(join(tmpdir(), 'stackline-requests-'));
  let containers = 0;
  const coldDeps = (): StepRunnerDeps => {
    const container = join(dir, String(containers++));
    return {
      pipelines,
      stackName: 'requests',
      distributedMapThreshold: 1_000_000,
      stores: {
        metadata: withStoreRules(new DynamoDbMetadataStore({ client: dynamodb, tables })),
        artifacts: new S3ArtifactStore({
          client: s3,
          bucket: prefix,
          prefix: 'stackline',
          cacheDir: join(container, 'cache'),
        }),
        materializers: createMaterializerRegistry({ cacheDir: join(container, 'materialized') }),
      },
    };
  };
  return {
    counter,
    deps: coldDeps(),
    coldDeps,
    tables,
    async close() {
      await Promise.all(
        Object.values(tables).map((TableName) =>
          dynamodb.send(new DeleteTableCommand({ TableName })).catch(() => undefined),
        ),
      );
      dynamodb.destroy();
      s3.destroy();
    },
  };
}

const source = step(
  { name: 'req_source', parameters: z.object({ seed: z.number() }), outputs: { value: z.number() } },
  ({ params }) => ({ value: params.seed }),
);
const increment = step(
  { name: 'req_increment', inputs: { x: z.number() }, outputs: { value: z.number() } },
  ({ inputs }) => ({ value: inputs.x + 1 }),
);

/**
 * `s0 → s1 → … → s<n-1>`, each step adding one to its input. `seed` starts the chain, so runs with
 * different seeds share no cache entries and no blobs: every step executes.
 */
export function linearRequestPipeline(steps: number, seed = Date.now()) {
  return pipeline({ name: `req_linear_${steps}` }, () => {
    let { value } = source({}, { id: 's0', params: { seed } });
    for (let i = 1; i < steps; i++) ({ value } = increment({ x: value }, { id: `s${i}` }));
  });
}

const items = step(
  {
    name: 'req_items',
    parameters: z.object({ count: z.number().int(), seed: z.number() }),
    outputs: { ids: z.array(z.number()) },
  },
  ({ params }) => ({ ids: Array.from({ length: params.count }, (_, i) => params.seed + i) }),
);
const square = step({ name: 'req_square', inputs: { id: z.number() }, outputs: { out: z.number() } }, ({ inputs }) => ({
  out: inputs.id * inputs.id,
}));

/** `ids → square.map(ids)`: a fan-out of `count` items. */
export function fanOutRequestPipeline(count: number, seed = Date.now()) {
  return pipeline({ name: `req_fanout_${count}` }, () => {
    const { ids } = items({}, { params: { count, seed } });
    square.map({ id: ids }, { over: 'id' });
  });
}

/** Requests per executed step of a local run (`runPipelineLocally`) on the counted stores. */
export async function countLocalRun(stack: CountedAwsStack, steps: number) {
  const p = linearRequestPipeline(steps);
  stack.counter.reset();
  const result = await runPipelineLocally(p, stack.deps.stores, { cache: true, stackName: 'requests' });
  if (result.run.status !== 'completed') throw new Error(`The ${steps}-step local run ended ${result.run.status}.`);
  return perStep(stack.counter, steps);
}

/**
 * Requests per executed step when the step runner drives the run, invoked in-process the way the
 * compiled state machine's Task states invoke it: start-run, run-step per step, finish-run.
 * `cold`: every invocation gets new store instances, as if each ran in a fresh Lambda container;
 * otherwise all run in one warm container (the usual case for a linear pipeline's invocations).
 * `lastSteps`: count only the run-step invocations of the last steps (steps before them run
 * uncounted in a warm container, finish-run is not counted): the cost of one more step deep in a run.
 */
export async function countStepRunnerRun(
  stack: CountedAwsStack,
  steps: number,
  options: { cold?: boolean; lastSteps?: number } = {},
) {
  const p = linearRequestPipeline(steps);
  const warm = { ...stack.deps, pipelines: [p] };
  const counted = options.lastSteps ?? steps;
  const firstCounted = steps - counted;
  const depsOf = (i: number) => (options.cold && i >= firstCounted ? { ...stack.coldDeps(), pipelines: [p] } : warm);
  stack.counter.reset();
  const { runId } = await handleStepRunnerRequest(
    { action: 'start-run', pipeline: p.name, parameters: {}, tags: [] },
    depsOf(firstCounted > 0 ? -1 : 0),
  );
  for (let i = 0; i < steps; i++) {
    if (i === firstCounted && i > 0) stack.counter.reset();
    const done = await handleStepRunnerRequest(
      { action: 'run-step', pipeline: p.name, runId, stepId: `s${i}` },
      depsOf(i),
    );
    if (done.status !== 'completed') throw new Error(`Step s${i} ended ${done.status}.`);
  }
  const result = perStep(stack.counter, counted);
  const finished = await handleStepRunnerRequest(
    { action: 'finish-run', pipeline: p.name, runId, status: 'completed' },
    depsOf(steps),
  );
  if (finished.status !== 'completed') throw new Error(`The ${steps}-step run ended ${finished.status}.`);
  return firstCounted > 0 ? result : perStep(stack.counter, steps);
}

/**
 * A fan-out of `count` items through the step runner: plan-map, then the items spread over
 * `containers` concurrent workers (each its own store instances, as separate Lambda containers
 * of a Map state are), then collect-map. Returns requests per item and the conflicts seen:
 * ConflictErrors that failed an item, and transactions DynamoDB cancelled (retried inside).
 */
export async function countFanOut(stack: CountedAwsStack, count: number, containers = 16) {
  const p = fanOutRequestPipeline(count);
  const deps = { ...stack.deps, pipelines: [p] };
  const { runId } = await handleStepRunnerRequest(
    { action: 'start-run', pipeline: p.name, parameters: {}, tags: [] },
    deps,
  );
  await handleStepRunnerRequest({ action: 'run-step', pipeline: p.name, runId, stepId: 'req_items' }, deps);
  stack.counter.reset();
  const plan = await handleStepRunnerRequest(
    { action: 'plan-map', pipeline: p.name, runId, stepId: 'req_square' },
    deps,
  );
  if (plan.count !== count) throw new Error(`plan-map counted ${plan.count} items, not ${count}.`);
  let next = 0;
  let conflicts = 0;
  const worker = async () => {
    const container = { ...stack.coldDeps(), pipelines: [p] };
    for (let index = next++; index < count; index = next++) {
      try {
        await handleStepRunnerRequest(
          { action: 'run-step', pipeline: p.name, runId, stepId: 'req_square', mapIndex: index },
          container,
        );
      } catch (error) {
        if ((error as Error).name === 'ConflictError' || /conflict|gave up/i.test((error as Error).message))
          conflicts++;
        throw error;
      }
    }
  };
  await Promise.all(Array.from({ length: containers }, worker));
  const collected = await handleStepRunnerRequest(
    { action: 'collect-map', pipeline: p.name, runId, stepId: 'req_square' },
    deps,
  );
  if (collected.status !== 'completed') throw new Error(`collect-map ended ${collected.status}.`);
  const cancelled = stack.counter.errors.get('dynamodb:TransactionCanceledException') ?? 0;
  return { ...perStep(stack.counter, count), conflicts, cancelledTransactions: cancelled, runId };
}

function perStep(counter: RequestCounter, steps: number) {
  return {
    steps,
    dynamodb: counter.total('dynamodb'),
    s3: counter.total('s3'),
    perStep: counter.total() / steps,
    byOperation: counter.snapshot(),
  };
}
