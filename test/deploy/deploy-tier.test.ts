/**
 * The deploy tier: the real CDK CLI (`npx cdk bootstrap`, `npx cdk deploy`) deploys the reference
 * environment (dev: the three modules of examples/reference/) onto moto through the project's
 * launcher (test/emulator/moto_ext: CloudFormation and Step Functions patches), then the reference
 * scenario runs through the deployed state machines (`stackline run --stack dev` starts their `live`
 * aliases; the deployed step-runner Lambda runs in Node) with the same results as on the local stack.
 * One environment, synthesized once. Deploy and run times are printed.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DescribeExecutionCommand, SFNClient } from '@aws-sdk/client-sfn';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stackline } from '../../lib/index.ts';
import { runCli } from '../support/cli.ts';
import { awsTestClientConfig, type MotoServer, startMoto } from '../support/moto.ts';

const exec = promisify(execFile);
const ACCOUNT = '123456789012';
const REGION = 'us-east-1';

let moto: MotoServer;
let work: string;
let home: string;
let localHome: string;
let outputs: Record<string, string>;
let assembly: string;
const savedEnv = { ...process.env };
const timings: string[] = [];

async function timed<T>(label: string, work: () => Promise<T>): Promise<T> {
  const started = performance.now();
  try {
    return await work();
  } finally {
    timings.push(`${label}: ${((performance.now() - started) / 1000).toFixed(1)} s`);
  }
}

function cdkEnv() {
  return {
    AWS_ACCESS_KEY_ID: 'test',
    AWS_SECRET_ACCESS_KEY: 'test',
    AWS_REGION: REGION,
    AWS_DEFAULT_REGION: REGION,
    AWS_ENDPOINT_URL: moto.endpoint,
    CDK_DEFAULT_ACCOUNT: ACCOUNT,
    CDK_DEFAULT_REGION: REGION,
  };
}

async function cdk(...args: string[]) {
  const env = { ...process.env, ...cdkEnv() };
  try {
    return await exec('npx', ['cdk', ...args, '--no-notices', '--no-version-reporting'], {
      env,
      maxBuffer: 64 * 1024 * 1024,
      timeout: 240_000,
    });
  } catch (error) {
    const { stdout, stderr } = error as { stdout?: string; stderr?: string };
    throw new Error(`cdk ${args.join(' ')} failed:\n${stderr?.slice(-4000)}\n${stdout?.slice(-2000)}`);
  }
}

beforeAll(async () => {
  moto = await startMoto({ stepFunctionsExecution: true });
  work = await mkdtemp(join(tmpdir(), 'stackline-deploy-'));
  home = join(work, 'home');
  localHome = join(work, 'local');
  assembly = join(work, 'cdk.out');
  await timed('cdk synth (dev)', () => cdk('synth', '-q', '-c', 'env=dev', '-o', assembly));
  await timed('cdk bootstrap', () => cdk('bootstrap', `aws://${ACCOUNT}/${REGION}`, '--app', assembly));
  // `stackline deploy` wraps `cdk deploy` and registers the environment from its RegisterCommand
  // output (with the emulator's endpoint, from AWS_ENDPOINT_URL as the CDK CLI uses it).
  Object.assign(process.env, cdkEnv());
  const deployed = await timed('stackline deploy --env dev (cdk deploy --all)', () =>
    // The API stack (API Gateway) is not deployable on moto 5.2.1: data and runner only.
    runCli(
      home,
      'deploy',
      '--env',
      'dev',
      '--app',
      assembly,
      '--stacks',
      'Stackline-dev-Data',
      'Stackline-dev-Runner',
      '--json',
    ),
  );
  expect(deployed.code, deployed.stderr.slice(-3000)).toBe(0);
  const byStack = deployed.json().outputs as Record<string, Record<string, string>>;
  outputs = byStack['Stackline-dev-Runner']!;
}, 420_000);

afterAll(async () => {
  process.env = savedEnv;
  console.log(`deploy tier timings:\n  ${timings.join('\n  ')}`);
  await moto?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

const scenario: Array<[string, string[]]> = [
  ['examples/reference/feature-engineering.ts', ['--tag', 'team:fraud-detection']],
  ['examples/reference/training.ts', ['--param', 'trees=1', '--param', 'maxFeatures=0.5', '--param', 'seed=3']],
  ['examples/reference/training.ts', ['--param', 'trees=25']],
  ['examples/reference/inference.ts', []],
];

describe('deploy tier: cdk deploy of the reference environment onto moto, then the scenario on it', () => {
  it('outputs one live alias per pipeline of the environment', () => {
    const aliases = Object.entries(outputs)
      .filter(([key]) => key.includes('AliasArn'))
      .map(([, arn]) => arn)
      .sort();
    expect(aliases).toEqual(
      ['iris_feature_engineering', 'iris_inference', 'iris_training'].map(
        (p) => `arn:aws:states:${REGION}:${ACCOUNT}:stateMachine:stackline-dev-${p}:live`,
      ),
    );
  });

  it('runs the reference scenario through the deployed state machines with the local results', async () => {
    for (const [file, args] of scenario) {
      const onAws = await timed(`run ${file} ${args.join(' ')} (dev)`, () =>
        runCli(home, 'run', file, '--stack', 'dev', '--json', ...args),
      );
      expect(onAws.code, onAws.stdout + onAws.stderr).toBe(0);
      expect(onAws.json().status).toBe('completed');
      const local = await runCli(localHome, 'run', file, '--json', ...args);
      expect(local.code, local.stderr).toBe(0);
    }
    const aws = await Stackline.open({ home, stack: 'dev' });
    const local = await Stackline.open({ home: localHome });
    const sfn = new SFNClient(awsTestClientConfig(moto.endpoint));
    try {
      for (const name of ['iris_train_features', 'iris_model', 'iris_metrics', 'iris_predictions']) {
        const [a, l] = await Promise.all([aws.getArtifactVersion(name), local.getArtifactVersion(name)]);
        expect(a.contentHash, name).toBe(l.contentHash);
      }
      expect((await aws.getModelVersion('iris_classifier', 'production')).number).toBe(2);
      const runs = (await aws.stack.metadata.runs.list({ limit: 10 })).items;
      expect(runs).toHaveLength(4);
      // Each run went through its deployed state machine (the alias's execution is listed under it).
      for (const run of runs) {
        const executionArn = String(run.config.executionArn);
        expect(executionArn).toMatch(new RegExp(`:execution:stackline-dev-${run.pipeline}:${run.id}$`));
        expect((await sfn.send(new DescribeExecutionCommand({ executionArn }))).status).toBe('SUCCEEDED');
      }
      // --tag reached the run through the execution input.
      expect(runs.filter((r) => r.tags.includes('team:fraud-detection')).map((r) => r.pipeline)).toEqual([
        'iris_feature_engineering',
      ]);
    } finally {
      sfn.destroy();
      await aws.close();
      await local.close();
    }
  }, 300_000);

  it("prints a failing step's error", async () => {
    const aws = await Stackline.open({ home, stack: 'dev' });
    try {
      await aws.promote('iris_classifier', 2, 'archived');
    } finally {
      await aws.close();
    }
    const failed = await runCli(home, 'run', 'examples/reference/inference.ts', '--stack', 'dev');
    expect(failed.code).toBe(1);
    expect(failed.stdout + failed.stderr).toMatch(/no version in stage "production"/);
  }, 120_000);

  it('registered the environment as a stack, and destroys it with stackline destroy', async () => {
    const described = (await runCli(home, 'stack', 'describe', 'dev', '--json')).json();
    expect(described.components).toMatchObject({
      orchestrator: { type: 'step-functions', stateMachinePrefix: 'stackline-dev-', endpoint: moto.endpoint },
      stepRunner: { type: 'lambda', functionName: 'stackline-dev-step-runner' },
      artifactStore: { type: 's3', bucket: `stackline-dev-artifacts-${ACCOUNT}-${REGION}`, prefix: 'stackline' },
      metadataStore: { type: 'dynamodb', tablePrefix: 'stackline-dev' },
    });
    const destroyed = await timed('stackline destroy --env dev', () =>
      runCli(home, 'destroy', '--env', 'dev', '--app', assembly, '--json'),
    );
    expect(destroyed.code, destroyed.stderr.slice(-3000)).toBe(0);
    expect(destroyed.json()).toEqual({ environment: 'dev', destroyed: true, unregistered: true });
    expect((await runCli(home, 'stack', 'describe', 'dev')).code).toBe(2);
  }, 180_000);
});
