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
import { ExecutionFailedError, StackConfigError, ValidationError } from '../errors.ts';
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
  /** `false` disables the cache for every step of the run (recorded on the run; every step honours it). */
  cache?: boolean;
  /** Per-step cache overrides by step id (from a config file). */
  stepCache?: Record<string, boolean>;
  /**
   * Not supported: Step Functions runs independent branches in parallel and fan-outs up to their
   * `maxConcurrency`. Given, the run is refused before anything is created.
   */
  concurrency?: number;
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
  if (options.concurrency !== undefined) {
    throw new ValidationError(
      `--concurrency does not apply to Step Functions runs (stack "${stack.name}"): independent steps run in parallel and each fan-out runs up to its maxConcurrency. Drop --concurrency (or "concurrency" in the config file), or set maxConcurrency on the fan-out.`,
      { context: { stack: stack.name, concurrency: options.concurrency } },
    );
  }
  const prepared = await prepareRun(pipeline, options.params, stack);
  if (options.stepCache) {
    const known = new Set(
      pipeline.build(pipeline.parseParameters(options.params ?? {}) as never).nodes.map((n) => n.id),
    );
    const unknown = Object.keys(options.stepCache).filter((id) => !known.has(id));
    if (unknown.length > 0) {
      throw new ValidationError(
        `The config file sets cache for step${unknown.length === 1 ? '' : 's'} ${unknown.map((id) => `"${id}"`).join(', ')}, which pipeline "${pipeline.name}" does not have (steps: ${[...known].join(', ')}).`,
      );
    }
  }
  assertGraphIndependentOf(pipeline, prepared.params);
  const sfn = options.sfn ?? stepFunctionsClient(stack);
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
          ...(options.cache === undefined ? {} : { cache: options.cache }),
          ...(options.stepCache && Object.keys(options.stepCache).length > 0 ? { stepCache: options.stepCache } : {}),
        }),
      }),
    );
    return await followExecution(sfn, executionArn!, runId, prepared.graph, stack, options);
  } finally {
    if (!options.sfn) sfn.destroy();
  }
}

/** A Step Functions client for a stack whose orchestrator is `step-functions` (the caller destroys it). */
export function stepFunctionsClient(stack: Pick<StackRuntime, 'name' | 'components'>): SFNClient {
  const { orchestrator } = stack.components;
  if (orchestrator.type !== 'step-functions')
    throw new StackConfigError(`Stack "${stack.name}" does not use the step-functions orchestrator.`);
  return new SFNClient({
    region: resolveAwsRegion(stack.name, 'orchestrator', orchestrator),
    ...(orchestrator.endpoint ? { endpoint: orchestrator.endpoint } : {}),
  });
}

/** The status of an execution (`RUNNING`, `SUCCEEDED`, `FAILED`, `TIMED_OUT`, `ABORTED`), undefined if unknown. */
export async function executionStatus(sfn: SFNClient, executionArn: string): Promise<string | undefined> {
  try {
    return (await sfn.send(new DescribeExecutionCommand({ executionArn }))).status;
  } catch (error) {
    if ((error as { name?: string }).name === 'ExecutionDoesNotExist') return undefined;
    throw error;
  }
}

/** Stops an execution; one that has already ended is left as it is. */
export async function stopExecution(sfn: SFNClient, executionArn: string, cause: string): Promise<void> {
  const status = await executionStatus(sfn, executionArn);
  if (status !== 'RUNNING') return;
  await sfn.send(new StopExecutionCommand({ executionArn, error: 'Cancelled', cause }));
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
