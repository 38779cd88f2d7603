import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { CreateFunctionCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { DescribeExecutionCommand, SFNClient, TagResourceCommand } from '@aws-sdk/client-sfn';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundlePipeline } from '../../lib/bundle/bundle-pipeline.ts';
import { Stackline } from '../../lib/index.ts';
import { DEFINITION_HASH_TAG } from '../../lib/orchestrators/deployed-pipelines.ts';
import { runCli } from '../support/cli.ts';
import { deployStateMachines } from '../support/deploy-state-machines.ts';
import { awsTestClientConfig, createRole, type MotoServer, startMoto } from '../support/moto.ts';

/**
 * The emulator tier: the reference pipelines' state machines are deployed on moto (execution
 * switched on) as the CDK app deploys them (name, definition hash tag, version, `live` alias; see
 * test/support/deploy-state-machines.ts), `stackline run --stack <step-functions stack>` starts
 * executions of the alias, and every Task state invokes the real bundled step runner as a Lambda function,
 * which moto_ext runs in Node against moto's S3 and DynamoDB. The results must match a run of the
 * same pipelines on the local default stack.
 */
const exec = promisify(execFile);
const FUNCTION = 'stackline-reference';
const ROLE = 'stackline-sfn';
const ROLE_ARN = `arn:aws:iam::123456789012:role/${ROLE}`;

let moto: MotoServer;
let home: string;
let stepRunnerZip: string;
let localHome: string;
const savedEnv = { ...process.env };

async function deployStepRunner(endpoint: string, outDir: string) {
  const zip = await bundleStepRunner(outDir);
  await createStepRunnerFunction(endpoint, zip, FUNCTION, {
    STACKLINE_STACK: 'sfn',
    STACKLINE_ARTIFACT_BUCKET: 'stackline-sfn-artifacts',
    STACKLINE_TABLE_PREFIX: 'stackline-sfn',
  });
  return zip;
}

/** Bundles the reference pipelines' step runner and zips it; returns the zip's path. */
async function bundleStepRunner(outDir: string) {
  const { lambda } = await bundlePipeline({ pipelineFile: 'test/fixtures/pipelines/reference-all.ts', outDir });
  const dir = dirname(lambda.path);
  const fixed = new Date('2020-01-01T00:00:00Z'); // reproducible zip → moto_ext reuses its unzip cache
  await utimes(lambda.path, fixed, fixed);
  await exec('python3', ['-m', 'zipfile', '-c', 'function.zip', 'index.mjs'], { cwd: dir });
  return join(dir, 'function.zip');
}

async function createStepRunnerFunction(
  endpoint: string,
  zip: string,
  name: string,
  variables: Record<string, string>,
): Promise<void> {
  const client = new LambdaClient(awsTestClientConfig(endpoint));
  try {
    await client.send(
      new CreateFunctionCommand({
        FunctionName: name,
        Runtime: 'nodejs22.x',
        Handler: 'index.handler',
        Role: ROLE_ARN,
        Timeout: 120,
        Code: { ZipFile: await readFile(zip) },
        Environment: {
          Variables: { STACKLINE_ARTIFACT_PREFIX: 'reference', STACKLINE_PROMOTERS: 'iris_training', ...variables },
        },
      }),
    );
  } finally {
    client.destroy();
  }
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
  stepRunnerZip = await deployStepRunner(moto.endpoint, join(home, 'bundle'));
  const { featureEngineering } = await import('../../examples/reference/feature-engineering.ts');
  const { training } = await import('../../examples/reference/training.ts');
  const { inference } = await import('../../examples/reference/inference.ts');
  const { simple } = await import('../fixtures/pipelines/simple.ts');
  await deployStateMachines(moto.endpoint, [featureEngineering, training, inference, simple], {
    functionName: FUNCTION,
    roleArn: ROLE_ARN,
  });
  // A state machine whose runner function does not exist fails before the runner records a run.
  const { failing } = await import('../fixtures/pipelines/failing.ts');
  await deployStateMachines(moto.endpoint, [failing], { functionName: 'stackline-missing', roleArn: ROLE_ARN });
}, 180_000);

function sfnClient() {
  return new SFNClient(awsTestClientConfig(moto.endpoint));
}

afterAll(async () => {
  process.env = savedEnv;
  await moto?.stop();
  await rm(home, { recursive: true, force: true });
  await rm(localHome, { recursive: true, force: true });
});

