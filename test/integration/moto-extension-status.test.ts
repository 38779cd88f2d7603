import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { EventBridgeClient, PutRuleCommand, PutTargetsCommand } from '@aws-sdk/client-eventbridge';
import { CreateFunctionCommand, LambdaClient } from '@aws-sdk/client-lambda';
import {
  CreateStateMachineCommand,
  DescribeExecutionCommand,
  ListExecutionsCommand,
  SFNClient,
  StartExecutionCommand,
  StopExecutionCommand,
} from '@aws-sdk/client-sfn';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { awsTestClientConfig, createRole, type MotoServer, startMoto } from '../support/moto.ts';

// moto_ext's sfn_status_events patch (test/emulator/README.md) against real SDK v3 clients:
// executions ending ABORTED / FAILED / TIMED_OUT put "Step Functions Execution Status Change" events on the
// default bus, and rules deliver them (events_delivery: to Step Functions and Lambda targets).
// `MOTO_EXT_SKIP=sfn_status_events` shows plain moto 5.2.1: no event, these tests fail.

const run = promisify(execFile);
let moto: MotoServer;
let sfn: SFNClient;
let events: EventBridgeClient;
let lambda: LambdaClient;
let workDir: string;
let recorderArn: string;
const ROLE = 'arn:aws:iam::123456789012:role/test';

interface StatusEvent {
  source: string;
  'detail-type': string;
  resources: string[];
  detail: Record<string, unknown>;
}

async function stateMachine(name: string, states: Record<string, unknown>, startAt: string): Promise<string> {
  const definition = JSON.stringify({ StartAt: startAt, States: states });
  return (await sfn.send(new CreateStateMachineCommand({ name, definition, roleArn: ROLE }))).stateMachineArn!;
}

