import {
  CreateStateMachineCommand,
  DescribeExecutionCommand,
  type ExecutionStatus,
  ListStateMachinesCommand,
  SFNClient,
  StartExecutionCommand,
  StateMachineAlreadyExists,
  StopExecutionCommand,
  UpdateStateMachineCommand,
} from '@aws-sdk/client-sfn';
import { compileToAsl } from '../compiler/compile-to-asl.ts';
import type { PipelineDefinition } from '../dsl/pipeline.ts';
import { StackConfigError, ValidationError } from '../errors.ts';
import type { PipelineRun, StepRun, Tag } from '../metadata/types.ts';
import type { RunEvent, RunResult } from '../runtime/local-orchestrator.ts';
import { prepareRun } from '../runtime/run-lifecycle.ts';
import { resolveAwsRegion } from '../stacks/aws-clients.ts';
import type { StackRuntime } from '../stacks/project.ts';
import { newId, nowIso } from '../util/ids.ts';

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
 * Runs a pipeline on a stack whose orchestrator is `step-functions`: validates parameters and the
 * DAG here (so bad input fails before anything is created), compiles the pipeline, creates or
 * updates its state machine, starts an execution named after the run id, and reports each step's
 * progress from the metadata store — where the step runner records it — until the execution ends.
 * The step runner Lambda (the bundle of the pipeline module) must already be deployed under the
 * stack's `stepRunner.functionName`.
 */
export async function runOnStepFunctions(
  pipeline: PipelineDefinition,
  stack: StackRuntime,
  options: StepFunctionsRunOptions = {},
): Promise<RunResult> {
  const { orchestrator, stepRunner } = stack.components;
  if (orchestrator.type !== 'step-functions')
    throw new StackConfigError(`Stack "${stack.name}" does not use the step-functions orchestrator.`);
  if (stepRunner.type !== 'lambda' || !stepRunner.functionName) {
    throw new StackConfigError(
      `Stack "${stack.name}" needs a step runner Lambda: register it with --step-runner lambda --function-name NAME (deploy the bundle from \`stackline bundle\`).`,
    );
  }
  if (!orchestrator.roleArn) {
    throw new StackConfigError(
      `Stack "${stack.name}" needs the IAM role Step Functions runs as: register it with --role-arn ARN.`,
    );
  }
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
  const compiled = compileToAsl(pipeline, { lambdaFunctionArn: stepRunner.functionName, params: prepared.params });
  const sfn = options.sfn ?? stepFunctionsClient(stack);
  try {
    const stateMachineArn = await upsertStateMachine(
      sfn,
      `${orchestrator.stateMachinePrefix ?? 'stackline-'}${pipeline.name}`,
      compiled.json,
      orchestrator.roleArn,
    );
    const runId = newId('run');
    const { executionArn } = await sfn.send(
      new StartExecutionCommand({
        stateMachineArn,
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

async function upsertStateMachine(sfn: SFNClient, name: string, definition: string, roleArn: string): Promise<string> {
  try {
    const created = await sfn.send(new CreateStateMachineCommand({ name, definition, roleArn, type: 'STANDARD' }));
    return created.stateMachineArn!;
  } catch (error) {
    if (!(error instanceof StateMachineAlreadyExists)) throw error;
  }
  let nextToken: string | undefined;
  do {
    const page = await sfn.send(new ListStateMachinesCommand({ ...(nextToken ? { nextToken } : {}) }));
    const found = page.stateMachines?.find((m) => m.name === name);
    if (found?.stateMachineArn) {
      await sfn.send(new UpdateStateMachineCommand({ stateMachineArn: found.stateMachineArn, definition, roleArn }));
      return found.stateMachineArn;
    }
    nextToken = page.nextToken;
  } while (nextToken);
  throw new StackConfigError(`State machine "${name}" exists but could not be found to update it.`);
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
    throw new StackConfigError(
      `Execution ${executionArn} ended ${status} before the step runner recorded run ${runId}: check the step runner Lambda's logs and configuration.`,
    );
  }
  if (run.status === 'running') {
    // The execution was stopped or timed out without reaching its own failure handler.
    const ended = status === 'ABORTED' || stopped ? 'cancelled' : 'failed';
    await stack.metadata.runs.abandon([runId], ended, nowIso(), {
      type: 'ExecutionEnded',
      message: `Step Functions execution ended ${status}`,
    });
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
