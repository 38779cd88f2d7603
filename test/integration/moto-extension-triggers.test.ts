import {
  CloudFormationClient,
  CreateStackCommand,
  DescribeStacksCommand,
  waitUntilStackCreateComplete,
} from '@aws-sdk/client-cloudformation';
import { EventBridgeClient, PutEventsCommand, PutRuleCommand, PutTargetsCommand } from '@aws-sdk/client-eventbridge';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import {
  CreateStateMachineCommand,
  DescribeExecutionCommand,
  ListExecutionsCommand,
  SFNClient,
} from '@aws-sdk/client-sfn';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { awsTestClientConfig, type MotoServer, startMoto } from '../support/moto.ts';

// moto_ext's trigger patches (events_delivery, scheduler_fire; test/emulator/README.md) against
// real SDK v3 clients. `MOTO_EXT_SKIP=events_delivery` (or scheduler_fire) shows plain moto 5.2.1.

let moto: MotoServer;
let sfn: SFNClient;
let events: EventBridgeClient;
let cfn: CloudFormationClient;
let s3: S3Client;
const ROLE = 'arn:aws:iam::123456789012:role/test';

beforeAll(async () => {
  moto = await startMoto({ stepFunctionsExecution: true });
  const config = awsTestClientConfig(moto.endpoint);
  sfn = new SFNClient(config);
  events = new EventBridgeClient(config);
  cfn = new CloudFormationClient(config);
  s3 = new S3Client({ ...config, forcePathStyle: true });
}, 60_000);

afterAll(async () => {
  for (const client of [sfn, events, cfn, s3]) client?.destroy();
  await moto?.stop();
});

async function stateMachine(name: string): Promise<string> {
  const definition = JSON.stringify({ StartAt: 'Done', States: { Done: { Type: 'Succeed' } } });
  return (await sfn.send(new CreateStateMachineCommand({ name, definition, roleArn: ROLE }))).stateMachineArn!;
}