const runs: Array<[string, string[]]> = [
  ['examples/reference/feature-engineering.ts', ['--tag', 'team:fraud-detection']],
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
      if (args.includes('--tag')) expect(summary.tags).toContain('team:fraud-detection');
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
      // --tag travelled in the execution input to the runner's start-run, which recorded it.
      const tagged = awsRuns.filter((r) => r.tags.includes('team:fraud-detection'));
      expect(tagged.map((r) => r.pipeline)).toEqual(['iris_feature_engineering']);
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
    // The failure travelled through Step Functions: the run names its execution, which failed
    // with the state machine's own Fail state and the step's error as its cause.
    const recorded = await Stackline.open({ home, stack: 'sfn' });
    const executionArn = await recorded.stack.metadata.runs
      .get(summary.runId)
      .then((r) => String(r.config.executionArn))
      .finally(() => recorded.close());
    expect(executionArn).toMatch(/^arn:aws:states:us-east-1:\d+:execution:stackline-iris_inference:/);
    const sfn = sfnClient();
    try {
      const execution = await sfn.send(new DescribeExecutionCommand({ executionArn }));
      expect(execution.status).toBe('FAILED');
      expect(execution.error).toBe('StepFailed');
      expect(execution.cause).toMatch(/no version in stage \\?"production/);
    } finally {
      sfn.destroy();
    }
    const listed = (await runCli(home, 'runs', 'list', '--stack', 'sfn', '--status', 'running', '--json')).json();
    expect(listed.runs).toEqual([]);
  }, 120_000);

  it("prints the execution's own error and cause when it fails before the step runner records the run", async () => {
    const failed = await runCli(home, 'run', 'test/fixtures/pipelines/failing.ts', '--stack', 'sfn');
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(
      /Execution arn:aws:states:.*:execution:stackline-failing:run_\w+ ended FAILED before the step runner recorded run/,
    );
    // The execution's own error and cause (GetExecutionHistory), not a pointer to logs.
    expect(failed.stderr).toMatch(
      /: Lambda\.ResourceNotFoundException: Function not found: .*function:stackline-missing/,
    );
    expect(failed.stderr).not.toMatch(/logs/);
  }, 120_000);

  it('refuses pipelines that are not deployed, or differ from the deployed definition', async () => {
    const missing = await runCli(home, 'run', 'test/fixtures/pipelines/hang.ts', '--stack', 'sfn');
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(
      /Pipeline "hanging" is not deployed to stack "sfn" \(no state machine stackline-hanging\)/,
    );

    const sfn = sfnClient();
    try {
      await sfn.send(
        new TagResourceCommand({
          resourceArn: 'arn:aws:states:us-east-1:123456789012:stateMachine:stackline-simple',
          tags: [{ key: DEFINITION_HASH_TAG, value: 'f'.repeat(64) }],
        }),
      );
    } finally {
      sfn.destroy();
    }
    const drifted = await runCli(home, 'run', 'test/fixtures/pipelines/simple.ts', '--stack', 'sfn');
    expect(drifted.code).toBe(2);
    expect(drifted.stderr).toMatch(
      /Pipeline "simple" differs from the one deployed to stack "sfn" \(local definition [0-9a-f]{12}, deployed ffffffffffff\)/,
    );
  }, 60_000);
});

