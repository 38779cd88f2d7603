import type { PipelineGraph, StepNode } from '../dsl/builder.ts';
import type { PipelineDefinition } from '../dsl/pipeline.ts';
import type { RunModelVersion } from '../dsl/types.ts';
import { RunCancelledError, StacklineError, StepFailedError } from '../errors.ts';
import type { ArtifactVersion, ErrorInfo, Metadata, PipelineRun, StepRun, Tag } from '../metadata/types.ts';
import { currentActor, prepareRunModelVersion, toLoadedModelVersion } from '../models/model-context.ts';
import { newId, nowIso } from '../util/ids.ts';
import { executeStep, type StepEnvironment, type StepEvent, type StepExecutionResult } from './step-executor.ts';

export type RunEvent =
  | StepEvent
  | { type: 'run-started'; run: PipelineRun; graph: PipelineGraph }
  | { type: 'run-finished'; run: PipelineRun };

export interface RunOptions {
  /** Raw parameters (validated against the pipeline's schema). */
  params?: unknown;
  /** `false` disables the cache for every step of this run. */
  cache?: boolean;
  /** Per-step cache overrides by step id (from a config file). */
  stepCache?: Record<string, boolean>;
  /** How many independent steps run at once. Default 4. */
  concurrency?: number;
  /** Stop starting steps after the first failure (default true). */
  failFast?: boolean;
  tags?: Tag[];
  /** Name of the stack the run is on (recorded on the run). */
  stackName?: string;
  signal?: AbortSignal;
  onEvent?: (event: RunEvent) => void;
  /** Who started the run (defaults to the OS user). */
  actor?: string;
  /** Called once the run record exists (so callers can clean it up on interruption). */
  onRunCreated?: (runId: string) => void;
}

export interface RunResult {
  run: PipelineRun;
  steps: Array<{ node: StepNode; result?: StepExecutionResult; stepRun?: StepRun }>;
}

function errorInfo(error: unknown): ErrorInfo {
  return error instanceof Error
    ? { type: error.name, message: error.message }
    : { type: 'Error', message: String(error) };
}

/**
 * Runs a pipeline in this process: validates parameters and builds the DAG before recording
 * anything, then runs each step as soon as its upstream steps are done, up to `concurrency` at once.
 * The run always ends `completed`, `failed` or `cancelled` — never left `running`.
 */
export async function runPipelineLocally(
  pipeline: PipelineDefinition,
  env: StepEnvironment,
  options: RunOptions = {},
): Promise<RunResult> {
  const params = pipeline.parseParameters(options.params ?? {});
  const graph = pipeline.build(params);
  const concurrency = Math.max(1, options.concurrency ?? 4);
  const cacheEnabled = options.cache ?? pipeline.config.cache ?? true;
  const tags = [...new Set([...(pipeline.config.tags ?? []), ...(options.tags ?? [])])];
  // Resolved before the run is recorded: a missing artifact is a usage error, not a failed run.
  const externals = new Map<string, ArtifactVersion>();
  for (const external of graph.externals) {
    externals.set(external.id, await env.metadata.artifacts.getVersion(external.name, external.version));
  }

  const run = await env.metadata.runs.create({
    id: newId('run'),
    pipeline: pipeline.name,
    status: 'running',
    stack: options.stackName ?? 'default',
    parameters: params as Metadata,
    config: {
      cache: cacheEnabled,
      concurrency,
      failFast: options.failFast ?? true,
      externalArtifacts: Object.fromEntries([...externals].map(([id, v]) => [id, v.id])),
      steps: Object.fromEntries(
        graph.nodes.map((n) => [
          n.id,
          { step: n.spec.name, codeHash: n.spec.codeHash, upstream: n.upstream, options: n.spec.options as Metadata },
        ]),
      ),
    },
    tags,
    metadata: {},
    createdBy: options.actor ?? currentActor(),
    startedAt: nowIso(),
  });
  options.onRunCreated?.(run.id);
  options.onEvent?.({ type: 'run-started', run, graph });

  const state = new Map<string, { result?: StepExecutionResult; stepRun?: StepRun }>();
  let firstError: unknown;
  let cancelled = false;
  try {
    let modelVersion: RunModelVersion | undefined;
    if (pipeline.config.model) {
      modelVersion = await prepareRunModelVersion(env, pipeline.config.model, run.id, tags);
      for (const version of externals.values())
        await env.metadata.models.linkArtifact(modelVersion.id, 'data', version);
    }
    const stepEnv: StepEnvironment = {
      ...env,
      actor: env.actor ?? options.actor ?? currentActor(),
      resolveModel:
        env.resolveModel ??
        (async (node) => {
          const ref = node.spec.options.model!;
          const version = await env.metadata.models.getVersion(ref.model, ref.version ?? 'latest');
          return toLoadedModelVersion(env, version);
        }),
      onEvent: (event) => {
        if (event.type === 'step-finished')
          state.set(event.stepId, { ...state.get(event.stepId), stepRun: event.stepRun });
        options.onEvent?.(event);
      },
    };

    await schedule(graph, concurrency, options, async (node) => {
      const inputs: Record<string, ArtifactVersion> = {};
      for (const [name, source] of Object.entries(node.inputs)) {
        inputs[name] = externals.get(source.stepId) ?? state.get(source.stepId)!.result!.outputs[source.output]!;
      }
      const cache = cacheEnabled && (options.stepCache?.[node.id] ?? node.cache ?? node.spec.options.cache ?? true);
      const result = await executeStep(
        {
          run: { id: run.id, pipeline: pipeline.name, ...(modelVersion ? { modelVersion } : {}) },
          node,
          inputs,
          cache,
          ...(options.signal ? { signal: options.signal } : {}),
        },
        stepEnv,
      );
      if (modelVersion) await linkModelOutputs(env, node, result, modelVersion.id);
      state.set(node.id, { result, stepRun: result.stepRun });
    });
  } catch (error) {
    firstError = error;
    cancelled = error instanceof RunCancelledError || options.signal?.aborted === true;
  }

  let finished: PipelineRun;
  if (firstError === undefined) {
    finished = await env.metadata.runs.finish(run.id, 'completed', nowIso());
  } else {
    finished = await env.metadata.runs.finish(
      run.id,
      cancelled ? 'cancelled' : 'failed',
      nowIso(),
      errorInfo(firstError),
    );
  }
  options.onEvent?.({ type: 'run-finished', run: finished });
  return { run: finished, steps: graph.nodes.map((node) => ({ node, ...state.get(node.id) })) };
}

