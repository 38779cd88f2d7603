import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { CreateFunctionCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundlePipeline } from '../../lib/bundle/bundle-pipeline.ts';
import { Stackline } from '../../lib/index.ts';
import { runCli } from '../support/cli.ts';
import { awsTestClientConfig, createRole, type MotoServer, startMoto } from '../support/moto.ts';

/**
 * The emulator tier: `stackline run --stack <step-functions stack>` compiles the reference
 * pipelines, creates their state machines through the Step Functions API on moto (execution
 * switched on), and every Task state invokes the real bundled step runner as a Lambda function,
 * which moto_ext runs in Node against moto's S3 and DynamoDB. The results must match a run of the
 * same pipelines on the local default stack.
 */
const exec = promisify(execFile);
const FUNCTION = 'stackline-reference';
const ROLE = 'stackline-sfn';
const ROLE_ARN = `arn:aws:iam::123456789012:role/${ROLE}`;

let moto: MotoServer;
let home: string;
let localHome: string;
const savedEnv = { ...process.env };

async function deployStepRunner(endpoint: string, outDir: string) {
  const { lambda } = await bundlePipeline({ pipelineFile: 'test/fixtures/pipelines/reference-all.ts', outDir });
  const dir = dirname(lambda.path);
  const fixed = new Date('2020-01-01T00:00:00Z'); // reproducible zip → moto_ext reuses its unzip cache
  await utimes(lambda.path, fixed, fixed);
  await exec('python3', ['-m', 'zipfile', '-c', 'function.zip', 'index.mjs'], { cwd: dir });
  const client = new LambdaClient(awsTestClientConfig(endpoint));
  try {
    await client.send(
      new CreateFunctionCommand({
        FunctionName: FUNCTION,
        Runtime: 'nodejs22.x',
        Handler: 'index.handler',
        Role: ROLE_ARN,
        Timeout: 120,
        Code: { ZipFile: await readFile(join(dir, 'function.zip')) },
        Environment: {
          Variables: {
            STACKLINE_STACK: 'sfn',
            STACKLINE_ARTIFACT_BUCKET: 'stackline-sfn-artifacts',
            STACKLINE_ARTIFACT_PREFIX: 'reference',
            STACKLINE_TABLE_PREFIX: 'stackline-sfn',
            STACKLINE_PROMOTERS: 'iris_training',
          },
        },
      }),
    );
  } finally {
    client.destroy();
  }
  return lambda.bytes;
}

