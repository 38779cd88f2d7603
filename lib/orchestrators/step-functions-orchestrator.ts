import {
  DescribeExecutionCommand,
  type ExecutionStatus,
  GetExecutionHistoryCommand,
  type HistoryEvent,
  ListStateMachinesCommand,
  ListTagsForResourceCommand,
  SFNClient,
  StartExecutionCommand,
  StopExecutionCommand,
} from '@aws-sdk/client-sfn';
import type { PipelineDefinition } from '../dsl/pipeline.ts';
import { ExecutionFailedError, StackConfigError } from '../errors.ts';
import type { ErrorInfo, PipelineRun, StepRun, Tag } from '../metadata/types.ts';
import type { RunEvent, RunResult } from '../runtime/local-orchestrator.ts';
import { prepareRun } from '../runtime/run-lifecycle.ts';
import { resolveAwsRegion } from '../stacks/aws-clients.ts';
import type { StackRuntime } from '../stacks/project.ts';
import { newId, nowIso } from '../util/ids.ts';
import {
  assertGraphIndependentOf,
  DEFINITION_HASH_TAG,
  DEPLOYED_ALIAS,
  pipelineDefinitionHash,
  stateMachineName,
} from './deployed-pipelines.ts';

export interface StepFunctionsRunOptions {
  params?: unknown;
  tags?: Tag[];
  signal?: AbortSignal;
  onEvent?: (event: RunEvent) => void;
  /** How often progress is read from the metadata store. Default 1000 ms. */
  pollIntervalMs?: number;
  /** Injected in tests; otherwise built from the stack's orchestrator settings. */
  sfn?: SFNClient;
}

/**
 * Runs a pipeline on a stack whose orchestrator is `step-functions`, on the state machine the CDK
 * app deployed for it (`<prefix><pipeline>`, alias `live`): validates the parameters and the DAG
 * here (so bad input fails before anything starts), checks that the local pipeline is the deployed
 * one (the state machine's `stackline:definition-sha256` tag), starts an execution of the alias
 * named after the run id, and reports each step's progress from the metadata store — where the
 * step runner records it — until the execution ends. Nothing is created: users need
 * `states:StartExecution`, not `states:CreateStateMachine` or `iam:PassRole`.
 *
 * @throws StackConfigError when the pipeline is not deployed to the stack, or differs from the deployed one
 * @throws ValidationError when the parameters are invalid or would change the deployed graph
 * @throws ExecutionFailedError when the execution failed before the step runner recorded the run
 *   (its message is the execution's own error and cause)
 */
export async function runOnStepFunctions(
  pipeline: PipelineDefinition,
  stack: StackRuntime,
  options: StepFunctionsRunOptions = {},
): Promise<RunResult> {
  const { orchestrator } = stack.components;
  if (orchestrator.type !== 'step-functions')
    throw new StackConfigError(`Stack "${stack.name}" does not use the step-functions orchestrator.`);
  const prepared = await prepareRun(pipeline, options.params, stack);
  assertGraphIndependentOf(pipeline, prepared.params);
  const sfn =
    options.sfn ??
    new SFNClient({
      region: resolveAwsRegion(stack.name, 'orchestrator', orchestrator),
      ...(orchestrator.endpoint ? { endpoint: orchestrator.endpoint } : {}),
    });
  try {
    const name = stateMachineName(pipeline.name, orchestrator.stateMachinePrefix);
    const stateMachineArn = await findStateMachine(sfn, name);
    if (!stateMachineArn) {
      throw new StackConfigError(
        `Pipeline "${pipeline.name}" is not deployed to stack "${stack.name}" (no state machine ${name}): add its module to the environment's "pipelines" in cdk.json and deploy (\`stackline deploy --env <env>\`).`,
        { context: { pipeline: pipeline.name, stateMachine: name } },
      );
    }
    await assertDeployedMatches(sfn, stateMachineArn, pipeline, stack.name);
    const runId = newId('run');
    const { executionArn } = await sfn.send(
      new StartExecutionCommand({
        stateMachineArn: `${stateMachineArn}:${DEPLOYED_ALIAS}`,
        name: runId,
        input: JSON.stringify({
          pipeline: pipeline.name,
          parameters: prepared.params,
          runId,
          tags: options.tags ?? [],
        }),
      }),
    );
    return await followExecution(sfn, executionArn!, runId, prepared.graph, stack, options);
  } finally {
    if (!options.sfn) sfn.destroy();
  }
}

async function findStateMachine(sfn: SFNClient, name: string): Promise<string | undefined> {
  let nextToken: string | undefined;
  do {
    const page = await sfn.send(new ListStateMachinesCommand({ ...(nextToken ? { nextToken } : {}) }));
    const found = page.stateMachines?.find((m) => m.name === name);
    if (found?.stateMachineArn) return found.stateMachineArn;
    nextToken = page.nextToken;
  } while (nextToken);
  return undefined;
}

