/**
 * The deploy tier: the real CDK CLI (`npx cdk bootstrap`, `npx cdk deploy`) deploys the reference
 * environment (dev: the three modules of examples/reference/) onto moto through the project's
 * launcher (test/emulator/moto_ext: CloudFormation and Step Functions patches), then the reference
 * scenario runs through the deployed state machines (`stackline run --stack dev` starts their `live`
 * aliases; the deployed step-runner Lambda runs in Node) with the same results as on the local stack.
 * Then, with no CLI: an EventBridge event and a fired Scheduler schedule start training with their
 * parameters, a promotion to production starts inference through Stackline's own event, and a
 * redelivered event or retried schedule starts nothing new.
 * One environment, synthesized once. Deploy and run times are printed.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import {
  DescribeExecutionCommand,
  GetExecutionHistoryCommand,
  SFNClient,
  StartExecutionCommand,
  StopExecutionCommand,
} from '@aws-sdk/client-sfn';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { triggeredRunId } from '../../lib/events/trigger-input.ts';
import { type PipelineRun, Stackline } from '../../lib/index.ts';
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

function triggerOf(run: PipelineRun): { kind: string; name: string; id: string } | undefined {
  return run.config.trigger as never;
}

function aliasOutput(pipelineId: string): string {
  return Object.keys(outputs).find((key) => key.includes(`${pipelineId}AliasArn`))!;
}

async function countRuns(pipeline: string): Promise<number> {
  const aws = await Stackline.open({ home, stack: 'dev' });
  try {
    return (await aws.stack.metadata.runs.list({ pipeline, limit: 1000 })).items.length;
  } finally {
    await aws.close();
  }
}

/** The `count` runs `match` selects, once all of them have finished (polls the deployed store). */
async function waitForRuns(match: (run: PipelineRun) => boolean, count: number): Promise<PipelineRun[]> {
  const aws = await Stackline.open({ home, stack: 'dev' });
  try {
    for (let i = 0; i < 600; i++) {
      const runs = (await aws.stack.metadata.runs.list({ limit: 1000 })).items.filter(match);
      if (runs.length >= count && runs.every((r) => r.status !== 'running' && r.status !== 'pending')) return runs;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    throw new Error(`fewer than ${count} matching runs finished in time`);
  } finally {
    await aws.close();
  }
}

async function waitForExecution(sfn: SFNClient, executionArn: string) {
  for (let i = 0; i < 600; i++) {
    const execution = await sfn.send(new DescribeExecutionCommand({ executionArn }));
    if (execution.status !== 'RUNNING') return execution;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`${executionArn} still running`);
}

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
      // The CLI's runs (promotions also started inference runs through the platform's event: below).
      const runs = (await aws.stack.metadata.runs.list({ limit: 100 })).items.filter((r) => !r.config.trigger);
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

  it("starts the inference pipeline when a version reaches production, through the platform's own event", async () => {
    const triggered = await timed('promotion → inference run (EventBridge)', () =>
      waitForRuns((r) => r.pipeline === 'iris_inference' && triggerOf(r)?.kind === 'stackline', 1),
    );
    for (const run of triggered) {
      expect(run.status, JSON.stringify(run.error)).toBe('completed');
      expect(triggerOf(run)!.name).toBe('stackline-dev-iris_inference-stackline-0');
      expect(run.tags).toContain('trigger:stackline');
      // Started by the rule, not the CLI: the execution is not named after the run.
      expect(String(run.config.executionArn)).toMatch(/:execution:stackline-dev-iris_inference:/);
      expect(String(run.config.executionArn).endsWith(run.id)).toBe(false);
    }
  }, 240_000);

  it('starts training with the parameters of an EventBridge event, and a redelivered event starts nothing new', async () => {
    const events = new EventBridgeClient(awsTestClientConfig(moto.endpoint));
    const sfn = new SFNClient(awsTestClientConfig(moto.endpoint));
    try {
      const put = await events.send(
        new PutEventsCommand({
          Entries: [
            { Source: 'iris.data', DetailType: 'Iris Data Refreshed', Detail: JSON.stringify({ trees: 3, seed: 5 }) },
          ],
        }),
      );
      const eventId = put.Entries![0]!.EventId!;
      const [run] = await timed('PutEvents → training run', () => waitForRuns((r) => triggerOf(r)?.id === eventId, 1));
      expect(run!.status, JSON.stringify(run!.error)).toBe('completed');
      expect(run!.pipeline).toBe('iris_training');
      expect(run!.parameters).toMatchObject({ trees: 3, seed: 5 });
      expect(triggerOf(run!)).toEqual({ kind: 'event', name: 'stackline-dev-iris_training-event-0', id: eventId });
      expect(run!.tags).toContain('trigger:event');

      // EventBridge delivers at least once: a second delivery is a second StartExecution with the same input.
      const first = await sfn.send(new DescribeExecutionCommand({ executionArn: String(run!.config.executionArn) }));
      const before = await countRuns('iris_training');
      const again = await sfn.send(
        new StartExecutionCommand({ stateMachineArn: outputs[aliasOutput('IrisTraining')]!, input: first.input! }),
      );
      const ended = await waitForExecution(sfn, again.executionArn!);
      expect(ended.status).toBe('SUCCEEDED');
      const history = await sfn.send(new GetExecutionHistoryCommand({ executionArn: again.executionArn! }));
      expect(history.events!.some((e) => e.stateEnteredEventDetails?.name === 'DuplicateTrigger')).toBe(true);
      expect(await countRuns('iris_training')).toBe(before);
    } finally {
      events.destroy();
      sfn.destroy();
    }
  }, 240_000);

  it("starts training with the schedule's parameters when its Scheduler schedule fires, once per Scheduler execution id", async () => {
    const fire = async (body: Record<string, string>) => {
      const response = await fetch(`${moto.endpoint}/moto-api/stackline/scheduler/fire`, {
        method: 'POST',
        body: JSON.stringify({
          name: 'stackline-dev-iris_training-schedule-0',
          account_id: ACCOUNT,
          region: REGION,
          ...body,
        }),
      });
      expect(response.status).toBe(200);
      return (await response.json()) as { executionArn: string; executionId: string };
    };
    const fired = await fire({});
    const [run] = await timed('schedule fired → training run', () =>
      waitForRuns((r) => triggerOf(r)?.id === fired.executionId, 1),
    );
    expect(run!.status, JSON.stringify(run!.error)).toBe('completed');
    expect(run!.parameters).toMatchObject({ trees: 25 });
    expect(triggerOf(run!)).toMatchObject({ kind: 'schedule', name: 'stackline-dev-iris_training-schedule-0' });
    // A Scheduler retry carries the same execution id: it starts nothing new.
    const before = await countRuns('iris_training');
    const sfn = new SFNClient(awsTestClientConfig(moto.endpoint));
    try {
      const retry = await fire({ executionId: fired.executionId });
      expect((await waitForExecution(sfn, retry.executionArn)).status).toBe('SUCCEEDED');
    } finally {
      sfn.destroy();
    }
    expect(await countRuns('iris_training')).toBe(before);
  }, 240_000);

  it('ends the run cancelled when its execution is stopped outside the CLI, through the deployed status-change rule and Lambda', async () => {
    // Started like a schedule would (no CLI), stopped with the SDK: only the EventBridge rule on
    // execution status changes (moto_ext sfn_status_events emits them) and the execution-status
    // Lambda can end the run.
    const trigger = { kind: 'schedule', name: 'stackline-dev-iris_training-schedule-0', id: randomUUID() } as const;
    const runId = triggeredRunId('iris_training', trigger);
    const input = { pipeline: 'iris_training', parameters: { trees: 25 }, tags: ['trigger:schedule'], trigger };
    const sfn = new SFNClient(awsTestClientConfig(moto.endpoint));
    const aws = await Stackline.open({ home, stack: 'dev' });
    try {
      const { executionArn } = await sfn.send(
        new StartExecutionCommand({
          stateMachineArn: outputs[aliasOutput('IrisTraining')]!,
          input: JSON.stringify(input),
        }),
      );
      const statusOf = async () => (await aws.stack.metadata.runs.get(runId).catch(() => undefined))?.status;
      for (let i = 0; i < 600 && (await statusOf()) !== 'running'; i++) await new Promise((r) => setTimeout(r, 100));
      expect(await statusOf()).toBe('running');
      await sfn.send(new StopExecutionCommand({ executionArn }));
      const [run] = await timed('StopExecution → run cancelled', () => waitForRuns((r) => r.id === runId, 1));
      expect(run!.status).toBe('cancelled');
      expect(run!.error).toMatchObject({ type: 'ExecutionAborted' });
      // A step the interpreter was running when stopped may still finish; none is left running.
      let steps = await aws.stack.metadata.runs.listSteps(runId);
      for (let i = 0; i < 300 && steps.some((s) => s.status === 'running'); i++) {
        await new Promise((r) => setTimeout(r, 200));
        steps = await aws.stack.metadata.runs.listSteps(runId);
      }
      expect(steps.filter((s) => s.status === 'running')).toEqual([]);
    } finally {
      await aws.close();
      sfn.destroy();
    }
  }, 240_000);

  it("prints a failing step's error", async () => {
    const aws = await Stackline.open({ home, stack: 'dev' });
    try {
      // Triggered training runs may have promoted a later version: archive whoever holds production.
      const holder = await aws.getModelVersion('iris_classifier', 'production');
      await aws.promote('iris_classifier', holder.number, 'archived');
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
