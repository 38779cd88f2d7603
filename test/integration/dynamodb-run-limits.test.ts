import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { LocalArtifactStore } from '../../lib/artifacts/local-artifact-store.ts';
import { createMaterializerRegistry } from '../../lib/artifacts/registry.ts';
import { pipeline, step } from '../../lib/index.ts';
import { DynamoDbMetadataStore } from '../../lib/metadata/dynamodb/dynamodb-metadata-store.ts';
import { createTables, type DynamoDbTableNames, tableNamesFor } from '../../lib/metadata/dynamodb/table-definitions.ts';
import { loadStepSnapshot, stepSnapshotReference } from '../../lib/metadata/step-snapshot.ts';
import { runPipelineLocally } from '../../lib/runtime/local-orchestrator.ts';
import { handleStepRunnerRequest, type StepRunnerDeps } from '../../lib/runtime/step-runner.ts';
import { createCountedAwsStack, linearRequestPipeline } from '../support/aws-request-counter.ts';
import { awsTestClientConfig, type MotoServer, startMoto } from '../support/moto.ts';

/** Run records at sizes a single DynamoDB transaction or item cannot hold. */

let moto: MotoServer;
let client: DynamoDBClient;
let dir: string;
let deps: StepRunnerDeps;
let tables: DynamoDbTableNames;

const ids = step({ name: 'ids', outputs: { ids: z.array(z.number().int()) } }, () => ({
  ids: Array.from({ length: 500 }, (_, i) => i),
}));
const work = step({ name: 'work', inputs: { id: z.number().int() }, outputs: { out: z.number() } }, ({ inputs }) => {
  if (inputs.id === 250) throw new Error('item 250 is broken');
  return { out: inputs.id * 2 };
});
const wide = pipeline({ name: 'wide' }, () => {
  const { ids: list } = ids();
  work.map({ id: list }, { over: 'id' });
});

const chatty = step({ name: 'chatty', outputs: { ok: z.boolean() } }, ({ context }) => {
  const line = 'x'.repeat(1023);
  for (let i = 0; i < 5 * 1024; i++) context.log(`${String(i).padStart(6, '0')} ${line}`);
  return { ok: true };
});
const loud = pipeline({ name: 'loud' }, () => void chatty());

beforeAll(async () => {
  moto = await startMoto();
  client = new DynamoDBClient(awsTestClientConfig(moto.endpoint));
  const prefix = `t${randomUUID().slice(0, 8)}`;
  tables = tableNamesFor(prefix);
  await createTables(client, tables);
  dir = await mkdtemp(join(tmpdir(), 'stackline-ddb-limits-'));
  deps = {
    pipelines: [wide, loud],
    stackName: 'aws',
    distributedMapThreshold: 1000,
    stores: {
      metadata: new DynamoDbMetadataStore({ client, tables }),
      artifacts: new LocalArtifactStore(join(dir, 'artifacts')),
      materializers: createMaterializerRegistry({ cacheDir: join(dir, 'materialized') }),
    },
  };
});

