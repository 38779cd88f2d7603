import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { featureEngineering } from '../../examples/reference/feature-engineering.ts';
import { inference } from '../../examples/reference/inference.ts';
import { MODEL_NAME, training } from '../../examples/reference/training.ts';
import { Stackline } from '../../lib/client.ts';
import { StackConfigError } from '../../lib/errors.ts';
import { DynamoDbMetadataStore } from '../../lib/metadata/dynamodb/dynamodb-metadata-store.ts';
import { tableNamesFor } from '../../lib/metadata/dynamodb/table-definitions.ts';
import type { PipelineRun } from '../../lib/metadata/types.ts';
import { type CliResult, runCli } from '../support/cli.ts';
import { awsTestClientConfig, type MotoServer, startMoto } from '../support/moto.ts';

const id = randomUUID().slice(0, 8);
const BUCKET = `stackline-aws-stack-${id}`;
const TABLE_PREFIX = `sl-${id}`;
/** What the scenario's runs compare across stacks: artifact content by version, and model metrics. */
const COMPARED_ARTIFACTS = ['iris_model', 'iris_metrics', 'iris_predictions'] as const;

let moto: MotoServer;
let s3: S3Client;
let dynamodb: DynamoDBClient;
/** The stack's metadata, read straight from the emulator's tables rather than through the CLI. */
let tables: DynamoDbMetadataStore;
const savedEnv: Record<string, string | undefined> = {};

beforeAll(async () => {
  // The stack's SDK clients take credentials from the default chain, as they would in production.
  for (const name of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN']) {
    savedEnv[name] = process.env[name];
  }
  process.env.AWS_ACCESS_KEY_ID = 'test';
  process.env.AWS_SECRET_ACCESS_KEY = 'test';
  delete process.env.AWS_SESSION_TOKEN;
  moto = await startMoto();
  s3 = new S3Client(awsTestClientConfig(moto.endpoint));
  dynamodb = new DynamoDBClient(awsTestClientConfig(moto.endpoint));
  tables = new DynamoDbMetadataStore({ client: dynamodb, tables: tableNamesFor(TABLE_PREFIX) });
});

afterAll(async () => {
  s3?.destroy();
  dynamodb?.destroy();
  await moto?.stop();
  for (const [name, value] of Object.entries(savedEnv)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
});

async function tempHome(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'stackline-aws-stack-'));
}

interface ScenarioOutcome {
  runs: PipelineRun[];
  /** Content hashes of each compared artifact, oldest version first. */
  contentHashes: Record<string, string[]>;
  /** Evaluation metrics logged on each model version, oldest first. */
  metrics: Array<{ version: number; accuracy: unknown; macroF1: unknown }>;
}

/** The four runs of `examples/reference/run.ts`, on one stack, and what they produced. */
async function runReferenceScenario(home: string, stack: string): Promise<ScenarioOutcome> {
  const sl = await Stackline.open({ home, stack, actor: 'bob' });
  try {
    const plan = [
      () => sl.run(featureEngineering),
      () => sl.run(training, { params: { trees: 1, maxFeatures: 0.5, seed: 3 }, tags: ['experiment:baseline'] }),
      () => sl.run(training, { params: { trees: 25 }, tags: ['experiment:forest-25'] }),
      () => sl.run(inference),
    ];
    const runs: PipelineRun[] = [];
    for (const start of plan) runs.push((await start()).run);
    const { metadata } = sl.stack;
    const contentHashes: Record<string, string[]> = {};
    for (const name of COMPARED_ARTIFACTS) {
      const versions = (await metadata.artifacts.listVersions(name)).items;
      contentHashes[name] = versions.sort((a, b) => a.version - b.version).map((v) => v.contentHash);
    }
    const modelVersions = (await metadata.models.listVersions(MODEL_NAME)).items.sort((a, b) => a.number - b.number);
    const metrics = modelVersions.map((v) => ({
      version: v.number,
      accuracy: v.metadata.accuracy,
      macroF1: v.metadata.macroF1,
    }));
    return { runs, contentHashes, metrics };
  } finally {
    await sl.close();
  }
}