/** The inputs of the machine's executions, oldest first, once `count` exist. */
async function inputsOf(stateMachineArn: string, count: number): Promise<unknown[]> {
  for (let i = 0; i < 100; i++) {
    const { executions = [] } = await sfn.send(new ListExecutionsCommand({ stateMachineArn }));
    if (executions.length >= count) {
      const described = await Promise.all(
        executions.map((e) => sfn.send(new DescribeExecutionCommand({ executionArn: e.executionArn! }))),
      );
      return described.sort((a, b) => a.startDate!.getTime() - b.startDate!.getTime()).map((d) => JSON.parse(d.input!));
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${stateMachineArn}: fewer than ${count} executions`);
}

async function deploy(name: string, resources: Record<string, unknown>): Promise<Record<string, string>> {
  await cfn.send(new CreateStackCommand({ StackName: name, TemplateBody: JSON.stringify({ Resources: resources }) }));
  await waitUntilStackCreateComplete({ client: cfn, maxWaitTime: 60 }, { StackName: name });
  const [stack] = (await cfn.send(new DescribeStacksCommand({ StackName: name }))).Stacks!;
  return Object.fromEntries((stack!.Outputs ?? []).map((o) => [o.OutputKey!, o.OutputValue!]));
}

describe('moto_ext events_delivery: EventBridge rules start Step Functions executions', () => {
  it('delivers a matching event to a state machine target with the input transformer applied as EventBridge does', async () => {
    const machine = await stateMachine('rule-target');
    await events.send(
      new PutRuleCommand({ Name: 'to-sfn', EventPattern: JSON.stringify({ source: ['app'], 'detail-type': ['Go'] }) }),
    );
    await events.send(
      new PutTargetsCommand({
        Rule: 'to-sfn',
        Targets: [
          {
            Id: 'sfn',
            Arn: machine,
            RoleArn: ROLE,
            // What CDK's RuleTargetInput.fromObject renders: placeholders outside quotes are JSON values.
            InputTransformer: {
              InputPathsMap: { key: '$.detail.key', n: '$.detail.n', id: '$.id', missing: '$.detail.nope' },
              InputTemplate: '{"parameters":{"key":<key>,"n":<n>,"missing":<missing>},"id":<id>,"text":"key=<key>"}',
            },
          },
        ],
      }),
    );
    const put = await events.send(
      new PutEventsCommand({
        Entries: [
          { Source: 'app', DetailType: 'Go', Detail: JSON.stringify({ key: 'in/a "b".csv', n: 3 }) },
          { Source: 'app', DetailType: 'Other', Detail: '{}' },
        ],
      }),
    );
    expect(put.FailedEntryCount).toBe(0);
    const [input] = await inputsOf(machine, 1);
    expect(input).toEqual({
      parameters: { key: 'in/a "b".csv', n: 3, missing: null },
      id: put.Entries![0]!.EventId,
      text: 'key=in/a "b".csv',
    });
    // The non-matching event started nothing.
    const { executions } = await sfn.send(new ListExecutionsCommand({ stateMachineArn: machine }));
    expect(executions).toHaveLength(1);
  });

  it('notifies EventBridge of objects created in a CloudFormation bucket with EventBridge notifications, each event with its own id', async () => {
    const machine = await stateMachine('s3-target');
    await deploy('bucket-with-notifications', {
      Bucket: {
        Type: 'AWS::S3::Bucket',
        Properties: {
          BucketName: 'notifying-bucket',
          NotificationConfiguration: { EventBridgeConfiguration: { EventBridgeEnabled: true } },
        },
      },
    });
    await events.send(
      new PutRuleCommand({
        Name: 'on-upload',
        EventPattern: JSON.stringify({
          source: ['aws.s3'],
          'detail-type': ['Object Created'],
          detail: { bucket: { name: ['notifying-bucket'] }, object: { key: [{ prefix: 'incoming/' }] } },
        }),
      }),
    );
    await events.send(
      new PutTargetsCommand({
        Rule: 'on-upload',
        Targets: [
          {
            Id: 'sfn',
            Arn: machine,
            RoleArn: ROLE,
            InputTransformer: {
              InputPathsMap: { key: '$.detail.object.key', id: '$.id' },
              InputTemplate: '{"key":<key>,"id":<id>}',
            },
          },
        ],
      }),
    );
    for (const key of ['incoming/a.csv', 'elsewhere/b.csv', 'incoming/c.csv']) {
      await s3.send(new PutObjectCommand({ Bucket: 'notifying-bucket', Key: key, Body: 'x' }));
    }
    const inputs = (await inputsOf(machine, 2)) as Array<{ key: string; id: string }>;
    expect(inputs.map((i) => i.key)).toEqual(['incoming/a.csv', 'incoming/c.csv']);
    expect(new Set(inputs.map((i) => i.id)).size).toBe(2);
  });
});

describe('moto_ext scheduler_fire: CloudFormation schedules exist and fire on demand', () => {
  async function fire(body: Record<string, unknown>) {
    const response = await fetch(`${moto.endpoint}/moto-api/stackline/scheduler/fire`, {
      method: 'POST',
      body: JSON.stringify(body),
    });
    return { status: response.status, body: (await response.json()) as Record<string, string> };
  }

  it("starts the schedule's state machine with its input and Scheduler's context attributes filled in", async () => {
    const machine = await stateMachine('scheduled');
    await deploy('with-schedule', {
      Nightly: {
        Type: 'AWS::Scheduler::Schedule',
        Properties: {
          Name: 'nightly',
          ScheduleExpression: 'cron(0 3 * * ? *)',
          FlexibleTimeWindow: { Mode: 'OFF' },
          Target: {
            Arn: machine,
            RoleArn: ROLE,
            Input: JSON.stringify({ parameters: { n: 1 }, trigger: { id: '<aws.scheduler.execution-id>' } }),
          },
        },
      },
    });
    const first = await fire({ name: 'nightly' });
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    const retried = await fire({ name: 'nightly', executionId: first.body.executionId });
    expect(retried.status).toBe(200);
    const inputs = await inputsOf(machine, 2);
    expect(inputs).toEqual([
      { parameters: { n: 1 }, trigger: { id: first.body.executionId } },
      { parameters: { n: 1 }, trigger: { id: first.body.executionId } },
    ]);
    expect(first.body.executionId).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('answers 400 naming the problem for a schedule that does not exist', async () => {
    const missing = await fire({ name: 'nope' });
    expect(missing.status).toBe(400);
    expect(missing.body.error).toMatch(/nope/);
  });
});