/** The status-change events the recorder machine was started with, once one names `executionArn`. */
async function recorded(executionArn: string): Promise<StatusEvent> {
  for (let i = 0; i < 200; i++) {
    const { executions = [] } = await sfn.send(new ListExecutionsCommand({ stateMachineArn: recorderArn }));
    for (const e of executions) {
      const { input } = await sfn.send(new DescribeExecutionCommand({ executionArn: e.executionArn! }));
      const event = JSON.parse(input!) as StatusEvent;
      if (event.detail?.executionArn === executionArn) return event;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`no status change event for ${executionArn}`);
}

beforeAll(async () => {
  moto = await startMoto({ stepFunctionsExecution: true });
  const config = awsTestClientConfig(moto.endpoint);
  sfn = new SFNClient(config);
  events = new EventBridgeClient(config);
  lambda = new LambdaClient(config);
  workDir = await mkdtemp(join(tmpdir(), 'moto-ext-status-'));
  recorderArn = await stateMachine('recorder', { Done: { Type: 'Succeed' } }, 'Done');
  await events.send(
    new PutRuleCommand({
      Name: 'status-changes',
      EventPattern: JSON.stringify({
        source: ['aws.states'],
        'detail-type': ['Step Functions Execution Status Change'],
        detail: { status: ['FAILED', 'TIMED_OUT', 'ABORTED'] },
      }),
    }),
  );
  await events.send(new PutTargetsCommand({ Rule: 'status-changes', Targets: [{ Id: 'recorder', Arn: recorderArn }] }));
}, 60_000);

afterAll(async () => {
  for (const client of [sfn, events, lambda]) client?.destroy();
  await moto?.stop();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

describe('moto_ext sfn_status_events: execution status changes reach EventBridge rules', () => {
  it('puts an ABORTED event shaped like AWS when an execution is stopped with StopExecution', async () => {
    const machine = await stateMachine('long-wait', { Wait: { Type: 'Wait', Seconds: 60, End: true } }, 'Wait');
    const { executionArn } = await sfn.send(
      new StartExecutionCommand({ stateMachineArn: machine, name: 'to-stop', input: '{"runId":"r-1"}' }),
    );
    await sfn.send(new StopExecutionCommand({ executionArn }));
    const event = await recorded(executionArn!);
    expect(event.source).toBe('aws.states');
    expect(event['detail-type']).toBe('Step Functions Execution Status Change');
    expect(event.resources).toEqual([executionArn]);
    expect(event.detail).toMatchObject({
      executionArn,
      stateMachineArn: machine,
      name: 'to-stop',
      status: 'ABORTED',
      input: '{"runId":"r-1"}',
      output: null,
    });
    expect(event.detail.startDate).toEqual(expect.any(Number));
    expect(event.detail.stopDate as number).toBeGreaterThanOrEqual(event.detail.startDate as number);
  });

  it('puts a FAILED event with the error and cause of a failed execution', async () => {
    const machine = await stateMachine(
      'fails',
      { Boom: { Type: 'Fail', Error: 'StepFailed', Cause: 'train exploded' } },
      'Boom',
    );
    const { executionArn } = await sfn.send(new StartExecutionCommand({ stateMachineArn: machine, input: '{}' }));
    const event = await recorded(executionArn!);
    expect(event.detail).toMatchObject({ status: 'FAILED', error: 'StepFailed', cause: 'train exploded' });
  });

  it('puts a TIMED_OUT event when an execution exceeds its TimeoutSeconds', async () => {
    const definition = JSON.stringify({
      StartAt: 'Wait',
      TimeoutSeconds: 1,
      States: { Wait: { Type: 'Wait', Seconds: 30, End: true } },
    });
    const { stateMachineArn } = await sfn.send(
      new CreateStateMachineCommand({ name: 'times-out', definition, roleArn: ROLE }),
    );
    const { executionArn } = await sfn.send(new StartExecutionCommand({ stateMachineArn, input: '{}' }));
    const event = await recorded(executionArn!);
    expect(event.detail).toMatchObject({ status: 'TIMED_OUT', stateMachineArn });
  });

  it('invokes a Lambda target of the rule asynchronously with the event (events_delivery)', async () => {
    // The function writes the event it receives to a file (moto_ext runs it in a local node process).
    const out = join(workDir, 'received.json');
    await writeFile(
      join(workDir, 'index.mjs'),
      "import { writeFileSync } from 'node:fs';\nexport const handler = async (event) => { writeFileSync(process.env.OUT, JSON.stringify(event)); };\n",
    );
    await utimes(join(workDir, 'index.mjs'), 1_700_000_000, 1_700_000_000);
    await run('python3', ['-m', 'zipfile', '-c', 'function.zip', 'index.mjs'], { cwd: workDir });
    await createRole(moto.endpoint, 'status-listener-role');
    const { FunctionArn } = await lambda.send(
      new CreateFunctionCommand({
        FunctionName: 'status-listener',
        Runtime: 'nodejs20.x',
        Role: 'arn:aws:iam::123456789012:role/status-listener-role',
        Handler: 'index.handler',
        Code: { ZipFile: await readFile(join(workDir, 'function.zip')) },
        Environment: { Variables: { OUT: out } },
        Timeout: 30,
      }),
    );
    await events.send(
      new PutTargetsCommand({ Rule: 'status-changes', Targets: [{ Id: 'listener', Arn: FunctionArn }] }),
    );
    const machine = await stateMachine('to-listen', { Wait: { Type: 'Wait', Seconds: 60, End: true } }, 'Wait');
    const { executionArn } = await sfn.send(new StartExecutionCommand({ stateMachineArn: machine, input: '{}' }));
    await sfn.send(new StopExecutionCommand({ executionArn }));
    let received: StatusEvent | undefined;
    for (let i = 0; i < 300 && !received; i++) {
      received = await readFile(out, 'utf8')
        .then((text) => JSON.parse(text) as StatusEvent)
        .catch(() => undefined);
      if (!received) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(received?.detail).toMatchObject({ executionArn, status: 'ABORTED' });
  }, 60_000);
});