function expectOk(result: CliResult): CliResult {
  expect(result.stderr.match(/^error: .*/m)?.[0]).toBeUndefined();
  expect(result.code).toBe(0);
  return result;
}

describe('the reference scenario on an S3 + DynamoDB stack (moto)', () => {
  let home: string;
  let registered: CliResult;
  let provisioned: CliResult;
  let onAws: ScenarioOutcome;
  let onLocal: ScenarioOutcome;

  beforeAll(async () => {
    home = await tempHome();
    registered = expectOk(
      await runCli(
        home,
        'stack',
        'register',
        'emulated',
        '--artifact-store',
        's3',
        '--bucket',
        BUCKET,
        '--prefix',
        'stackline',
        '--metadata-store',
        'dynamodb',
        '--table-prefix',
        TABLE_PREFIX,
        '--promoter',
        'iris_training',
        '--region',
        'us-east-1',
        '--endpoint',
        moto.endpoint,
        '--tag',
        'environment:emulated',
        '--json',
      ),
    );
    provisioned = expectOk(await runCli(home, 'stack', 'provision', 'emulated', '--json'));
    onAws = await runReferenceScenario(home, 'emulated');
    onLocal = await runReferenceScenario(home, 'default');
  });

  afterAll(async () => {
    if (home) await rm(home, { recursive: true, force: true });
  });

  it('registers the stack with its S3 and DynamoDB components', () => {
    expect(registered.json()).toMatchObject({
      name: 'emulated',
      active: false,
      tags: ['environment:emulated'],
      components: {
        orchestrator: { type: 'local' },
        artifactStore: {
          type: 's3',
          bucket: BUCKET,
          prefix: 'stackline',
          region: 'us-east-1',
          endpoint: moto.endpoint,
        },
        metadataStore: { type: 'dynamodb', tablePrefix: TABLE_PREFIX, region: 'us-east-1', endpoint: moto.endpoint },
        promoters: ['iris_training'],
      },
    });
  });

  it('provisions the five tables and the bucket, and provisioning again changes nothing', async () => {
    const names = Object.values(tableNamesFor(TABLE_PREFIX));
    const expected = (status: string) =>
      expect.arrayContaining([
        ...names.map((name) => ({ kind: 'dynamodb-table', name, status })),
        { kind: 's3-bucket', name: BUCKET, status },
      ]);
    expect(provisioned.json().resources).toEqual(expected('created'));
    expect(provisioned.json().resources).toHaveLength(6);
    const again = expectOk(await runCli(home, 'stack', 'provision', 'emulated', '--json'));
    expect(again.json().resources).toEqual(expected('existing'));
  });

  it('completes all four runs, and runs list shows them on the stack', async () => {
    expect(onAws.runs.map((r) => [r.pipeline, r.status])).toEqual([
      ['iris_feature_engineering', 'completed'],
      ['iris_training', 'completed'],
      ['iris_training', 'completed'],
      ['iris_inference', 'completed'],
    ]);
    const listed = expectOk(await runCli(home, 'runs', 'list', '--stack', 'emulated', '--json')).json().runs;
    expect(listed).toHaveLength(4);
    expect(listed.map((r: PipelineRun) => r.id).sort()).toEqual(onAws.runs.map((r) => r.id).sort());
    expect(listed.every((r: PipelineRun) => r.stack === 'emulated')).toBe(true);
  });

  it('keeps the model versions, stages and stage history in DynamoDB', async () => {
    const versions = (await tables.models.listVersions(MODEL_NAME)).items;
    expect(versions.map((v) => [v.number, v.stage]).sort()).toEqual([
      [1, 'archived'],
      [2, 'production'],
    ]);
    const history = (await tables.models.history(MODEL_NAME)).items;
    // The gate promotes as its pipeline run (the runner's identity), not as the user who started it.
    const [first, second] = onAws.runs.filter((r) => r.pipeline === 'iris_training').map((r) => r.id);
    const gate = (runId: string | undefined) => `pipeline:iris_training run ${runId}`;
    expect(history.map((h) => `v${h.versionNumber}:${h.fromStage ?? 'none'}->${h.toStage}:${h.actor}`)).toEqual([
      `v1:none->production:${gate(first)}`,
      `v1:production->archived:${gate(second)}`,
      `v2:none->production:${gate(second)}`,
    ]);
  });

  it('stores the predictions blob in the bucket under the key its uri names', async () => {
    const predictions = await tables.artifacts.getVersion('iris_predictions', 1);
    const uri = /^s3:\/\/([^/]+)\/(.+)$/.exec(predictions.uri);
    expect(uri?.[1]).toBe(BUCKET);
    expect(uri?.[2]).toMatch(/^stackline\/blobs\//);
    const head = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: uri![2] }));
    expect(head.ContentLength).toBe(predictions.size);
  });

  it('produces the same artifact content and metrics as the local stack', () => {
    expect(onLocal.runs.every((r) => r.status === 'completed')).toBe(true);
    expect(onAws.contentHashes.iris_model).toHaveLength(2);
    expect(onAws.contentHashes.iris_predictions).toHaveLength(1);
    expect(onAws.contentHashes).toEqual(onLocal.contentHashes);
    expect(onAws.metrics).toHaveLength(2);
    expect(onAws.metrics.every((m) => typeof m.macroF1 === 'number')).toBe(true);
    expect(onAws.metrics).toEqual(onLocal.metrics);
  });
});

