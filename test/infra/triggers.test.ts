/**
 * Template tests of infra/pipeline-triggers.ts: the dev environment serving the reference training
 * and inference pipelines (a schedule, a custom event, a promotion to production) and a fixture
 * with an S3 trigger, a run-completed trigger and two schedules — synthesized once.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { training } from '../../examples/reference/training.ts';
import { resolveEnvironments } from '../../infra/environments.ts';
import { addStacklineStages, type StacklineStage } from '../../infra/stackline-app.ts';
import { triggered } from '../fixtures/pipelines/triggered.ts';
import { allowedFor, render } from '../support/cfn-template.ts';

const ACCOUNT = '123456789012';
const REGION = 'eu-west-1';

// biome-ignore lint/suspicious/noExplicitAny: template JSON, checked by the assertions themselves
type Json = any;
type Resource = { Type: string; Properties: Record<string, Json> };

let outdir: string;
let stage: StacklineStage;
let runner: Template;
let data: Template;
let api: Template;

beforeAll(async () => {
  outdir = await mkdtemp(join(tmpdir(), 'stackline-triggers-'));
  const app = new App({ outdir, context: { '@aws-cdk/core:failSynthOnValidationErrors': false } });
  [stage] = (await addStacklineStages(app, {
    environments: resolveEnvironments({
      selected: 'dev',
      overrides: {
        dev: {
          pipelines: [
            'examples/reference/training.ts',
            'examples/reference/inference.ts',
            'test/fixtures/pipelines/triggered.ts',
          ],
        },
      },
      defaultAccount: ACCOUNT,
      defaultRegion: REGION,
    }),
  })) as [StacklineStage];
  app.synth();
  runner = Template.fromStack(stage.runner);
  data = Template.fromStack(stage.data);
  api = Template.fromStack(stage.api);
}, 240_000);

afterAll(async () => {
  if (outdir) await rm(outdir, { recursive: true, force: true });
});

function resources(template: Template, type: string): Array<[string, Resource]> {
  return Object.entries(template.findResources(type) as Record<string, Resource>);
}

/** Every (action, resource) a role's policies allow, sorted. */
function allowed(template: Template, roleId: string): string[] {
  return allowedFor(template, roleId)
    .map(({ action, resource }) => `${action} ${resource}`)
    .sort();
}

function aliasId(pipeline: string): string {
  const deployed = stage.pipelines.deployed.find((d) => d.pipeline.name === pipeline)!;
  return stage.runner.getLogicalId(deployed.alias);
}

function schedule(name: string): Resource {
  const found = resources(runner, 'AWS::Scheduler::Schedule').find(([, s]) => s.Properties.Name === name);
  expect(found, name).toBeDefined();
  return found![1];
}

function rule(name: string): Resource {
  const found = resources(runner, 'AWS::Events::Rule').find(([, r]) => r.Properties.Name === name);
  expect(found, name).toBeDefined();
  return found![1];
}

/** What EventBridge delivers: the template with each placeholder replaced by the JSON value at its path. */
function transform(transformer: { InputPathsMap: Record<string, string>; InputTemplate: string }, event: Json): Json {
  const at = (path: string) =>
    path
      .replace(/^\$\.?/, '')
      .split('.')
      .filter(Boolean)
      .reduce((v, k) => v?.[k], event);
  const text = transformer.InputTemplate.replace(/<([\w.-]+)>/g, (_, name: string) =>
    JSON.stringify(at(transformer.InputPathsMap[name]!) ?? null),
  );
  return JSON.parse(text);
}

const DLQ = () => `<${resources(runner, 'AWS::SQS::Queue')[0]![0]}.Arn>`;

