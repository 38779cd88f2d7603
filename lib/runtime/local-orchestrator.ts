import { withRecentBlobs } from '../artifacts/recent-blobs.ts';
import type { PipelineGraph, StepNode } from '../dsl/builder.ts';
import type { PipelineDefinition } from '../dsl/pipeline.ts';
import { ConflictError, errorInfo, RunCancelledError } from '../errors.ts';
import type { ArtifactVersion, PipelineRun, StepRun, Tag } from '../metadata/types.ts';
import { eventLoopTurner } from '../util/event-loop.ts';
import { faultPoint } from '../util/fault-points.ts';
import { nowIso } from '../util/ids.ts';
import { collectFanOut, planFanOut } from './fan-out.ts';
import { currentExecutor, leaseUntil, startHeartbeat } from './liveness.ts';
import {
  createRun,
  linkModelOutputs,
  prepareRun,
  resolveStepInputs,
  stepEnvironment,
  stepUsesCache,
} from './run-lifecycle.ts';
import {
  executeStep,
  type StepEnvironment,
  type StepEvent,
  type StepExecutionRequest,
  type StepExecutionResult,
} from './step-executor.ts';

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
  /**
   * `false`: the result lists only the steps (`{ node }`), and a step's outputs are dropped once
   * every step reading them has started, so the run holds O(frontier) results, not O(steps). For
   * callers that read the step runs back from the store (`stackline run --json`). Default true.
   */
  keepResults?: boolean;
}

export interface RunResult {
  run: PipelineRun;
  steps: Array<{ node: StepNode; result?: StepExecutionResult; stepRun?: StepRun }>;
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
  const prepared = await prepareRun(pipeline, options.params, env);
  const { graph, externals } = prepared;
  const concurrency = Math.max(1, options.concurrency ?? 4);
  const cacheEnabled = options.cache ?? pipeline.config.cache ?? true;
  const failFast = options.failFast ?? true;
  const executor = currentExecutor();
  const { run, modelVersion } = await createRun(pipeline, prepared, env, {
    stack: options.stackName ?? 'default',
    ...(options.tags ? { tags: options.tags } : {}),
    ...(options.actor ? { actor: options.actor } : {}),
    settings: {
      orchestrator: 'local',
      cache: cacheEnabled,
      concurrency,
      failFast,
    },
    ...(options.stepCache ? { stepCache: options.stepCache } : {}),
    executor,
    leaseExpiresAt: leaseUntil(),
  });
  faultPoint('run:created');
  // What the run's closures keep is its id, not its record.
  const runId = run.id;
  options.onRunCreated?.(runId);
  options.onEvent?.({ type: 'run-started', run, graph });

