/**
 * The schedules and event triggers pipelines declare (`pipeline({ schedule, triggers })`), as
 * EventBridge Scheduler schedules and EventBridge rules on the default bus, each starting the
 * pipeline's `live` alias with an execution input the `start-run` state validates:
 *
 *   { "pipeline": "<name>", "parameters": {...}, "tags": ["trigger:<kind>"],
 *     "trigger": { "kind": "schedule|s3|event|stackline", "name": "<schedule or rule>", "id": "<event id>" } }
 *
 * The run records `trigger`, and its id is derived from the event id (`triggeredRunId`): a
 * redelivered event ends its execution in the `DuplicateTrigger` state and starts nothing new.
 * Also here: Stackline's own events (the step runner publishes them to the default bus) and the
 * rule that ends the run of an execution that failed, timed out or was stopped outside the runner.
 */
import { Arn, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { parameterNamesOf } from '../lib/dsl/pipeline.ts';
import { type ParameterMapping, type PipelineTrigger, schedulesOf, triggersProblem } from '../lib/dsl/triggers.ts';
import {
  MODEL_VERSION_STAGE_CHANGED,
  RUN_STATUS_CHANGED,
  STACKLINE_EVENT_SOURCE,
} from '../lib/events/platform-events.ts';
import { acknowledgeRule } from './nag.ts';
import { constructId, type DeployedPipeline } from './pipeline-state-machines.ts';

/** The bus platform events are published to and triggers listen on (S3 notifications only reach `default`). */
export const EVENT_BUS_NAME = 'default';

/** Props of {@link PipelineTriggers}. */
export interface PipelineTriggersProps {
  /** The environment's state machines (their `live` aliases are the targets). */
  deployed: readonly DeployedPipeline[];
  /** The Stackline stack (environment) name: platform events are matched on `detail.stack`. */
  stacklineStack: string;
  /** Schedules and rules are `<prefix><pipeline>-<kind>-<n>`. */
  namePrefix: string;
  /** The artifact bucket S3 triggers watch (its EventBridge notifications must be on). */
  bucketName: string;
  /** What publishes platform events (step runner, ECS container, API): each gets `STACKLINE_EVENT_BUS` and `events:PutEvents` on it. */
  publishers: readonly EventPublisher[];
  /** Ends runs of executions that stop outside the runner; omit to deploy no such rule. */
  executionStatus?: { codeDirectory: string; tablePrefix: string; tableArns: string[]; tableActions: string[] };
}

/** A function or container that publishes platform events: it gets an environment variable and a grant. */
export interface EventPublisher {
  addEnvironment(name: string, value: string): unknown;
  addToRolePolicy(statement: iam.PolicyStatement): unknown;
}

/** One deployed trigger, for tests and outputs. */
export interface DeployedTrigger {
  pipeline: string;
  kind: 'schedule' | 's3' | 'event' | 'stackline';
  name: string;
}

/**
 * @example
 * new PipelineTriggers(runner, 'Triggers', { deployed: pipelines.deployed, stacklineStack: 'dev',
 *   namePrefix: 'stackline-dev-', bucketName, publishers: [runner.function] });
 */
export class PipelineTriggers extends Construct {
  readonly triggers: DeployedTrigger[] = [];
  /** Where schedules and rules put what they could not deliver. */
  readonly deadLetterQueue: sqs.Queue;
  readonly executionStatusFunction?: lambda.Function;

  constructor(scope: Construct, id: string, props: PipelineTriggersProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const busArn = Arn.format({ service: 'events', resource: 'event-bus', resourceName: EVENT_BUS_NAME }, stack);
    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetters', {
      queueName: `${props.namePrefix}trigger-dead-letters`,
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
      removalPolicy: RemovalPolicy.DESTROY,
    });
    acknowledgeRule(
      this.deadLetterQueue,
      'SQS3',
      'This queue is itself the dead-letter queue of the schedules and rules that start pipelines.',
    );

    for (const publisher of props.publishers) {
      publisher.addEnvironment('STACKLINE_EVENT_BUS', EVENT_BUS_NAME);
      publisher.addToRolePolicy(new iam.PolicyStatement({ actions: ['events:PutEvents'], resources: [busArn] }));
    }

    for (const deployed of props.deployed) {
      const { pipeline } = deployed;
      const problem = triggersProblem(
        pipeline.name,
        pipeline.config.schedule,
        pipeline.config.triggers,
        parameterNamesOf(pipeline.config.parameters),
      );
      if (problem !== undefined) throw new Error(problem);
      this.addSchedules(deployed, props);
      for (const [i, trigger] of (pipeline.config.triggers ?? []).entries()) this.addRule(deployed, trigger, i, props);
    }

    if (props.executionStatus) this.executionStatusFunction = this.addExecutionStatusRule(props, busArn);
  }

  private addSchedules({ pipeline, alias }: DeployedPipeline, props: PipelineTriggersProps): void {
    const schedules = schedulesOf(pipeline.config.schedule);
    if (schedules.length === 0) return;
    const scopeId = constructId(pipeline.name);
    const role = new iam.Role(this, `${scopeId}ScheduleRole`, {
      assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', {
        conditions: { StringEquals: { 'aws:SourceAccount': Stack.of(this).account } },
      }),
      description: `EventBridge Scheduler: starts the Stackline pipeline ${pipeline.name}`,
    });
    role.addToPolicy(new iam.PolicyStatement({ actions: ['states:StartExecution'], resources: [alias.attrArn] }));
    role.addToPolicy(
      new iam.PolicyStatement({ actions: ['sqs:SendMessage'], resources: [this.deadLetterQueue.queueArn] }),
    );
    for (const [i, schedule] of schedules.entries()) {
      const name = `${props.namePrefix}${pipeline.name}-schedule-${i}`;
      new scheduler.CfnSchedule(this, `${scopeId}Schedule${i}`, {
        name,
        description: `Starts ${pipeline.name} (${schedule.cron ? `cron ${schedule.cron}` : `rate ${schedule.rate}`})`,
        scheduleExpression: schedule.cron ? `cron(${schedule.cron})` : `rate(${schedule.rate})`,
        scheduleExpressionTimezone: schedule.timeZone ?? 'UTC',
        flexibleTimeWindow:
          schedule.flexibleWindowMinutes === undefined
            ? { mode: 'OFF' }
            : { mode: 'FLEXIBLE', maximumWindowInMinutes: schedule.flexibleWindowMinutes },
        state: 'ENABLED',
        target: {
          arn: alias.attrArn,
          roleArn: role.roleArn,
          // Scheduler fills in its context attributes; the execution id is the same on retries.
          input: JSON.stringify({
            pipeline: pipeline.name,
            parameters: schedule.parameters ?? {},
            tags: ['trigger:schedule'],
            trigger: { kind: 'schedule', name, id: '<aws.scheduler.execution-id>' },
          }),
          deadLetterConfig: { arn: this.deadLetterQueue.queueArn },
          retryPolicy: { maximumRetryAttempts: 3, maximumEventAgeInSeconds: 3600 },
        },
      });
      this.triggers.push({ pipeline: pipeline.name, kind: 'schedule', name });
    }
  }

  private addRule(
    { pipeline, alias }: DeployedPipeline,
    trigger: PipelineTrigger,
    index: number,
    props: PipelineTriggersProps,
  ): void {
    const kind = 's3' in trigger ? 's3' : 'event' in trigger ? 'event' : 'stackline';
    const name = `${props.namePrefix}${pipeline.name}-${kind}-${index}`;
    const scopeId = `${constructId(pipeline.name)}Trigger${index}`;
    const role = new iam.Role(this, `${scopeId}Role`, {
      assumedBy: new iam.ServicePrincipal('events.amazonaws.com', {
        conditions: { StringEquals: { 'aws:SourceAccount': Stack.of(this).account } },
      }),
      description: `EventBridge rule ${name}: starts the Stackline pipeline ${pipeline.name}`,
    });
    role.addToPolicy(new iam.PolicyStatement({ actions: ['states:StartExecution'], resources: [alias.attrArn] }));
    // Imported by ARN: the rule's role is ours, so nothing is granted through the import.
    const target = sfn.StateMachine.fromStateMachineArn(this, `${scopeId}Alias`, alias.attrArn);
    new events.Rule(this, scopeId, {
      ruleName: name,
      description: `Starts ${pipeline.name} on ${describeTrigger(trigger)}`,
      eventPattern: eventPatternOf(trigger, props),
      targets: [
        new targets.SfnStateMachine(target, {
          role,
          input: events.RuleTargetInput.fromObject({
            pipeline: pipeline.name,
            parameters: parametersInput(trigger.parameters),
            tags: [`trigger:${kind}`],
            trigger: { kind, name, id: events.EventField.eventId },
          }),
          deadLetterQueue: this.deadLetterQueue,
          retryAttempts: 3,
          maxEventAge: Duration.hours(1),
        }),
      ],
    });
    this.triggers.push({ pipeline: pipeline.name, kind, name });
  }

  private addExecutionStatusRule(props: PipelineTriggersProps, busArn: string): lambda.Function {
    const config = props.executionStatus!;
    const functionName = `${props.namePrefix}execution-status`;
    const logGroup = new logs.LogGroup(this, 'ExecutionStatusLogs', {
      logGroupName: `/aws/lambda/${functionName}`,
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const role = new iam.Role(this, 'ExecutionStatusRole', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `Stackline ${props.stacklineStack}: ends runs of executions that stopped outside the runner`,
    });
    logGroup.grantWrite(role);
    role.addToPolicy(new iam.PolicyStatement({ actions: config.tableActions, resources: config.tableArns }));
    role.addToPolicy(new iam.PolicyStatement({ actions: ['events:PutEvents'], resources: [busArn] }));
    const fn = new lambda.Function(this, 'ExecutionStatus', {
      functionName,
      description: `Stackline ${props.stacklineStack}: ends the run of a failed, timed-out or stopped execution`,
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: lambda.Architecture.ARM_64,
      handler: 'index.handler',
      code: lambda.Code.fromAsset(config.codeDirectory),
      memorySize: 256,
      timeout: Duration.seconds(30),
      role,
      logGroup,
      environment: {
        STACKLINE_STACK: props.stacklineStack,
        STACKLINE_TABLE_PREFIX: config.tablePrefix,
        STACKLINE_EVENT_BUS: EVENT_BUS_NAME,
      },
    });
    acknowledgeRule(fn, 'L1', 'Node.js 22 on purpose, like the step runner: the bundle targets Node 20+.');
    new events.Rule(this, 'ExecutionStatusRule', {
      ruleName: `${props.namePrefix}execution-status`,
      description: `Ends the Stackline run of an execution of ${props.stacklineStack}'s pipelines that failed, timed out or was stopped`,
      eventPattern: {
        source: ['aws.states'],
        detailType: ['Step Functions Execution Status Change'],
        detail: {
          status: ['FAILED', 'TIMED_OUT', 'ABORTED'],
          stateMachineArn: props.deployed.map((d) => d.stateMachine.stateMachineArn),
        },
      },
      targets: [
        new targets.LambdaFunction(fn, {
          deadLetterQueue: this.deadLetterQueue,
          retryAttempts: 3,
          maxEventAge: Duration.hours(6),
        }),
      ],
    });
    return fn;
  }
}