beforeAll(async () => {
  moto = await startMoto({ stepFunctionsExecution: true });
  Object.assign(process.env, { AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test', AWS_REGION: 'us-east-1' });
  home = await mkdtemp(join(tmpdir(), 'stackline-sfn-'));
  localHome = await mkdtemp(join(tmpdir(), 'stackline-sfn-local-'));
  await createRole(moto.endpoint, ROLE);
  const registered = await runCli(
    home,
    ...['stack', 'register', 'sfn', '--orchestrator', 'step-functions', '--role-arn', ROLE_ARN],
    ...['--step-runner', 'lambda', '--function-name', FUNCTION],
    ...['--artifact-store', 's3', '--bucket', 'stackline-sfn-artifacts', '--prefix', 'reference'],
    ...[
      '--metadata-store',
      'dynamodb',
      '--table-prefix',
      'stackline-sfn',
      '--region',
      'us-east-1',
      '--endpoint',
      moto.endpoint,
    ],
  );
  expect(registered.code, registered.stderr).toBe(0);
  expect((await runCli(home, 'stack', 'provision', 'sfn')).code).toBe(0);
  await deployStepRunner(moto.endpoint, join(home, 'bundle'));
}, 180_000);

afterAll(async () => {
  process.env = savedEnv;
  await moto?.stop();
  await rm(home, { recursive: true, force: true });
  await rm(localHome, { recursive: true, force: true });
});

const runs: Array<[string, string[]]> = [
  ['examples/reference/feature-engineering.ts', []],
  ['examples/reference/training.ts', ['--param', 'trees=1', '--param', 'maxFeatures=0.5', '--param', 'seed=3']],
  ['examples/reference/training.ts', ['--param', 'trees=25']],
  ['examples/reference/inference.ts', []],
];

describe('emulator tier: the reference scenario on Step Functions + Lambda (moto)', () => {
  it('runs every pipeline through its compiled state machine and matches the local stack', async () => {
    for (const [file, args] of runs) {
      const onAws = await runCli(home, 'run', file, '--stack', 'sfn', '--json', ...args);
      expect(onAws.code, onAws.stdout + onAws.stderr).toBe(0);
      const summary = onAws.json();
      expect(summary.status).toBe('completed');
      expect(summary.stack).toBe('sfn');
      expect(summary.steps.every((s: { status: string }) => s.status === 'completed' || s.status === 'cached')).toBe(
        true,
      );
      const local = await runCli(localHome, 'run', file, '--json', ...args);
      expect(local.code, local.stderr).toBe(0);
    }

    const aws = await Stackline.open({ home, stack: 'sfn' });
    const local = await Stackline.open({ home: localHome });
    try {
      for (const name of [
        'iris_train_features',
        'iris_model',
        'iris_metrics',
        'iris_preprocessor',
        'iris_predictions',
      ]) {
        const [a, l] = await Promise.all([aws.getArtifactVersion(name), local.getArtifactVersion(name)]);
        expect(a.contentHash, name).toBe(l.contentHash);
        expect(a.version, name).toBe(l.version);
      }
      const [awsProd, localProd] = await Promise.all([
        aws.getModelVersion('iris_classifier', 'production'),
        local.getModelVersion('iris_classifier', 'production'),
      ]);
      expect(awsProd.number).toBe(2);
      expect(localProd.number).toBe(2);
      expect(awsProd.metadata.macroF1).toBe(localProd.metadata.macroF1);
      expect(awsProd.artifacts.map((x) => x.artifactName).sort()).toEqual(
        localProd.artifacts.map((x) => x.artifactName).sort(),
      );
      const history = (await aws.stack.metadata.models.history('iris_classifier')).items;
      expect(history.map((h) => `v${h.versionNumber}:${h.toStage}`)).toEqual([
        'v1:production',
        'v1:archived',
        'v2:production',
      ]);
      const awsRuns = (await aws.stack.metadata.runs.list({ limit: 10 })).items;
      expect(awsRuns).toHaveLength(4);
      // The bundle pins the steps' local code hashes: running the same pipeline in this process on
      // the same stores reuses what the Lambda computed.
      const { featureEngineering } = await import('../../examples/reference/feature-engineering.ts');
      const rerun = await aws.run(featureEngineering);
      expect(rerun.steps.map((s) => s.stepRun?.status)).toEqual(['cached', 'cached', 'cached', 'cached']);
      expect(awsRuns.every((r) => r.status === 'completed' && r.config.orchestrator === 'step-functions')).toBe(true);
    } finally {
      await aws.close();
      await local.close();
    }
  }, 300_000);

  it('ends the run failed, with the step error recorded and nothing running, when a step fails on AWS', async () => {
    // Inference reads the production model; a model without a production version makes it fail.
    const aws = await Stackline.open({ home, stack: 'sfn' });
    try {
      await aws.promote('iris_classifier', 2, 'archived');
    } finally {
      await aws.close();
    }
    const failed = await runCli(home, 'run', 'examples/reference/inference.ts', '--stack', 'sfn', '--json');
    expect(failed.code).toBe(1);
    const summary = failed.json();
    expect(summary.status).toBe('failed');
    expect(summary.error.message).toMatch(/no version in stage "production"/);
    const listed = (await runCli(home, 'runs', 'list', '--stack', 'sfn', '--status', 'running', '--json')).json();
    expect(listed.runs).toEqual([]);
  }, 120_000);
});