  const keepResults = options.keepResults ?? true;
  const state = new Map<string, { result?: StepExecutionResult; stepRun?: StepRun }>();
  // Without keepResults: how many downstream steps have yet to read each step's outputs.
  const readers = new Map(graph.nodes.map((n) => [n.id, graph.downstream.get(n.id)?.length ?? 0]));
  // Step runs in flight, whose leases the heartbeat renews with the run's.
  const running = new Set<string>();
  // Ended elsewhere (`runs cancel` from another host, a reaper): stop working on it.
  const endedElsewhere = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, endedElsewhere.signal]) : endedElsewhere.signal;
  const heartbeat = startHeartbeat(env.metadata, runId, () => [...running], {
    onRunEnded: () => endedElsewhere.abort(new RunCancelledError(`Run "${runId}" was ended elsewhere.`)),
  });
  const stepEnv: StepEnvironment = {
    ...stepEnvironment(env, options.actor),
    // Remote stores: a step reads its upstream step's small outputs from memory, not with a request.
    ...(env.artifacts.kind === 'local' ? {} : { artifacts: withRecentBlobs(env.artifacts) }),
    lease: { executor, until: () => leaseUntil() },
    onEvent: (event) => {
      if (event.type === 'step-started') running.add(event.stepRunId);
      if (event.type === 'step-finished') {
        running.delete(event.stepRun.id);
        if (keepResults) state.set(event.stepId, { stepRun: event.stepRun, result: state.get(event.stepId)?.result });
      }
      options.onEvent?.(event);
    },
  };
  let firstError: unknown;
  try {
    await schedule(graph, concurrency, { ...options, signal }, async (node) => {
      const request: StepExecutionRequest = {
        run: { id: runId, pipeline: pipeline.name, ...(modelVersion ? { modelVersion } : {}) },
        node,
        inputs: resolveStepInputs(node, externals, (id) => state.get(id)?.result?.outputs),
        cache: stepUsesCache(node, cacheEnabled, options.stepCache),
        signal,
      };
      if (!keepResults) {
        for (const upstream of node.upstream) {
          const left = readers.get(upstream)! - 1;
          readers.set(upstream, left);
          if (left === 0) state.delete(upstream);
        }
      }
      const result = node.map ? await runFanOutLocally(request, stepEnv, options) : await executeStep(request, stepEnv);
      if (modelVersion) await linkModelOutputs(env, node, result, modelVersion.id);
      if (keepResults) state.set(node.id, { result, stepRun: result.stepRun });
      else if (readers.get(node.id)! > 0)
        state.set(node.id, { result: { stepRun: result.stepRun, outputs: result.outputs } });
    });
  } catch (error) {
    firstError = error;
  }

  heartbeat.stop();
  const cancelled = firstError instanceof RunCancelledError || signal.aborted;
  faultPoint('run:finishing');
  const finished = await (firstError === undefined
    ? env.metadata.runs.finish(runId, 'completed', nowIso())
    : env.metadata.runs.finish(runId, cancelled ? 'cancelled' : 'failed', nowIso(), errorInfo(firstError))
  ).catch(async (error: unknown) => {
    // Ended meanwhile by `runs cancel` or a reaper: what it recorded stands.
    if (error instanceof ConflictError) return env.metadata.runs.get(runId);
    throw error;
  });
  options.onEvent?.({ type: 'run-finished', run: finished });
  return {
    run: finished,
    steps: graph.nodes.map((node) => (keepResults ? { node, ...state.get(node.id) } : { node })),
  };
}

/** A fan-out step locally: plan, run the items with bounded concurrency (fail-fast), collect. */
async function runFanOutLocally(
  request: StepExecutionRequest,
  env: StepEnvironment,
  options: RunOptions,
): Promise<StepExecutionResult> {
  const plan = await planFanOut(request, env);
  if (plan.cached) return plan.cached;
  const itemOutputs: Array<Record<string, ArtifactVersion>> = new Array(plan.count);
  const limit = Math.max(1, request.node.map?.maxConcurrency ?? options.concurrency ?? 4);
  let next = 0;
  let failure: unknown;
  const turner = eventLoopTurner();
  const worker = async () => {
    while (failure === undefined && next < plan.count && !request.signal?.aborted) {
      if (turner.due()) {
        await turner.turn();
        continue; // what the turn ran may have cancelled the run
      }
      const index = next++;
      try {
        const item = await executeStep({ mapItem: { index, value: plan.items?.[index] }, ...request }, env);
        itemOutputs[index] = item.outputs;
      } catch (error) {
        failure ??= error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, plan.count) }, worker));
  if (failure !== undefined || request.signal?.aborted) {
    const cancelled = failure instanceof RunCancelledError || request.signal?.aborted === true;
    const ended = await env.metadata.runs.endStep(plan.parent.id, cancelled ? 'cancelled' : 'failed', nowIso(), {
      durationMs: Date.now() - Date.parse(plan.parent.startedAt),
      attempts: 1,
      error: errorInfo(failure ?? new RunCancelledError('cancelled')),
    });
    env.onEvent?.({ type: 'step-finished', runId: request.run.id, stepId: request.node.id, stepRun: ended });
    throw failure ?? new RunCancelledError(`Fan-out step "${request.node.id}" was cancelled.`);
  }
  return collectFanOut(request, plan.parent, itemOutputs, env);
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
    // Steps that never wait would chain in promise callbacks for the whole run (see event-loop.ts).
    const turner = eventLoopTurner();
    const done = () => {
      inFlight--;
      if (!turner.due()) return pump();
      void turner.turn().then(pump);
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