describe('emulator tier: duplicate deliveries and Lambda failures through the state machine', () => {
  it('every run-step delivered twice by Step Functions Retry, errors injected at seeded steps: runs, artifacts and model versions equal a clean run', async () => {
    // The deployed runner fails each run-step once after completing it (its response "lost": the
    // state machine's Retry delivers it again) and, at steps drawn from the seed (the same steps
    // whatever the run ids), once before running it. It marks each injected failure in `faults`,
    // which every invocation (its own process) shares.
    const faults = await mkdtemp(join(tmpdir(), 'stackline-faults-'));
    const cleanHome = await mkdtemp(join(tmpdir(), 'stackline-clean-'));
    try {
      await createStepRunnerFunction(moto.endpoint, stepRunnerZip, `${FUNCTION}-chaos`, {
        STACKLINE_STACK: 'chaos',
        STACKLINE_ARTIFACT_BUCKET: 'stackline-chaos-artifacts',
        STACKLINE_TABLE_PREFIX: 'stackline-chaos',
        STACKLINE_DELIVERY_FAULTS: `dir=${faults},before=0.4,after=1,seed=5`,
      });
      const registered = await runCli(
        home,
        ...['stack', 'register', 'chaos', '--orchestrator', 'step-functions', '--role-arn', ROLE_ARN],
        ...[
          '--state-machine-prefix',
          'stackline-chaos-',
          '--step-runner',
          'lambda',
          '--function-name',
          `${FUNCTION}-chaos`,
        ],
        ...['--artifact-store', 's3', '--bucket', 'stackline-chaos-artifacts', '--prefix', 'reference'],
        ...['--metadata-store', 'dynamodb', '--table-prefix', 'stackline-chaos', '--region', 'us-east-1'],
        ...['--endpoint', moto.endpoint],
      );
      expect(registered.code, registered.stderr).toBe(0);
      expect((await runCli(home, 'stack', 'provision', 'chaos')).code).toBe(0);
      const { featureEngineering } = await import('../../examples/reference/feature-engineering.ts');
      const { training } = await import('../../examples/reference/training.ts');
      await deployStateMachines(moto.endpoint, [featureEngineering, training], {
        functionName: `${FUNCTION}-chaos`,
        roleArn: ROLE_ARN,
        prefix: 'stackline-chaos-',
      });

      const runIds: Record<string, string[]> = { chaos: [], clean: [] };
      for (const file of ['examples/reference/feature-engineering.ts', 'examples/reference/training.ts']) {
        const chaotic = await runCli(home, 'run', file, '--stack', 'chaos', '--json');
        expect(chaotic.code, chaotic.stdout + chaotic.stderr).toBe(0);
        runIds.chaos!.push(chaotic.json().runId);
        const clean = await runCli(cleanHome, 'run', file, '--json');
        expect(clean.code, clean.stderr).toBe(0);
        runIds.clean!.push(clean.json().runId);
      }

      const markers = await readdir(faults);
      const redelivered = markers.filter((m) => m.startsWith('after-')).length;
      const failedBefore = markers.filter((m) => m.startsWith('before-')).length;
      console.info(
        `emulator tier: ${redelivered} run-step deliveries repeated by the state machine after completing, ${failedBefore} failed before running`,
      );

      const aws = await Stackline.open({ home, stack: 'chaos' });
      const clean = await Stackline.open({ home: cleanHome });
      try {
        const stepsOf = async (sl: Stackline, ids: string[]) =>
          Promise.all(
            ids.map(async (id) => ({
              status: (await sl.stack.metadata.runs.get(id)).status,
              steps: (await sl.stack.metadata.runs.listSteps(id))
                .map((s) => `${s.stepId}:${s.status}:${s.attempts}:${s.cacheKey}`)
                .sort(),
            })),
          );
        const chaoticRuns = await stepsOf(aws, runIds.chaos!);
        // Every run-step of both runs (one per step) was delivered a second time.
        expect(redelivered).toBe(chaoticRuns.reduce((n, r) => n + r.steps.length, 0));
        expect(failedBefore).toBeGreaterThan(0);
        // One step run per step, one attempt each: a repeated delivery did not run a step again.
        expect(chaoticRuns).toEqual(await stepsOf(clean, runIds.clean!));

        for (const name of [
          'load_iris.dataset',
          'iris_incoming_batch',
          'iris_train_features',
          'iris_test_features',
          'iris_scaler',
          'iris_model',
          'iris_checkpoint',
          'iris_metrics',
          'iris_preprocessor',
        ]) {
          const [a, c] = await Promise.all([aws.getArtifactVersion(name), clean.getArtifactVersion(name)]);
          expect(`${name}@${a.version}:${a.contentHash}`).toBe(`${name}@${c.version}:${c.contentHash}`);
          expect(a.version, name).toBe(1);
        }
        const [awsModel, cleanModel] = await Promise.all([
          aws.getModelVersion('iris_classifier', 'latest'),
          clean.getModelVersion('iris_classifier', 'latest'),
        ]);
        expect({ number: awsModel.number, stage: awsModel.stage, metadata: awsModel.metadata }).toEqual({
          number: cleanModel.number,
          stage: cleanModel.stage,
          metadata: cleanModel.metadata,
        });
        expect(awsModel).toMatchObject({ number: 1, stage: 'production' });
        const history = async (sl: Stackline) =>
          (await sl.stack.metadata.models.history('iris_classifier')).items.map(
            (h) => `v${h.versionNumber}:${h.toStage}`,
          );
        expect(await history(aws)).toEqual(await history(clean));
      } finally {
        await aws.close();
        await clean.close();
      }
    } finally {
      await rm(faults, { recursive: true, force: true });
      await rm(cleanHome, { recursive: true, force: true });
    }
  }, 600_000);
});
