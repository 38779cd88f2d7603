/**
 * The ECS entry point against Step Functions and ECS on moto: a compiled ECS step's states run on
 * moto's interpreter (through the launcher's `ecs_run_task` patch), which calls ECS RunTask with the
 * request and the task token as container overrides. No container runs here (no Docker): the test
 * plays Fargate — it reads each started task's overrides with DescribeTasks and runs the real entry
 * point (`runEcsTask`) with them, whose SendTaskHeartbeat / SendTaskSuccess / SendTaskFailure go to
 * moto's Step Functions. The step's stores are a local stack: what is under test is the token's
 * round trip and the Retry fields, not the stores (the interpreter tier covers those on S3/DynamoDB).
 */
import {
  CreateClusterCommand,
  DescribeTasksCommand,
  ECSClient,
  ListTasksCommand,
  RegisterTaskDefinitionCommand,
} from '@aws-sdk/client-ecs';
import {
  CreateStateMachineCommand,
  DescribeExecutionCommand,
  GetExecutionHistoryCommand,
  type HistoryEvent,
  SFNClient,
  StartExecutionCommand,
} from '@aws-sdk/client-sfn';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { runEcsTask } from '../../functions/step-runner/ecs.ts';
import type { State, StateMachineDefinition, TaskState } from '../../lib/compiler/asl-types.ts';
import { compileToAsl, type EcsRunnerOptions } from '../../lib/compiler/compile-to-asl.ts';
import { NonRetriableError, type PipelineDefinition, pipeline, step } from '../../lib/index.ts';
import { handleStepRunnerRequest, type StepRunnerDeps } from '../../lib/runtime/step-runner.ts';
import { createLocalTestEnv, type LocalTestEnv } from '../support/local-env.ts';
import { awsTestClientConfig, type MotoServer, startMoto } from '../support/moto.ts';

const Num = z.number();
let rejectingCalls = 0;
const rejecting = step(
  { name: 'tt_rejecting', outputs: { value: Num }, runner: 'ecs', retries: { maxRetries: 2, backoffMs: 1000 } },
  () => {
    rejectingCalls++;
    throw new NonRetriableError('the label column is missing');
  },
);
let flakyFailuresLeft = 0;
const flaky = step(
  { name: 'tt_flaky', outputs: { value: Num }, runner: 'ecs', retries: { maxRetries: 2, backoffMs: 1000 } },
  () => {
    if (flakyFailuresLeft-- > 0) throw new Error('the spot capacity went away');
    return { value: 7 };
  },
);
const rejectingPipeline = pipeline({ name: 'tt_rejecting_pipeline' }, () => {
  rejecting({});
});
const flakyPipeline = pipeline({ name: 'tt_flaky_pipeline' }, () => {
  flaky({});
});
const module = { rejectingPipeline, flakyPipeline };

let moto: MotoServer;
let sfn: SFNClient;
let ecs: ECSClient;
let local: LocalTestEnv;
let settings: EcsRunnerOptions;
const stderr: string[] = [];
/** What the entry point sent to Step Functions, in order (it goes on to moto unchanged). */
let sent: Array<{ command: string; taskToken?: string; error?: string; cause?: string; output?: string }> = [];

/** EC2 has no SDK client in this project: three Query-API calls are all the test needs. */
async function ec2(endpoint: string, params: Record<string, string>, field: string): Promise<string> {
  const response = await fetch(endpoint, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization:
        'AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0',
    },
    body: new URLSearchParams({ Version: '2016-11-15', ...params }),
  });
  const text = await response.text();
  return text.match(new RegExp(`<${field}>(.*?)</${field}>`))?.[1] ?? '';
}