async function linkModelOutputs(
  env: StepEnvironment,
  node: StepNode,
  result: StepExecutionResult,
  modelVersionId: string,
) {
  for (const [output, declaration] of Object.entries(node.spec.outputs)) {
    const artifact = result.outputs[output];
    if (declaration.modelRole && artifact)
      await env.metadata.models.linkArtifact(modelVersionId, declaration.modelRole, artifact);
  }
}

/**
 * Starts every step whose upstream steps are done, keeping at most `concurrency` in flight.
 * On the first failure (fail-fast) it starts nothing more, waits for the steps in flight, then
 * rethrows that failure.
 */
async function schedule(
  graph: PipelineGraph,
  concurrency: number,
  options: RunOptions,
  runStep: (node: StepNode) => Promise<void>,
): Promise<void> {
  const failFast = options.failFast ?? true;
  const waiting = new Map(graph.nodes.map((n) => [n.id, n.upstream.length]));
  const ready: StepNode[] = graph.nodes.filter((n) => n.upstream.length === 0);
  const blocked = new Set<string>();
  let inFlight = 0;
  let failure: unknown;

  await new Promise<void>((resolve) => {
    const pump = () => {
      while (
        inFlight < concurrency &&
        ready.length > 0 &&
        !(failFast && failure !== undefined) &&
        !options.signal?.aborted
      ) {
        const node = ready.shift()!;
        inFlight++;
        runStep(node).then(
          () => {
            for (const next of graph.downstream.get(node.id)!) {
              const left = waiting.get(next)! - 1;
              waiting.set(next, left);
              if (left === 0 && !blocked.has(next)) ready.push(graph.byId.get(next)!);
            }
            done();
          },
          (error: unknown) => {
            failure ??= error;
            if (error instanceof RunCancelledError) failure = error;
            markBlocked(graph, node.id, blocked);
            done();
          },
        );
      }
      if (inFlight === 0) resolve();
    };
    const done = () => {
      inFlight--;
      pump();
    };
    pump();
  });

  if (options.signal?.aborted && !(failure instanceof RunCancelledError)) {
    failure = new RunCancelledError('The run was cancelled before all steps ran.', { cause: failure });
  }
  if (failure !== undefined) throw failure;
}

function markBlocked(graph: PipelineGraph, id: string, blocked: Set<string>) {
  for (const next of graph.downstream.get(id)!) {
    if (!blocked.has(next)) {
      blocked.add(next);
      markBlocked(graph, next, blocked);
    }
  }
}

/** Distinguishes a step's failure from a problem in Stackline itself, for exit codes and messages. */
export function isStepFailure(error: unknown): error is StepFailedError {
  return error instanceof StepFailedError || (error instanceof StacklineError && error.code === 'STEP_FAILED');
}