describe('schedules', () => {
  it('start the training pipeline on its cron in its time zone, with a flexible window, retries and a dead-letter queue', () => {
    const s = schedule('stackline-dev-iris_training-schedule-0').Properties;
    expect(s).toMatchObject({
      ScheduleExpression: 'cron(0 6 ? * MON *)',
      ScheduleExpressionTimezone: 'Europe/Paris',
      FlexibleTimeWindow: { Mode: 'FLEXIBLE', MaximumWindowInMinutes: 15 },
      State: 'ENABLED',
    });
    expect(render(s.Target.Arn)).toBe(`<${aliasId('iris_training')}.Arn>`);
    expect(render(s.Target.DeadLetterConfig.Arn)).toBe(DLQ());
    expect(s.Target.RetryPolicy).toEqual({ MaximumRetryAttempts: 3, MaximumEventAgeInSeconds: 3600 });
    const input = JSON.parse(s.Target.Input);
    expect(input).toEqual({
      pipeline: 'iris_training',
      parameters: { trees: 25 },
      tags: ['trigger:schedule'],
      trigger: {
        kind: 'schedule',
        name: 'stackline-dev-iris_training-schedule-0',
        id: '<aws.scheduler.execution-id>',
      },
    });
    // What the start-run state will validate: the pipeline's own schema accepts it.
    expect(training.parseParameters(input.parameters)).toMatchObject({ trees: 25 });
  });

  it('render rate schedules and UTC by default, with no flexible window unless asked', () => {
    expect(schedule('stackline-dev-triggered-schedule-0').Properties).toMatchObject({
      ScheduleExpression: 'rate(12 hours)',
      ScheduleExpressionTimezone: 'UTC',
      FlexibleTimeWindow: { Mode: 'OFF' },
    });
    expect(JSON.parse(schedule('stackline-dev-triggered-schedule-1').Properties.Target.Input).parameters).toEqual({
      key: 'daily',
    });
  });

  it("each pipeline's schedules assume their own role, allowed exactly StartExecution on that alias and the dead-letter queue", () => {
    const roleId = render(schedule('stackline-dev-iris_training-schedule-0').Properties.Target.RoleArn)
      .slice(1)
      .replace(/\.Arn>$/, '');
    expect(allowed(runner, roleId)).toEqual(
      [`sqs:SendMessage ${DLQ()}`, `states:StartExecution <${aliasId('iris_training')}.Arn>`].sort(),
    );
    const role = runner.toJSON().Resources[roleId];
    expect(role.Properties.AssumeRolePolicyDocument.Statement).toEqual([
      {
        Action: 'sts:AssumeRole',
        Effect: 'Allow',
        Principal: { Service: 'scheduler.amazonaws.com' },
        Condition: { StringEquals: { 'aws:SourceAccount': ACCOUNT } },
      },
    ]);
  });
});

describe('event rules', () => {
  it('start training on a custom event, mapping detail fields to parameters the schema accepts', () => {
    const r = rule('stackline-dev-iris_training-event-0').Properties;
    expect(r.EventPattern).toEqual({ source: ['iris.data'], 'detail-type': ['Iris Data Refreshed'] });
    const [target] = r.Targets;
    expect(render(target.Arn)).toBe(`<${aliasId('iris_training')}.Arn>`);
    const input = transform(target.InputTransformer, {
      id: 'evt-1',
      source: 'iris.data',
      detail: { trees: 9, seed: 4 },
    });
    expect(input).toEqual({
      pipeline: 'iris_training',
      parameters: { trees: 9, seed: 4 },
      tags: ['trigger:event'],
      trigger: { kind: 'event', name: 'stackline-dev-iris_training-event-0', id: 'evt-1' },
    });
    expect(training.parseParameters(input.parameters)).toMatchObject({ trees: 9, seed: 4 });
    expect(render(target.DeadLetterConfig.Arn)).toBe(DLQ());
    expect(target.RetryPolicy).toEqual({ MaximumRetryAttempts: 3, MaximumEventAgeInSeconds: 3600 });
  });

  it("start inference when this environment's iris_classifier reaches production (Stackline's own event)", () => {
    const r = rule('stackline-dev-iris_inference-stackline-0').Properties;
    expect(r.EventPattern).toEqual({
      source: ['stackline'],
      'detail-type': ['Model Version Stage Changed'],
      detail: { stack: ['dev'], model: ['iris_classifier'], toStage: ['production'] },
    });
    expect(transform(r.Targets[0].InputTransformer, { id: 'e-2', detail: {} })).toEqual({
      pipeline: 'iris_inference',
      parameters: {},
      tags: ['trigger:stackline'],
      trigger: { kind: 'stackline', name: 'stackline-dev-iris_inference-stackline-0', id: 'e-2' },
    });
  });

  it('match objects created under an S3 prefix and suffix in the artifact bucket, whose EventBridge notifications are on', () => {
    const r = rule('stackline-dev-triggered-s3-0').Properties;
    expect(r.EventPattern).toEqual({
      source: ['aws.s3'],
      'detail-type': ['Object Created'],
      detail: {
        bucket: { name: [`stackline-dev-artifacts-${ACCOUNT}-${REGION}`] },
        object: { key: [{ wildcard: 'incoming/*.csv' }] },
      },
    });
    const input = transform(r.Targets[0].InputTransformer, {
      id: 'e-3',
      detail: { bucket: { name: 'b' }, object: { key: 'incoming/x.csv' } },
    });
    expect(triggered.parseParameters(input.parameters)).toEqual({ key: 'incoming/x.csv', bucket: 'b' });
    const [[, bucket]] = resources(data, 'AWS::S3::Bucket') as [[string, Resource]];
    expect(bucket.Properties.NotificationConfiguration).toEqual({
      EventBridgeConfiguration: { EventBridgeEnabled: true },
    });
  });

  it('match completed runs of another pipeline in this environment', () => {
    expect(rule('stackline-dev-triggered-stackline-1').Properties.EventPattern).toEqual({
      source: ['stackline'],
      'detail-type': ['Run Status Changed'],
      detail: { stack: ['dev'], pipeline: ['simple'], status: ['completed'] },
    });
  });

  it('each rule assumes its own role, allowed exactly StartExecution on its alias', () => {
    for (const [name, pipeline] of [
      ['stackline-dev-iris_training-event-0', 'iris_training'],
      ['stackline-dev-iris_inference-stackline-0', 'iris_inference'],
      ['stackline-dev-triggered-s3-0', 'triggered'],
    ] as const) {
      const roleId = render(rule(name).Properties.Targets[0].RoleArn)
        .slice(1)
        .replace(/\.Arn>$/, '');
      expect(allowed(runner, roleId), name).toEqual([`states:StartExecution <${aliasId(pipeline)}.Arn>`]);
    }
  });

  it('deploys exactly the declared schedules and rules', () => {
    expect(stage.triggers.triggers.map((t) => t.name).sort()).toEqual(
      [
        'stackline-dev-iris_inference-stackline-0',
        'stackline-dev-iris_training-event-0',
        'stackline-dev-iris_training-schedule-0',
        'stackline-dev-triggered-s3-0',
        'stackline-dev-triggered-schedule-0',
        'stackline-dev-triggered-schedule-1',
        'stackline-dev-triggered-stackline-1',
      ].sort(),
    );
  });
});