beforeAll(async () => {
  moto = await startMoto({ stepFunctionsExecution: true });
  sfn = new SFNClient(awsTestClientConfig(moto.endpoint));
  ecs = new ECSClient(awsTestClientConfig(moto.endpoint));
  local = await createLocalTestEnv();
  // What the CDK construct creates: a VPC with DNS host names, a subnet, the tasks' security group.
  const vpc = await ec2(moto.endpoint, { Action: 'CreateVpc', CidrBlock: '10.0.0.0/16' }, 'vpcId');
  await ec2(moto.endpoint, { Action: 'ModifyVpcAttribute', VpcId: vpc, 'EnableDnsHostnames.Value': 'true' }, 'return');
  const subnet = await ec2(moto.endpoint, { Action: 'CreateSubnet', VpcId: vpc, CidrBlock: '10.0.1.0/24' }, 'subnetId');
  const group = await ec2(
    moto.endpoint,
    { Action: 'CreateSecurityGroup', VpcId: vpc, GroupName: 'tasks', GroupDescription: 'step runner tasks' },
    'groupId',
  );
  const cluster = await ecs.send(new CreateClusterCommand({ clusterName: 'stackline' }));
  const taskDefinition = await ecs.send(
    new RegisterTaskDefinitionCommand({
      family: 'stackline-step-runner',
      requiresCompatibilities: ['FARGATE'],
      networkMode: 'awsvpc',
      cpu: '1024',
      memory: '2048',
      runtimePlatform: { cpuArchitecture: 'ARM64', operatingSystemFamily: 'LINUX' },
      containerDefinitions: [{ name: 'step-runner', image: 'stackline-step-runner', essential: true, memory: 2048 }],
    }),
  );
  settings = {
    clusterArn: cluster.cluster!.clusterArn!,
    taskDefinitionArn: taskDefinition.taskDefinition!.taskDefinitionArn!,
    containerName: 'step-runner',
    subnets: [subnet],
    securityGroups: [group],
  };
});

afterAll(async () => {
  sfn?.destroy();
  ecs?.destroy();
  await local?.cleanup();
  await moto?.stop();
});

const deps = (pipelines: readonly PipelineDefinition[]): StepRunnerDeps => ({
  pipelines,
  stores: local,
  stackName: 'tt',
});

/**
 * Deploys the compiled ECS step of `p` (its `Request_` Pass and its Task state, Retry and
 * HeartbeatSeconds as compiled; the Catch that leads to the run's bookkeeping removed) and runs it
 * for a run created in the local stores. Every task moto starts is run by the real entry point.
 */