/** The rule's event pattern for a trigger. */
export function eventPatternOf(
  trigger: PipelineTrigger,
  props: Pick<PipelineTriggersProps, 'bucketName' | 'stacklineStack'>,
): events.EventPattern {
  if ('s3' in trigger) {
    const { prefix, suffix } = trigger.s3;
    return {
      source: ['aws.s3'],
      detailType: ['Object Created'],
      detail: {
        bucket: { name: [props.bucketName] },
        object: {
          key:
            suffix === undefined ? [{ prefix }] : [{ wildcard: `${escapeWildcard(prefix)}*${escapeWildcard(suffix)}` }],
        },
      },
    };
  }
  if ('event' in trigger) {
    return {
      source: [trigger.event.source],
      detailType: [trigger.event.detailType],
      ...(trigger.event.detail ? { detail: trigger.event.detail } : {}),
    };
  }
  if (trigger.stackline === 'model-stage-changed') {
    return {
      source: [STACKLINE_EVENT_SOURCE],
      detailType: [MODEL_VERSION_STAGE_CHANGED],
      detail: { stack: [props.stacklineStack], model: [trigger.model], toStage: [trigger.stage] },
    };
  }
  return {
    source: [STACKLINE_EVENT_SOURCE],
    detailType: [RUN_STATUS_CHANGED],
    detail: { stack: [props.stacklineStack], pipeline: [trigger.pipeline], status: ['completed'] },
  };
}

function parametersInput(mapping: ParameterMapping | undefined): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(mapping ?? {}).map(([name, source]) => [
      name,
      source !== null && typeof source === 'object' ? events.EventField.fromPath(source.path) : source,
    ]),
  );
}

function describeTrigger(trigger: PipelineTrigger): string {
  if ('s3' in trigger) return `objects created under s3 prefix ${trigger.s3.prefix}`;
  if ('event' in trigger) return `events ${trigger.event.source} / ${trigger.event.detailType}`;
  if (trigger.stackline === 'model-stage-changed') return `model ${trigger.model} reaching ${trigger.stage}`;
  return `runs of ${trigger.pipeline} completing`;
}

function escapeWildcard(text: string): string {
  return text.replace(/[\\*]/g, (c) => `\\${c}`);
}