describe('platform events and the execution-status rule', () => {
  const BUS = `arn:aws:events:${REGION}:${ACCOUNT}:event-bus/default`;
  const fn = (template: Template, suffix: string) =>
    resources(template, 'AWS::Lambda::Function').find(([, f]) => String(f.Properties.FunctionName).endsWith(suffix))!;

  it('lets the step runner and the API publish to the default bus, and tells them to', () => {
    for (const [template, suffix] of [
      [runner, '-step-runner'],
      [api, ''],
    ] as const) {
      const [, f] = fn(template, suffix);
      expect(f.Properties.Environment.Variables.STACKLINE_EVENT_BUS).toBe('default');
      const roleId = f.Properties.Role['Fn::GetAtt'][0];
      expect(allowed(template, roleId).filter((a) => a.startsWith('events:'))).toEqual([`events:PutEvents ${BUS}`]);
    }
  });

  it('sends FAILED, TIMED_OUT and ABORTED executions of this environment to the execution-status Lambda', () => {
    const r = rule('stackline-dev-execution-status').Properties;
    const machines = stage.pipelines.deployed.map(
      (d) => `<${stage.runner.getLogicalId(d.stateMachine.node.defaultChild as never)}>`,
    );
    expect(r.EventPattern.source).toEqual(['aws.states']);
    expect(r.EventPattern['detail-type']).toEqual(['Step Functions Execution Status Change']);
    expect(r.EventPattern.detail.status).toEqual(['FAILED', 'TIMED_OUT', 'ABORTED']);
    expect(r.EventPattern.detail.stateMachineArn.map(render).sort()).toEqual(machines.sort());
    const [id] = fn(runner, '-execution-status');
    expect(render(r.Targets[0].Arn)).toBe(`<${id}.Arn>`);
    const permissions = resources(runner, 'AWS::Lambda::Permission').filter(
      ([, p]) => render(p.Properties.FunctionName) === `<${id}.Arn>`,
    );
    expect(permissions.map(([, p]) => [p.Properties.Action, p.Properties.Principal])).toEqual([
      ['lambda:InvokeFunction', 'events.amazonaws.com'],
    ]);
  });

  it('gives the execution-status Lambda exactly its log group, the run tables and PutEvents', () => {
    const [, f] = fn(runner, '-execution-status');
    const roleId = f.Properties.Role['Fn::GetAtt'][0];
    const actions = [...new Set(allowed(runner, roleId).map((a) => a.split(' ')[0]))].sort();
    expect(actions).toEqual(
      [
        'dynamodb:BatchGetItem',
        'dynamodb:BatchWriteItem',
        'dynamodb:ConditionCheckItem',
        'dynamodb:DeleteItem',
        'dynamodb:GetItem',
        'dynamodb:PutItem',
        'dynamodb:Query',
        'dynamodb:Scan',
        'dynamodb:UpdateItem',
        'events:PutEvents',
        'logs:CreateLogStream',
        'logs:PutLogEvents',
      ].sort(),
    );
    expect(allowed(runner, roleId).filter((a) => a.includes(':table/stackline-dev-stages'))).toEqual([]);
    expect(f.Properties.Environment.Variables).toEqual({
      STACKLINE_STACK: 'dev',
      STACKLINE_TABLE_PREFIX: 'stackline-dev',
      STACKLINE_EVENT_BUS: 'default',
    });
  });
});

describe('cdk-nag AwsSolutions', () => {
  it('reports no unacknowledged finding on the environment with triggers', async () => {
    type Report = { pluginReports: Array<{ violations: Array<{ ruleName: string; severity: string }> }> };
    const report = JSON.parse(await readFile(join(outdir, 'validation-report.json'), 'utf8')) as Report;
    expect(report.pluginReports.flatMap((p) => p.violations.map((v) => `${v.severity} ${v.ruleName}`))).toEqual([]);
  });
});