async function runCompiledEcsStep(p: PipelineDefinition, stepId: string) {
  const { definition } = compileToAsl(p, { lambdaFunctionArn: 'stackline-step-runner', ecs: settings });
  const request = definition.States[`Request_${stepId}`] as State;
  const { Catch: _catch, Next: _next, ...task } = definition.States[`Step_${stepId}`] as TaskState & { Next?: string };
  const machine: StateMachineDefinition = {
    StartAt: `Request_${stepId}`,
    States: { [`Request_${stepId}`]: request, [`Step_${stepId}`]: { ...task, End: true } as TaskState },
  };
  const { stateMachineArn } = await sfn.send(
    new CreateStateMachineCommand({
      name: p.name,
      definition: JSON.stringify(machine),
      roleArn: 'arn:aws:iam::123456789012:role/stackline-sfn',
    }),
  );
  const { runId } = await handleStepRunnerRequest(
    { action: 'start-run', pipeline: p.name, parameters: {}, tags: [] },
    deps([p]),
  );
  const { executionArn } = await sfn.send(
    new StartExecutionCommand({ stateMachineArn, name: runId, input: JSON.stringify({ run: { runId } }) }),
  );

  sent = [];
  const served = new Set<string>();
  let ran = 0;
  const deadline = Date.now() + 60_000;
  for (;;) {
    const { status } = await sfn.send(new DescribeExecutionCommand({ executionArn }));
    if (status !== 'RUNNING' || Date.now() > deadline) break;
    const { taskArns = [] } = await ecs.send(new ListTasksCommand({ cluster: settings.clusterArn }));
    const fresh = taskArns.filter((arn) => !served.has(arn));
    if (fresh.length > 0) {
      const { tasks = [] } = await ecs.send(new DescribeTasksCommand({ cluster: settings.clusterArn, tasks: fresh }));
      for (const task of tasks) {
        served.add(task.taskArn!);
        const environment = task.overrides!.containerOverrides![0]!.environment!;
        const env = (name: string) => environment.find((variable) => variable.name === name)?.value;
        if (JSON.parse(env('STACKLINE_REQUEST')!).pipeline !== p.name) continue;
        ran++;
        // Fargate would start the container with these variables: the entry point does the rest.
        await runEcsTask(module, env('STACKLINE_REQUEST'), {
          stdout: { write: () => true },
          stderr: { write: (text: string) => stderr.push(text) },
          taskToken: env('STACKLINE_TASK_TOKEN'),
          stepFunctions: {
            send: (command: { constructor: { name: string }; input: unknown }) => {
              sent.push({ command: command.constructor.name, ...(command.input as Record<string, string>) });
              return sfn.send(command as never);
            },
          },
          resolveDeps: deps,
        });
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const execution = await sfn.send(new DescribeExecutionCommand({ executionArn }));
  const { events = [] } = await sfn.send(new GetExecutionHistoryCommand({ executionArn }));
  return { execution, events, runId, tasks: ran };
}

const failures = (events: HistoryEvent[]) =>
  events.filter((e) => e.type === 'TaskFailed').map((e) => e.taskFailedEventDetails?.error);

describe('the ECS entry point reports on the task token to Step Functions (moto)', () => {
  it('sends SendTaskFailure named NonRetriableError, which the compiled Retry does not retry', async () => {
    rejectingCalls = 0;
    const { execution, events, runId, tasks } = await runCompiledEcsStep(rejectingPipeline, 'tt_rejecting');
    expect(execution.status).toBe('FAILED');
    expect(execution.error).toBe('NonRetriableError');
    // moto 5.2.1 drops the cause of SendTaskFailure: check what the entry point sent.
    const failure = sent.find((call) => call.command === 'SendTaskFailureCommand')!;
    expect(failure.error).toBe('NonRetriableError');
    expect(JSON.parse(failure.cause!)).toEqual({
      errorType: 'NonRetriableError',
      errorMessage: expect.stringContaining('the label column is missing'),
    });
    expect(tasks).toBe(1);
    expect(rejectingCalls).toBe(1);
    expect(events.filter((e) => e.type === 'TaskScheduled')).toHaveLength(1);
    expect(failures(events)).toEqual(['NonRetriableError']);
    expect((await local.metadata.runs.listSteps(runId)).map((s) => s.status)).toEqual(['failed']);
    // A heartbeat went out first, and moto accepted it for the live token.
    expect(sent[0]).toMatchObject({ command: 'SendTaskHeartbeatCommand', taskToken: failure.taskToken });
    expect(stderr.join('')).not.toMatch(/refused a heartbeat|Could not report/);
  });

  /**
   * Retries of a callback task are not checked here: moto 5.2.1 keeps the first attempt's task
   * token for a retry, whose stale outcome then fails it at once (AWS issues a new token per
   * attempt). The interpreter tier shows a transient ECS failure retried and a NonRetriableError not.
   */
  it('sends SendTaskSuccess with the runner response; the execution succeeds after one task', async () => {
    flakyFailuresLeft = 0;
    const { execution, events, runId, tasks } = await runCompiledEcsStep(flakyPipeline, 'tt_flaky');
    expect(execution.status).toBe('SUCCEEDED');
    expect(tasks).toBe(1);
    expect(failures(events)).toEqual([]);
    const success = sent.find((call) => call.command === 'SendTaskSuccessCommand')!;
    expect(JSON.parse(success.output!)).toMatchObject({ runId, stepId: 'tt_flaky', status: 'completed' });
    // ResultPath null: the state keeps only the run id, whatever the task answered.
    expect(JSON.parse(execution.output!)).toEqual({ run: { runId }, request: expect.objectContaining({ runId }) });
    expect((await local.metadata.runs.listSteps(runId)).map((s) => s.status)).toEqual(['completed']);
  });
});