describe('stack register, delete and a stack without its resources', () => {
  let home: string;

  beforeAll(async () => {
    home = await tempHome();
  });

  afterAll(async () => {
    if (home) await rm(home, { recursive: true, force: true });
  });

  it('rejects --artifact-store s3 without --bucket, exiting 2 and naming the option', async () => {
    const result = await runCli(
      home,
      'stack',
      'register',
      'nobucket',
      '--artifact-store',
      's3',
      '--region',
      'us-east-1',
    );
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--artifact-store s3 needs --bucket');
    expect((await runCli(home, 'stack', 'describe', 'nobucket')).code).toBe(2);
  });

  it('fails a run on a stack whose tables do not exist with a message saying how to create them', async () => {
    expectOk(
      await runCli(
        home,
        'stack',
        'register',
        'unprovisioned',
        '--metadata-store',
        'dynamodb',
        '--table-prefix',
        `missing-${id}`,
        '--region',
        'us-east-1',
        '--endpoint',
        moto.endpoint,
      ),
    );
    const result = await runCli(home, 'run', 'test/fixtures/pipelines/simple.ts', '--stack', 'unprovisioned');
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^error: .*metadata table .*stackline stack provision/m);
    expect(result.stderr).not.toMatch(/^\s+at /m);

    const sl = await Stackline.open({ home, stack: 'unprovisioned' });
    try {
      await expect(sl.run(featureEngineering)).rejects.toThrow(StackConfigError);
    } finally {
      await sl.close();
    }
  });

  it('refuses to delete the default stack and the active stack, and deletes others', async () => {
    expectOk(await runCli(home, 'stack', 'register', 'scratch', '--set-active'));
    const active = await runCli(home, 'stack', 'delete', 'scratch');
    expect(active.code).toBe(2);
    expect(active.stderr).toContain('active stack');
    const builtIn = await runCli(home, 'stack', 'delete', 'default');
    expect(builtIn.code).toBe(2);
    expect(builtIn.stderr).toContain('default stack');
    expectOk(await runCli(home, 'stack', 'set', 'default'));
    expectOk(await runCli(home, 'stack', 'delete', 'scratch'));
    expect((await runCli(home, 'stack', 'describe', 'scratch')).code).toBe(2);
  });
});
