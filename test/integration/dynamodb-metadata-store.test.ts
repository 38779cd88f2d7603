import { randomUUID } from 'node:crypto';
import { DeleteTableCommand, DescribeTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, PutCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ConflictError, NotFoundError, StacklineError, ValidationError } from '../../lib/errors.ts';
import { DynamoDbMetadataStore } from '../../lib/metadata/dynamodb/dynamodb-metadata-store.ts';
import { keys } from '../../lib/metadata/dynamodb/keys.ts';
import {
  createTables,
  type DynamoDbTableNames,
  tableDefinitions,
} from '../../lib/metadata/dynamodb/table-definitions.ts';
import { StageHeldError } from '../../lib/metadata/promotion-rules.ts';
import type { ArtifactVersionDraft, PipelineRun, StepRun } from '../../lib/metadata/types.ts';
import {
  artifactDraft,
  describeMetadataStoreConformance,
  promotableVersion,
  runDraft,
  stepDraft,
} from '../conformance/metadata-store.conformance.ts';
import { awsTestClientConfig, type MotoServer, startMoto } from '../support/moto.ts';

let moto: MotoServer;
let client: DynamoDBClient;

beforeAll(async () => {
  moto = await startMoto();
  client = new DynamoDBClient(awsTestClientConfig(moto.endpoint));
});

afterAll(async () => {
  client?.destroy();
  await moto?.stop();
});

/** Four fresh tables under a unique prefix; the returned cleanup deletes them. */
async function freshStore(): Promise<{
  store: DynamoDbMetadataStore;
  tables: DynamoDbTableNames;
  cleanup: () => Promise<void>;
}> {
  const prefix = `t${randomUUID().slice(0, 8)}`;
  const tables = {
    stacks: `${prefix}-stacks`,
    runs: `${prefix}-runs`,
    artifacts: `${prefix}-artifacts`,
    models: `${prefix}-models`,
    stages: `${prefix}-stages`,
  };
  await createTables(client, tables);
  const store = new DynamoDbMetadataStore({ client, tables });
  return {
    store,
    tables,
    cleanup: async () => {
      await store.close();
      await Promise.all(Object.values(tables).map((TableName) => client.send(new DeleteTableCommand({ TableName }))));
    },
  };
}

describeMetadataStoreConformance('DynamoDbMetadataStore on moto', freshStore);

function draft(name: string, overrides: Partial<ArtifactVersionDraft> = {}): ArtifactVersionDraft {
  return artifactDraft(name, {
    contentHash: `sha256:${'a'.repeat(64)}`,
    uri: 's3://bucket/blobs/aa/aaa',
    size: 3,
    ...overrides,
  });
}

function run(overrides: Partial<PipelineRun> = {}): PipelineRun {
  return runDraft({
    pipeline: 'train',
    stack: 'aws',
    createdBy: 'test',
    startedAt: new Date().toISOString(),
    ...overrides,
  });
}

function stepRun(runId: string, overrides: Partial<StepRun> = {}): StepRun {
  return stepDraft(runId, { cacheKey: 'ck', codeHash: 'code', startedAt: new Date().toISOString(), ...overrides });
}