/** The deployed state machine must have been compiled from this very pipeline definition. */
async function assertDeployedMatches(
  sfn: SFNClient,
  stateMachineArn: string,
  pipeline: PipelineDefinition,
  stackName: string,
): Promise<void> {
  const { tags } = await sfn.send(new ListTagsForResourceCommand({ resourceArn: stateMachineArn }));
  const deployed = tags?.find((t) => t.key === DEFINITION_HASH_TAG)?.value;
  const local = pipelineDefinitionHash(pipeline);
  if (deployed === local) return;
  throw new StackConfigError(
    `Pipeline "${pipeline.name}" differs from the one deployed to stack "${stackName}" (local definition ${local.slice(0, 12)}, deployed ${deployed ? deployed.slice(0, 12) : 'untagged'}): deploy this version (\`stackline deploy --env <env>\`) or run from the revision that was deployed.`,
    { context: { pipeline: pipeline.name, stateMachineArn, local, deployed } },
  );
}

/** The execution's own error and cause, from its last failure event (GetExecutionHistory). */
export async function executionFailure(sfn: SFNClient, executionArn: string): Promise<ErrorInfo | undefined> {
  // Read in order, all pages: the failure is the last event (reverseOrder is not honoured everywhere).
  let failure: ErrorInfo | undefined;
  let nextToken: string | undefined;
  do {
    const page = await sfn.send(
      new GetExecutionHistoryCommand({ executionArn, maxResults: 1000, ...(nextToken ? { nextToken } : {}) }),
    );
    for (const event of page.events ?? []) {
      const details = failureDetails(event);
      if (details) {
        failure = {
          type: details.error || event.type || 'ExecutionFailed',
          message: details.cause || '(no cause given)',
        };
      }
    }
    nextToken = page.nextToken;
  } while (nextToken);
  return failure;
}

function failureDetails(event: HistoryEvent): { error?: string; cause?: string } | undefined {
  return (
    event.executionFailedEventDetails ??
    event.executionAbortedEventDetails ??
    event.executionTimedOutEventDetails ??
    undefined
  );
}

async function followExecution(
  sfn: SFNClient,
  executionArn: string,
  runId: string,
  graph: ReturnType<PipelineDefinition['build']>,
  stack: StackRuntime,
  options: StepFunctionsRunOptions,
): Promise<RunResult> {
  const seen = new Map<string, StepRun['status']>();
  let announced = false;
  let status: ExecutionStatus | undefined = 'RUNNING';
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await sfn.send(
      new StopExecutionCommand({ executionArn, error: 'Cancelled', cause: 'Cancelled from the stackline CLI' }),
    );
  };
  options.signal?.addEventListener('abort', () => void stop().catch(() => {}), { once: true });

  const report = async () => {
    const run = await stack.metadata.runs.get(runId).catch(() => undefined);
    if (!run) return;
    if (!announced) {
      announced = true;
      options.onEvent?.({ type: 'run-started', run, graph });
    }
    for (const stepRun of await stack.metadata.runs.listSteps(runId)) {
      const previous = seen.get(stepRun.id);
      if (previous === stepRun.status) continue;
      seen.set(stepRun.id, stepRun.status);
      if (stepRun.status === 'running')
        options.onEvent?.({ type: 'step-started', runId, stepId: stepRun.stepId, stepRunId: stepRun.id });
      else options.onEvent?.({ type: 'step-finished', runId, stepId: stepRun.stepId, stepRun });
    }
  };

  while (status === 'RUNNING') {
    await new Promise((r) => setTimeout(r, options.pollIntervalMs ?? 1000));
    await report();
    status = (await sfn.send(new DescribeExecutionCommand({ executionArn }))).status;
  }
  await report();

  let run: PipelineRun;
  try {
    run = await stack.metadata.runs.get(runId);
  } catch {
    const failure = await executionFailure(sfn, executionArn).catch(() => undefined);
    throw new ExecutionFailedError(
      `Execution ${executionArn} ended ${status} before the step runner recorded run ${runId}: ${failure ? `${failure.type}: ${failure.message}` : 'the execution history gives no error'}`,
      { context: { executionArn, runId, status, ...(failure ? { error: failure } : {}) } },
    );
  }
  if (run.status === 'running') {
    // The execution ended outside the step runner (stopped, timed out, or failed in a state that
    // does not record failures): record the execution's own error on the run.
    const ended = status === 'ABORTED' || stopped ? 'cancelled' : 'failed';
    const failure = await executionFailure(sfn, executionArn).catch(() => undefined);
    await stack.metadata.runs.abandon(
      [runId],
      ended,
      nowIso(),
      failure ?? { type: 'ExecutionEnded', message: `Step Functions execution ended ${status}` },
    );
    run = await stack.metadata.runs.get(runId);
  }
  options.onEvent?.({ type: 'run-finished', run });
  const stepRuns = await stack.metadata.runs.listSteps(runId);
  const latest = new Map<string, StepRun>();
  for (const s of stepRuns) latest.set(s.stepId, s);
  const versionIds = [...latest.values()].flatMap((s) => Object.values(s.outputs));
  const versions = new Map((await stack.metadata.artifacts.getVersionsByIds(versionIds)).map((v) => [v.id, v]));
  return {
    run,
    steps: graph.nodes.map((node) => {
      const stepRun = latest.get(node.id);
      if (!stepRun) return { node };
      const outputs = Object.fromEntries(Object.entries(stepRun.outputs).map(([k, id]) => [k, versions.get(id)!]));
      return { node, stepRun, result: { stepRun, outputs } };
    }),
  };
}