afterAll(async () => {
  await Promise.all(
    Object.values(tables ?? {}).map((TableName) => client.send(new DeleteTableCommand({ TableName })).catch(() => {})),
  );
  client?.destroy();
  await moto?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('run records beyond DynamoDB transaction and item limits', () => {
  it('a 500-item fan-out failing midway ends failed with no step run left running, and late items are refused', async () => {
    const { runId } = await handleStepRunnerRequest(
      { action: 'start-run', pipeline: 'wide', parameters: {}, tags: [] },
      deps,
    );
    await handleStepRunnerRequest({ action: 'run-step', pipeline: 'wide', runId, stepId: 'ids' }, deps);
    const plan = await handleStepRunnerRequest({ action: 'plan-map', pipeline: 'wide', runId, stepId: 'work' }, deps);
    expect(plan.count).toBe(500);
    // Items 200–299 are in flight when item 250 fails: their step runs are started and left running,
    // as Step Functions leaves them when a Map iteration fails.
    const metadata = deps.stores.metadata;
    for (let index = 200; index < 300; index++) {
      // Item 250's own invocation is the one that fails below; a second live attempt at it would be refused.
      if (index === 250) continue;
      await metadata.runs.startStep({
        id: `srun_inflight_${index}`,
        runId,
        stepId: `work[${index}]`,
        stepName: 'work',
        status: 'running',
        cacheKey: `k${index}`,
        codeHash: 'sha256:x',
        parameters: {},
        startedAt: new Date().toISOString(),
        attempts: 1,
        inputs: {},
        outputs: {},
        metadata: {},
      });
    }
    const done = await handleStepRunnerRequest(
      { action: 'run-step', pipeline: 'wide', runId, stepId: 'work', mapIndex: 300 },
      deps,
    );
    expect(done.status).toBe('completed');
    const failure = await handleStepRunnerRequest(
      { action: 'run-step', pipeline: 'wide', runId, stepId: 'work', mapIndex: 250 },
      deps,
    ).catch((error: unknown) => error as Error);
    expect(failure).toMatchObject({ name: 'StepFailedError' });

    const finished = await handleStepRunnerRequest(
      {
        action: 'finish-run',
        pipeline: 'wide',
        runId,
        status: 'failed',
        error: { Error: 'StepFailedError', Cause: 'item 250 is broken' },
      },
      deps,
    );

    expect(finished.status).toBe('failed');
    const steps = await metadata.runs.listSteps(runId);
    expect(steps.length).toBeGreaterThan(100);
    expect(steps.filter((s) => s.status === 'running')).toEqual([]);
    const late = await handleStepRunnerRequest(
      { action: 'run-step', pipeline: 'wide', runId, stepId: 'work', mapIndex: 450 },
      deps,
    ).catch((error: unknown) => error as Error);
    expect(late).toMatchObject({ name: 'NonRetriableError' });
    expect((late as Error).message).toContain('already finished');
  });

  it('a step logging 5 MB completes with the tail in its record and the whole log kept as an artifact', async () => {
    const result = await runPipelineLocally(loud, deps.stores);

    expect(result.run.status).toBe('completed');
    const stepRun = result.steps[0]!.stepRun!;
    expect(stepRun.logs!.at(-1)).toMatch(/^005119 x+$/);
    expect(stepRun.logs![0]).toMatch(/earlier line\(s\) omitted; the whole log is artifact chatty\.log v1/);
    const log = await deps.stores.metadata.artifacts.getVersion('chatty.log', 1);
    expect(log.size).toBeGreaterThan(5 * 1024 * 1024);
    const text = (await deps.stores.artifacts.getBytes(log.contentHash)).toString('utf8');
    expect(text.split('\n').filter(Boolean)).toHaveLength(5 * 1024);
    expect(text.startsWith('000000 x')).toBe(true);
  });
});

describe('runs of pipelines larger than one DynamoDB item could describe', () => {
  // Before the per-step snapshot moved to the artifact store, near 3,300 steps filled the 400 KB run item.
  it.each([4_000, 10_000])(
    'records a %i-step run on DynamoDB: the snapshot goes to S3, the item keeps a reference, a cold runner runs a step without reading the snapshot',
    async (steps) => {
      const p = linearRequestPipeline(steps, 1);
      const stack = await createCountedAwsStack(moto.endpoint, [p]);
      try {
        const { runId } = await handleStepRunnerRequest(
          { action: 'start-run', pipeline: p.name, parameters: {}, tags: [] },
          stack.deps,
        );
        const created = stack.counter.snapshot();
        const cold = stack.coldDeps();
        const run = await cold.stores.metadata.runs.get(runId);

        expect(stepSnapshotReference(run)).toEqual({
          contentHash: expect.stringMatching(/^sha256:/),
          steps,
          cacheOverrides: 0,
        });
        expect(Buffer.byteLength(JSON.stringify(run))).toBeLessThan(1024);
        // The run costs one S3 PutObject for its snapshot and one DynamoDB write for its record.
        expect(created).toEqual({ 's3:PutObject': 1, 'dynamodb:TransactWriteItems': 1 });
        const snapshot = await loadStepSnapshot(cold.stores.artifacts, run);
        expect(Object.keys(snapshot!)).toHaveLength(steps);
        expect(snapshot![`s${steps - 1}`]).toMatchObject({ step: 'req_increment', upstream: [`s${steps - 2}`] });

        // A cold container runs the first step without reading the snapshot.
        stack.counter.reset();
        const done = await handleStepRunnerRequest(
          { action: 'run-step', pipeline: p.name, runId, stepId: 's0' },
          { ...stack.coldDeps(), pipelines: [p] },
        );
        expect(done.status).toBe('completed');
        expect(stack.counter.snapshot()['s3:GetObject'] ?? 0).toBe(0);
      } finally {
        await stack.close();
      }
    },
    300_000,
  );
});