describe('DynamoDbMetadataStore specifics', () => {
  let store: DynamoDbMetadataStore;
  let tables: DynamoDbTableNames;
  let cleanup: () => Promise<void>;

  beforeEach(async () => {
    ({ store, tables, cleanup } = await freshStore());
  });

  afterEach(async () => {
    await cleanup();
  });

  it('creates tables exactly as tableDefinitions describes them', async () => {
    const definitions = tableDefinitions(tables);
    for (const definition of Object.values(definitions)) {
      const { Table } = await client.send(new DescribeTableCommand({ TableName: definition.TableName }));
      expect(Table?.KeySchema).toEqual(definition.KeySchema);
      expect((Table?.GlobalSecondaryIndexes ?? []).map((index) => index.IndexName).sort()).toEqual(
        (definition.GlobalSecondaryIndexes ?? []).map((index) => index.IndexName).sort(),
      );
    }
    expect(definitions.runs.GlobalSecondaryIndexes?.map((index) => index.IndexName)).toEqual([
      'byStart',
      'byPipeline',
      'byStatus',
      'byCacheKey',
    ]);
  });

  // The conformance suite races calls on one store instance; these race separate instances (as
  // separate processes would), which do not share the store's local queue and meet only in DynamoDB.
  it('allocates 1..50 to 50 createVersion calls racing from 10 store instances, with no gaps or duplicates', async () => {
    const stores = Array.from({ length: 10 }, () => new DynamoDbMetadataStore({ client, tables }));
    const created = await Promise.all(
      Array.from({ length: 50 }, (_, i) => stores[i % stores.length]!.artifacts.createVersion(draft('data'))),
    );
    expect(created.map((version) => version.version).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 50 }, (_, i) => i + 1),
    );
    const summary = (await store.artifacts.list()).items[0];
    expect(summary).toMatchObject({ name: 'data', latestVersion: 50, versionCount: 50 });
    expect((await store.artifacts.getVersion('data')).version).toBe(50);
  });

  it('leaves exactly one production holder after 20 forced promotions racing from 20 store instances', async () => {
    const versions = [];
    for (let i = 0; i < 20; i++) versions.push(await promotableVersion(store, 'churn'));
    const results = await Promise.all(
      versions.map((version) =>
        new DynamoDbMetadataStore({ client, tables }).models.setStage('churn', version.number, 'production', {
          actor: `racer-${version.number}`,
          force: true,
        }),
      ),
    );
    const all = (await store.models.listVersions('churn', { limit: 100 })).items;
    const holders = all.filter((version) => version.stage === 'production');
    expect(holders).toHaveLength(1);
    expect(all.filter((version) => version.stage === 'archived')).toHaveLength(19);
    expect((await store.models.getVersion('churn', 'production')).number).toBe(holders[0]!.number);

    const history = (await store.models.history('churn', { limit: 1000 })).items;
    expect(history.length).toBeGreaterThanOrEqual(20);
    expect(history).toHaveLength(results.flat().length);
    expect(history.filter((change) => change.toStage === 'production')).toHaveLength(20);
    // Replaying the history in order ends with the holder the store reports.
    let holder: number | undefined;
    for (const change of history) {
      if (change.toStage === 'production') {
        expect(change.fromStage).toBeUndefined();
        holder = change.versionNumber;
      } else if (change.fromStage === 'production') {
        expect(change.versionNumber).toBe(holder);
      }
    }
    expect(holder).toBe(holders[0]!.number);
  });

  it('lets exactly one of 20 compare-and-set promotions racing from 20 store instances win; 19 StageHeldErrors name it', async () => {
    for (let i = 0; i < 20; i++) await promotableVersion(store, 'churn');
    const settled = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) => i + 1).map((number) =>
        new DynamoDbMetadataStore({ client, tables }).models.setStage('churn', number, 'production', {
          actor: `racer-${number}`,
          expectedHolder: null,
        }),
      ),
    );
    const holder = (await store.models.getVersion('churn', 'production')).number;
    expect(settled.filter((result) => result.status === 'fulfilled')).toHaveLength(1);
    const lost = settled.flatMap((result) => (result.status === 'rejected' ? [result.reason] : []));
    expect(lost).toHaveLength(19);
    for (const error of lost) {
      expect(error).toBeInstanceOf(StageHeldError);
      expect((error as StageHeldError).context).toMatchObject({ model: 'churn', stage: 'production', holder });
    }
    const history = (await store.models.history('churn', { limit: 100 })).items;
    expect(history.map((change) => [change.versionNumber, change.toStage, change.actor])).toEqual([
      [holder, 'production', `racer-${holder}`],
    ]);
  });

  it('maps a taken run id to ConflictError naming the run', async () => {
    const first = await store.runs.create(run());
    await expect(store.runs.create(run({ id: first.id }))).rejects.toThrow(ConflictError);
    await expect(store.runs.create(run({ id: first.id }))).rejects.toThrow(first.id);
  });

  it("refuses a run whose record is over DynamoDB's item limit, saying what is large, and writes nothing", async () => {
    // The per-step snapshot is no longer in the record (see test/integration/dynamodb-run-limits.test.ts):
    // what can still outgrow the item is what the caller passes, here 420 KB of parameters.
    const huge = run({ parameters: { rows: Array.from({ length: 4_200 }, () => 'r'.repeat(100)) } });
    const error = await store.runs.create(huge).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as Error).message).toBe(
      `Run "${huge.id}" of pipeline "train" cannot be recorded on DynamoDB: its record is over DynamoDB's 400 KB item limit (parameters 422.5 KB, configuration 0 KB, tags 0 KB); pass large values as artifacts rather than parameters, or run it on a stack with the SQLite metadata store`,
    );
    await expect(store.runs.get(huge.id)).rejects.toThrow(NotFoundError);
  });

  it('maps a taken version name to ConflictError naming the holder', async () => {
    await store.models.createVersion('churn', { name: 'baseline' });
    const attempt = store.models.createVersion('churn', { name: 'baseline' });
    await expect(attempt).rejects.toThrow(ConflictError);
    await expect(store.models.createVersion('churn', { name: 'baseline' })).rejects.toThrow(/version 1/);
    expect((await store.models.get('churn')).latestVersion).toBe(1);
  });

  it('maps missing items to NotFoundError', async () => {
    await expect(store.runs.get('run_missing')).rejects.toThrow(NotFoundError);
    await expect(store.runs.getStep('srun_missing')).rejects.toThrow(NotFoundError);
    await expect(store.artifacts.getVersionById('av_missing')).rejects.toThrow(NotFoundError);
    await expect(store.models.getVersionById('mv_missing')).rejects.toThrow(NotFoundError);
    await expect(store.stacks.delete('nope')).rejects.toThrow(NotFoundError);
    await expect(store.logMetadata({ kind: 'step_run', id: 'srun_missing' }, { a: 1 })).rejects.toThrow(
      'Step run "srun_missing" not found',
    );
  });

  it('completeStep changes nothing when one output cannot be written', async () => {
    const r = await store.runs.create(run());
    const step = await store.runs.startStep(stepRun(r.id));
    // An artifact version id that is already taken makes the whole transaction fail.
    const taken = await store.artifacts.createVersion(draft('other'));
    const completion = {
      endedAt: new Date().toISOString(),
      durationMs: 5,
      attempts: 1,
      outputs: [
        { outputName: 'model', artifact: draft('model') },
        { outputName: 'report', artifact: draft('report', { id: taken.id }) },
      ],
    };
    await expect(store.runs.completeStep(step.id, completion)).rejects.toThrow(ConflictError);
    expect((await store.runs.getStep(step.id)).status).toBe('running');
    await expect(store.artifacts.getVersion('model')).rejects.toThrow(NotFoundError);
  });

  it('pages with an opaque cursor and rejects a forged one', async () => {
    for (const name of ['a', 'b', 'c']) await store.stacks.put({ name, components: {}, tags: [] });
    const first = await store.stacks.list({ limit: 2 });
    expect(first.items.map((stack) => stack.name)).toEqual(['a', 'b']);
    expect(first.nextCursor).toMatch(/^[A-Za-z0-9_-]+$/);
    const second = await store.stacks.list({ limit: 2, cursor: first.nextCursor });
    expect(second).toEqual({ items: [expect.objectContaining({ name: 'c' })] });
    await expect(store.stacks.list({ cursor: 'not-a-cursor' })).rejects.toThrow(ValidationError);
  });

  it('finds cache hits through the sparse cache-key index, newest completion first', async () => {
    const r = await store.runs.create(run());
    const older = await store.runs.startStep(stepRun(r.id, { cacheKey: 'k1' }));
    const newer = await store.runs.startStep(stepRun(r.id, { cacheKey: 'k1' }));
    const failed = await store.runs.startStep(stepRun(r.id, { cacheKey: 'k1' }));
    const done = (at: string) => ({ endedAt: at, durationMs: 1, attempts: 1, outputs: [] });
    await store.runs.completeStep(older.id, done('2026-01-01T00:00:00.000Z'));
    await store.runs.completeStep(newer.id, done('2026-01-02T00:00:00.000Z'));
    await store.runs.endStep(failed.id, 'failed', '2026-01-03T00:00:00.000Z', { durationMs: 1, attempts: 1 });
    expect((await store.runs.findCacheHit('k1'))?.id).toBe(newer.id);
    expect(await store.runs.findCacheHit('k2')).toBeUndefined();
  });

  it('rejects an item over the 400 KB limit with ValidationError', async () => {
    const r = await store.runs.create(run());
    const step = await store.runs.startStep(stepRun(r.id));
    const logs = Array.from({ length: 500 }, () => 'x'.repeat(1000));
    await expect(
      store.runs.endStep(step.id, 'failed', new Date().toISOString(), { durationMs: 1, attempts: 1, logs }),
    ).rejects.toThrow(ValidationError);
  });

  it('says which table is missing when the tables were not created', async () => {
    const missing = new DynamoDbMetadataStore({
      client,
      tables: {
        stacks: 'no-such-stacks',
        runs: 'no-such-runs',
        artifacts: 'no-such-a',
        models: 'no-such-m',
        stages: 'no-such-s',
      },
    });
    await expect(missing.stacks.get('x')).rejects.toThrow(StacklineError);
    await expect(missing.stacks.get('x')).rejects.toThrow(/metadata table/);
  });

  it('does not let a stage holder item and the versions disagree', async () => {
    const v1 = await promotableVersion(store, 'churn');
    const v2 = await promotableVersion(store, 'churn');
    await store.models.setStage('churn', v1.number, 'staging', { actor: 't' });
    await expect(store.models.setStage('churn', v2.number, 'staging', { actor: 't' })).rejects.toThrow(/version 1/);
    await store.models.setStage('churn', v1.number, 'production', { actor: 't' });
    // v1 left staging, so staging is free again.
    await store.models.setStage('churn', v2.number, 'staging', { actor: 't' });
    expect((await store.models.getVersion('churn', 'staging')).number).toBe(2);
    expect((await store.models.getVersion('churn', 'production')).number).toBe(1);
  });

  it('reads records back without storage attributes', async () => {
    const doc = DynamoDBDocumentClient.from(client);
    const version = await store.artifacts.createVersion(draft('data', { tags: ['a'] }));
    const read = await store.artifacts.getVersionById(version.id);
    expect(read).toEqual(version);
    expect(Object.keys(read)).not.toContain('pk');
    // Pointers are keyed by id and never change.
    await expect(
      doc.send(
        new PutCommand({
          TableName: tables.artifacts,
          Item: { ...keys.artifactVersionPointer(version.id), name: 'x', version: 1 },
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      ),
    ).rejects.toThrow(/conditional/i);
  });
});
