import type { z } from 'zod';
import type { ArtifactStore } from '../artifacts/artifact-store.ts';
import { withRecentBlobs } from '../artifacts/recent-blobs.ts';
import type { PipelineGraph, StepNode } from '../dsl/builder.ts';
import { isPipelineDefinition, type PipelineDefinition } from '../dsl/pipeline.ts';
import type { RunModelVersion } from '../dsl/types.ts';
import {
  ConflictError,
  DuplicateTriggerError,
  NonRetriableError,
  NotFoundError,
  OutputValidationError,
  PipelineDefinitionError,
  RunFinishedError,
  StackConfigError,
  StepFailedError,
  StepTimeoutError,
  ValidationError,
} from '../errors.ts';
import { triggeredRunId } from '../events/trigger-input.ts';
import type { MetadataStore } from '../metadata/metadata-store.ts';
import { stepCacheOverrides } from '../metadata/step-snapshot.ts';
import {
  type ArtifactVersion,
  type ErrorInfo,
  type ExecutorIdentity,
  type PipelineRun,
  type StepRun,
  TERMINAL_RUN_STATUSES,
} from '../metadata/types.ts';
import { canonicalJson } from '../util/canonical-json.ts';
import { nowIso } from '../util/ids.ts';
import { formatZodIssues } from '../util/zod-format.ts';
import { collectFanOut, planFanOut } from './fan-out.ts';
import { currentExecutor, leaseUntil } from './liveness.ts';
import {
  createRun,
  linkModelOutputs,
  prepareRun,
  resolveStepInputs,
  runModelVersionOf,
  stepEnvironment,
  stepUsesCache,
} from './run-lifecycle.ts';
import { executeStep, type StepEnvironment, type StepExecutionResult, stepRecordId } from './step-executor.ts';
import {
  type CollectMapResponse,
  type FinishRunResponse,
  type PlanMapResponse,
  type RunStepResponse,
  type StartRunResponse,
  StepRunnerRequest,
} from './step-runner-protocol.ts';

/**
 * The step runner: what a compiled state machine's Task states invoke (through the Lambda handler
 * or the ECS entry point). Each request names a run and a step by id; everything else — parameters,
 * inputs, outputs, the model version — is read from and written to the stack's stores, with the
 * same run lifecycle and the same step executor as a local run.
 */

/** A request after {@link parseStepRunnerRequest} (defaults applied). */
export type ParsedStepRunnerRequest = z.output<typeof StepRunnerRequest>;
type Action = ParsedStepRunnerRequest['action'];
type RequestOf<A extends Action> = Extract<ParsedStepRunnerRequest, { action: A }>;

/** The response to each action (the protocol's response schemas). */
export interface StepRunnerResponses {
  'start-run': z.infer<typeof StartRunResponse>;
  'run-step': z.infer<typeof RunStepResponse>;
  'plan-map': z.infer<typeof PlanMapResponse>;
  'collect-map': z.infer<typeof CollectMapResponse>;
  'finish-run': z.infer<typeof FinishRunResponse>;
}

/** Where wide fan-outs (Distributed Map) find their item list: an S3 object the runner writes. */
export interface MapItemsLocation {
  bucket: string;
  /** Key prefix; items go to `<prefix>/runs/<runId>/<stepId>/items.json`. */
  prefix: string;
  /** Writes the object (an S3 PutObject on AWS). */
  write(key: string, body: string): Promise<void>;
}

export interface StepRunnerDeps {
  /** The pipelines of the deployed module; requests pick one by name. */
  pipelines: readonly PipelineDefinition[];
  /** The stack's metadata store, artifact store and materializers. */
  stores: StepEnvironment;
  /** Recorded on runs the runner creates. */
  stackName: string;
  /** Fan-outs with more items than this use a Distributed Map reading the items from S3. Default 40. */
  distributedMapThreshold?: number;
  /** Required for fan-outs wider than the threshold. */
  itemsLocation?: MapItemsLocation;
  /** Who runs the steps (recorded on runs and stage changes). Default: the OS user. */
  actor?: string;
}

/** What the caller knows about this invocation. */
export interface StepRunnerInvocation {
  /** What executes it (recorded on step runs). Default `process`. */
  executor?: ExecutorIdentity['kind'];
  /**
   * When the caller stops waiting (Lambda: now + remaining time): a step run's in-progress lease
   * ends there, so a retry after a lost invocation can take over. Default: now + the default lease.
   */
  deadlineMs?: number;
}

/** Inline Map states hold their items in the state; Step Functions caps a state at 256 KB, so stay far below. */
export const DEFAULT_DISTRIBUTED_MAP_THRESHOLD = 40;

/**
 * Validates a raw event against the protocol.
 *
 * @throws NonRetriableError naming each bad field (retrying cannot fix a malformed request).
 * @example
 * parseStepRunnerRequest({ action: 'start-run', pipeline: 'training' }); // { ..., parameters: {}, tags: [] }
 */
export function parseStepRunnerRequest(event: unknown): ParsedStepRunnerRequest {
  const parsed = StepRunnerRequest.safeParse(event);
  if (!parsed.success) {
    throw new NonRetriableError(`Invalid step runner request: ${formatZodIssues(parsed.error)}`, {
      cause: parsed.error,
      context: { issues: parsed.error.issues.map((i) => ({ path: i.path.map(String), message: i.message })) },
    });
  }
  return parsed.data;
}

/**
 * Handles one step runner request. Errors leave as {@link toStepFunctionsError} names them, so
 * the state machine's Retry and Catch fields can tell deterministic failures from retriable ones.
 *
 * @example
 * const { runId } = await handleStepRunnerRequest({ action: 'start-run', pipeline: 'training', parameters: {}, tags: [] }, deps);
 * await handleStepRunnerRequest({ action: 'run-step', pipeline: 'training', runId, stepId: 'train_forest' }, deps);
 */
export async function handleStepRunnerRequest<R extends ParsedStepRunnerRequest>(
  request: R,
  deps: StepRunnerDeps,
  invocation: StepRunnerInvocation = {},
): Promise<StepRunnerResponses[R['action']]> {
  const executor = currentExecutor(invocation.executor ?? 'process');
  const deadline = invocation.deadlineMs;
  const leased: StepRunnerDeps = {
    ...deps,
    stores: {
      ...deps.stores,
      lease: { executor, until: () => (deadline === undefined ? leaseUntil() : new Date(deadline).toISOString()) },
    },
  };
  try {
    return (await dispatch(request, leased)) as StepRunnerResponses[R['action']];
  } catch (error) {
    throw toStepFunctionsError(error);
  }
}

function dispatch(request: ParsedStepRunnerRequest, deps: StepRunnerDeps): Promise<unknown> {
  switch (request.action) {
    case 'start-run':
      return startRun(request, deps);
    case 'run-step':
      return runStep(request, deps);
    case 'plan-map':
      return planMap(request, deps);
    case 'collect-map':
      return collectMap(request, deps);
    case 'finish-run':
      return finishRun(request, deps);
  }
}

// ---------- Error names for Step Functions ----------

/**
 * Errors that fail the same way however often they are retried. Not ConflictError in general: the
 * metadata store raises it when it loses too many races, which a retry later may win.
 */
const DETERMINISTIC: ReadonlyArray<abstract new (...args: never[]) => Error> = [
  RunFinishedError,
  NonRetriableError,
  OutputValidationError,
  ValidationError,
  PipelineDefinitionError,
  StackConfigError,
  NotFoundError,
];
const DETERMINISTIC_CODES = new Set([
  'RUN_FINISHED',
  'NON_RETRIABLE',
  'OUTPUT_VALIDATION',
  'VALIDATION',
  'PIPELINE_DEFINITION',
  'STACK_CONFIG',
  'NOT_FOUND',
]);

function causeChain(error: unknown): unknown[] {
  const chain: unknown[] = [];
  for (let e = error; e !== undefined && e !== null && chain.length < 20; e = (e as { cause?: unknown }).cause) {
    chain.push(e);
    if (typeof e !== 'object') break;
  }
  return chain;
}

function isDeterministic(error: unknown): boolean {
  // Codes as well as classes: a second copy of Stackline in a bundle would defeat `instanceof`.
  return (
    DETERMINISTIC.some((type) => error instanceof type) ||
    (error instanceof Error && DETERMINISTIC_CODES.has(String((error as { code?: unknown }).code)))
  );
}

/**
 * The error to hand to the Lambda runtime or print from the ECS task: its `name` becomes the
 * `errorType` that ASL Retry/Catch match on.
 *
 * - `NonRetriableError`: a deterministic failure anywhere in the cause chain (a NonRetriableError a
 *   step threw, invalid outputs, parameters, definition or request, a missing run or artifact, a
 *   run that has already finished). The compiled Retry list starts with
 *   `{ ErrorEquals: ['NonRetriableError'], MaxAttempts: 0 }`.
 * - `StepTimeoutError`: a step exceeded its `timeoutMs`.
 * - `StepFailedError`: any other failure of the step's own code (the message carries the step's error).
 * - anything else (network, throttling) keeps its own name and is retried by the catch-all retrier.
 */
export function toStepFunctionsError(error: unknown): Error {
  const chain = causeChain(error);
  const top = error instanceof Error ? error : new Error(String(error));
  if (chain.some(isDeterministic)) {
    return top instanceof NonRetriableError ? top : new NonRetriableError(top.message, { cause: error });
  }
  if (chain.some((e) => e instanceof StepTimeoutError || (e as { code?: unknown })?.code === 'STEP_TIMEOUT')) {
    return top instanceof StepTimeoutError ? top : new StepTimeoutError(top.message, { cause: error });
  }
  if (chain.some((e) => e instanceof StepFailedError)) {
    return top instanceof StepFailedError ? top : new StepFailedError(top.message, { cause: error });
  }
  return top;
}

// ---------- start-run ----------

async function startRun(request: RequestOf<'start-run'>, deps: StepRunnerDeps) {
  const pipeline = pipelineNamed(deps, request.pipeline);
  const { metadata } = deps.stores;
  const trigger = request.input?.trigger;
  // An event-started run's id comes from the event id: a redelivered event finds its run.
  const runId = request.runId ?? (trigger === undefined ? undefined : triggeredRunId(request.pipeline, trigger));
  // Step Functions retries a task whose response was lost: the run may already be there.
  if (runId !== undefined) {
    const existing = await findRun(metadata, runId);
    if (existing) return { runId: sameOrDuplicate(existing, request).id };
  }
  const prepared = await prepareRun(pipeline, request.parameters, deps.stores);
  try {
    const { run } = await createRun(pipeline, prepared, deps.stores, {
      ...(runId === undefined ? {} : { runId }),
      stack: deps.stackName,
      tags: [...request.tags, ...(request.input?.tags ?? [])],
      ...(deps.actor === undefined ? {} : { actor: deps.actor }),
      settings: {
        orchestrator: 'step-functions',
        ...(request.executionArn === undefined ? {} : { executionArn: request.executionArn }),
        cache: request.input?.cache ?? pipeline.config.cache ?? true,
        ...(trigger === undefined ? {} : { trigger }),
      },
      ...(request.input?.stepCache ? { stepCache: request.input.stepCache } : {}),
    });
    return { runId: run.id };
  } catch (error) {
    // Two deliveries of the same start-run raced: the other one created the run.
    if (error instanceof ConflictError && runId !== undefined) {
      const existing = await findRun(metadata, runId);
      if (existing) return { runId: sameOrDuplicate(existing, request).id };
    }
    throw error;
  }
}

/**
 * The existing run a start-run found: its own (a retried task of the same execution, or the CLI's
 * run record), or — for a trigger — one another execution started for the same event.
 */
function sameOrDuplicate(run: PipelineRun, request: RequestOf<'start-run'>): PipelineRun {
  const trigger = request.input?.trigger;
  if (request.runId === undefined && trigger !== undefined && run.config.executionArn !== request.executionArn) {
    throw new DuplicateTriggerError(
      `${trigger.kind} trigger "${trigger.name}" delivered event "${trigger.id}" again; its run "${run.id}" exists (execution ${String(run.config.executionArn)}), so nothing new starts.`,
      { context: { runId: run.id, pipeline: request.pipeline, trigger } },
    );
  }
  return sameRunOf(run, request.pipeline);
}

async function findRun(metadata: MetadataStore, runId: string): Promise<PipelineRun | undefined> {
  try {
    return await metadata.runs.get(runId);
  } catch (error) {
    if (error instanceof NotFoundError) return undefined;
    throw error;
  }
}

function sameRunOf(run: PipelineRun, pipeline: string): PipelineRun {
  if (run.pipeline !== pipeline) {
    const message = `Run "${run.id}" belongs to pipeline "${run.pipeline}", not "${pipeline}".`;
    const context = { runId: run.id, pipeline };
    throw new NonRetriableError(message, { cause: new ConflictError(message, { context }), context });
  }
  return run;
}

// ---------- run-step, plan-map, collect-map ----------

/** What every step-level action needs: the live run, its graph as recorded, and the node. */
interface StepScope {
  run: PipelineRun;
  pipeline: PipelineDefinition;
  graph: PipelineGraph;
  node: StepNode;
  env: StepEnvironment;
  modelVersion: RunModelVersion | undefined;
}

async function openStepScope(
  request: { pipeline: string; runId: string; stepId: string },
  deps: StepRunnerDeps,
  options: { reuseRun?: boolean } = {},
): Promise<StepScope> {
  const pipeline = pipelineNamed(deps, request.pipeline);
  const run = sameRunOf(await runOf(deps.stores.metadata, request.runId, options.reuseRun === true), request.pipeline);
  if (TERMINAL_RUN_STATUSES.includes(run.status)) {
    const message = `Run "${run.id}" has already finished (${run.status}); step "${request.stepId}" was not run.`;
    const context = { runId: run.id, status: run.status, step: request.stepId };
    throw new NonRetriableError(message, { cause: new ConflictError(message, { context }), context });
  }
  // The graph as the run recorded it: its own (already validated) parameters, not today's defaults.
  const graph = graphOf(pipeline, run.parameters);
  const node = graph.byId.get(request.stepId);
  if (!node) {
    throw new NonRetriableError(
      `Pipeline "${pipeline.name}" has no step "${request.stepId}" (steps: ${graph.nodes.map((n) => n.id).join(', ')}). ` +
        'The state machine and the deployed code disagree: deploy them together.',
      { context: { runId: run.id, pipeline: pipeline.name, step: request.stepId } },
    );
  }
  const env = stepEnvironment({ ...deps.stores, artifacts: recentBlobsOf(deps.stores.artifacts) }, deps.actor);
  return { run, pipeline, graph, node, env, modelVersion: await runModelVersionOf(env, run) };
}

/**
 * What a warm container keeps between invocations. Each is keyed by the object it derives from
 * (a pipeline, a store), holds only records that never change once written, and is bounded.
 */
const WARM_CACHE_SIZE = 256;
const graphs = new WeakMap<PipelineDefinition, Map<string, PipelineGraph>>();
const runs = new WeakMap<MetadataStore, Map<string, PipelineRun>>();
const doneSteps = new WeakMap<MetadataStore, Map<string, StepExecutionResult>>();
const recentBlobStores = new WeakMap<ArtifactStore, ArtifactStore>();

function boundedSet<K, V>(map: Map<K, V>, key: K, value: V): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > WARM_CACHE_SIZE) map.delete(map.keys().next().value!);
}

function cacheOf<K extends object, V>(caches: WeakMap<K, Map<string, V>>, owner: K): Map<string, V> {
  let cache = caches.get(owner);
  if (!cache) {
    cache = new Map();
    caches.set(owner, cache);
  }
  return cache;
}

/** A pipeline's graph for a run's parameters, built once per container (65 ms at 1,000 steps). */
function graphOf(pipeline: PipelineDefinition, parameters: PipelineRun['parameters']): PipelineGraph {
  const cache = cacheOf(graphs, pipeline);
  const key = canonicalJson(parameters);
  let graph = cache.get(key);
  if (!graph) {
    graph = pipeline.build(parameters);
    boundedSet(cache, key, graph);
  }
  return graph;
}

/**
 * The run record. `reuse`: a copy read earlier by this container will do — for run-step, whose
 * writes (startStep, recordCachedStep) themselves refuse a run that has finished since, and which
 * needs of the run only what never changes (parameters, configuration, model version).
 */
async function runOf(metadata: MetadataStore, runId: string, reuse: boolean): Promise<PipelineRun> {
  const cache = cacheOf(runs, metadata);
  const known = reuse ? cache.get(runId) : undefined;
  if (known) return known;
  const run = await metadata.runs.get(runId);
  if (!TERMINAL_RUN_STATUSES.includes(run.status)) boundedSet(cache, runId, run);
  return run;
}

function recentBlobsOf(artifacts: ArtifactStore): ArtifactStore {
  let recent = recentBlobStores.get(artifacts);
  if (!recent) {
    recent = withRecentBlobs(artifacts);
    recentBlobStores.set(artifacts, recent);
  }
  return recent;
}

/** Remembers a completed or cached step and its outputs (neither changes again) for downstream steps. */
function rememberDone(scope: StepScope, stepId: string, result: StepExecutionResult): void {
  const status = result.stepRun.status;
  if (status !== 'completed' && status !== 'cached') return;
  boundedSet(cacheOf(doneSteps, scope.env.metadata), `${scope.run.id}\u0000${stepId}`, result);
}

/**
 * What the step executor gets. The run's per-step cache overrides are in its step snapshot, out of
 * the run record: read only when the run set some, once per container (see `stepCacheOverrides`).
 */
async function executionRequest(scope: StepScope, inputs: Record<string, ArtifactVersion>) {
  const { run, pipeline, node, modelVersion } = scope;
  const runCache = typeof run.config.cache === 'boolean' ? run.config.cache : (pipeline.config.cache ?? true);
  const stepCache = runCache ? await stepCacheOverrides(scope.env.artifacts, run) : undefined;
  return {
    run: { id: run.id, pipeline: pipeline.name, ...(modelVersion ? { modelVersion } : {}) },
    node,
    inputs,
    cache: stepUsesCache(node, runCache, stepCache),
  };
}

const DONE = ['completed', 'cached'] as const;

/** Output name → version, for step runs' recorded output ids, in one batch read. */
async function outputVersions(
  metadata: MetadataStore,
  stepRuns: readonly StepRun[],
): Promise<Array<Record<string, ArtifactVersion>>> {
  const ids = [...new Set(stepRuns.flatMap((s) => Object.values(s.outputs)))];
  const byId = new Map((await metadata.artifacts.getVersionsByIds(ids)).map((v) => [v.id, v]));
  return stepRuns.map((s) =>
    Object.fromEntries(
      Object.entries(s.outputs).map(([name, id]) => {
        const version = byId.get(id);
        if (!version)
          throw new NotFoundError(`Artifact version "${id}" (output "${name}" of step run "${s.id}") not found.`);
        return [name, version];
      }),
    ),
  );
}

/** The versions a (non-item) step reads: recorded external artifacts and upstream steps' newest outputs. */
async function resolveInputs(scope: StepScope): Promise<Record<string, ArtifactVersion>> {
  const { run, node, env } = scope;
  const externalIds = (run.config.externalArtifacts ?? {}) as Record<string, string>;
  const wantedExternals = Object.entries(externalIds).filter(([id]) =>
    Object.values(node.inputs).some((source) => source.stepId === id),
  );
  const externalVersions = new Map(
    (await env.metadata.artifacts.getVersionsByIds(wantedExternals.map(([, versionId]) => versionId))).map((v) => [
      v.id,
      v,
    ]),
  );
  const externals = new Map<string, ArtifactVersion>();
  for (const [id, versionId] of wantedExternals) {
    const version = externalVersions.get(versionId);
    if (!version) throw new NotFoundError(`External artifact version "${versionId}" of run "${run.id}" not found.`);
    externals.set(id, version);
  }
  const upstreamIds = [...new Set(Object.values(node.inputs).map((s) => s.stepId))].filter((id) => !externals.has(id));
  const outputsByStep = new Map<string, Record<string, ArtifactVersion>>();
  const remembered = cacheOf(doneSteps, env.metadata);
  for (const id of upstreamIds) {
    const known = remembered.get(`${run.id}\u0000${id}`);
    if (known) outputsByStep.set(id, known.outputs);
  }
  const unknown = upstreamIds.filter((id) => !outputsByStep.has(id));
  if (unknown.length > 0) {
    const latest = await env.metadata.runs.latestSteps(run.id, unknown);
    const upstream = unknown.flatMap((id) => {
      const step = latest.get(id);
      return step && (DONE as readonly string[]).includes(step.status) ? [step] : [];
    });
    const versions = await outputVersions(env.metadata, upstream);
    upstream.forEach((step, i) => {
      outputsByStep.set(step.stepId, versions[i]!);
      rememberDone(scope, step.stepId, { stepRun: step, outputs: versions[i]! });
    });
  }
  try {
    return resolveStepInputs(node, externals, (id) => outputsByStep.get(id));
  } catch (error) {
    // An upstream step that has not completed means the state machine ran this step out of order.
    throw new NonRetriableError(error instanceof Error ? error.message : String(error), {
      cause: error,
      context: { runId: run.id, step: node.id },
    });
  }
}

async function runStep(request: RequestOf<'run-step'>, deps: StepRunnerDeps) {
  const scope = await openStepScope(request, deps, { reuseRun: true });
  const { run, node, env } = scope;
  const mapIndex = request.mapIndex;
  if (mapIndex !== undefined && !node.map) {
    throw new NonRetriableError(`Step "${node.id}" is not a fan-out step: it takes no mapIndex.`, {
      context: { runId: run.id, step: node.id },
    });
  }
  if (mapIndex === undefined && node.map) {
    throw new NonRetriableError(
      `Step "${node.id}" is a fan-out step: run it with plan-map, run-step per mapIndex, then collect-map.`,
      { context: { runId: run.id, step: node.id } },
    );
  }
  const recordId = stepRecordId(node.id, mapIndex);

  let result: StepExecutionResult;
  if (mapIndex !== undefined) {
    const inputs = await fanOutInputs(scope);
    result = await executeStep(
      { ...(await executionRequest(scope, inputs)), mapItem: { index: mapIndex }, inProcessRetries: false },
      env,
    );
  } else {
    // A retried invocation whose first attempt completed (its response lost) is not run again:
    // the leased start finds the completed step run in the step's slot and returns it.
    const inputs = await resolveInputs(scope);
    result = await executeStep({ ...(await executionRequest(scope, inputs)), inProcessRetries: false }, env);
    rememberDone(scope, recordId, result);
    if (run.modelVersionId) await linkModelOutputs(env, node, result, run.modelVersionId);
  }
  return {
    runId: run.id,
    stepId: recordId,
    stepRunId: result.stepRun.id,
    status: result.stepRun.status as 'completed' | 'cached',
  };
}

/**
 * A fan-out item reads exactly what plan-map read: the inputs recorded on the parent step run.
 * Every item of a node would otherwise list the whole run (with its other items) to find them, so
 * they are remembered per process, keyed by store, run and node (recorded ids never change).
 */
const fanOutInputsCache = new WeakMap<MetadataStore, Map<string, Promise<Record<string, ArtifactVersion>>>>();
const FAN_OUT_INPUTS_CACHE_SIZE = 64;

function fanOutInputs(scope: StepScope): Promise<Record<string, ArtifactVersion>> {
  const { env, run, node } = scope;
  const cache = fanOutInputsCache.get(env.metadata) ?? new Map<string, Promise<Record<string, ArtifactVersion>>>();
  fanOutInputsCache.set(env.metadata, cache);
  const key = `${run.id}\u0000${node.id}`;
  let inputs = cache.get(key);
  if (!inputs) {
    inputs = (async () => {
      const latest = (await env.metadata.runs.latestSteps(run.id, [node.id])).get(node.id);
      const parent = latest?.status === 'running' ? latest : undefined;
      if (!parent) {
        throw new NonRetriableError(
          `Fan-out step "${node.id}" of run "${run.id}" has not been planned: call plan-map before running its items.`,
          { context: { runId: run.id, step: node.id } },
        );
      }
      const ids = Object.entries(parent.inputs);
      const byId = new Map(
        (await env.metadata.artifacts.getVersionsByIds(ids.map(([, id]) => id))).map((v) => [v.id, v]),
      );
      return Object.fromEntries(ids.map(([name, id]) => [name, byId.get(id)!]));
    })();
    inputs.catch(() => cache.delete(key));
    cache.set(key, inputs);
    if (cache.size > FAN_OUT_INPUTS_CACHE_SIZE) cache.delete(cache.keys().next().value!);
  }
  return inputs;
}

function requireFanOut(scope: StepScope): void {
  if (!scope.node.map) {
    throw new NonRetriableError(`Step "${scope.node.id}" is not a fan-out step: run it with run-step.`, {
      context: { runId: scope.run.id, step: scope.node.id },
    });
  }
}

async function planMap(request: RequestOf<'plan-map'>, deps: StepRunnerDeps) {
  const scope = await openStepScope(request, deps);
  requireFanOut(scope);
  const { run, node, env } = scope;
  let count: number;
  // A retried plan-map reuses the parent it recorded, so no parent is left running.
  const latest = (await env.metadata.runs.latestSteps(run.id, [node.id])).get(node.id);
  const existing = latest && ['running', ...DONE].includes(latest.status) ? latest : undefined;
  if (existing && existing.status !== 'running') return { count: 0, items: [] };
  if (existing) {
    count = Number(existing.metadata.items ?? 0);
  } else {
    const plan = await planFanOut(await executionRequest(scope, await resolveInputs(scope)), env);
    // Cached: no item runs; collect-map finds the cached parent.
    if (plan.cached) return { count: 0, items: [] };
    count = plan.count;
  }
  const indexes = Array.from({ length: count }, (_, i) => i);
  if (count <= (deps.distributedMapThreshold ?? DEFAULT_DISTRIBUTED_MAP_THRESHOLD)) return { count, items: indexes };
  if (!deps.itemsLocation) {
    throw new StackConfigError(
      `Fan-out step "${node.id}" has ${count} items, more than an inline Map takes; the step runner has no S3 location for the item list (STACKLINE_ARTIFACT_BUCKET).`,
      { context: { runId: run.id, step: node.id, count } },
    );
  }
  const { bucket, prefix, write } = deps.itemsLocation;
  const key = [prefix.replace(/^\/+|\/+$/g, ''), 'runs', run.id, node.id, 'items.json'].filter(Boolean).join('/');
  await write(key, JSON.stringify(indexes));
  return { count, itemsBucket: bucket, itemsKey: key };
}

async function collectMap(request: RequestOf<'collect-map'>, deps: StepRunnerDeps) {
  const scope = await openStepScope(request, deps);
  requireFanOut(scope);
  const { run, node, env } = scope;
  // Keyed reads only: the parent, then its items by step id; never the run's whole step list.
  const latest = (await env.metadata.runs.latestSteps(run.id, [node.id])).get(node.id);
  const parent = latest && ['running', ...DONE].includes(latest.status) ? latest : undefined;
  if (!parent) {
    throw new NonRetriableError(
      `Fan-out step "${node.id}" of run "${run.id}" has not been planned: call plan-map before collect-map.`,
      { context: { runId: run.id, step: node.id } },
    );
  }
  let result: StepExecutionResult;
  if (parent.status !== 'running') {
    // Cached by plan-map, or a retried collect-map whose first attempt completed it.
    result = { stepRun: parent, outputs: (await outputVersions(env.metadata, [parent]))[0]! };
  } else {
    const count = Number(parent.metadata.items ?? 0);
    const itemIds = Array.from({ length: count }, (_, i) => stepRecordId(node.id, i));
    const latestItems = await env.metadata.runs.latestSteps(run.id, itemIds);
    const items = itemIds.map((id) => {
      const step = latestItems.get(id);
      return step && (DONE as readonly string[]).includes(step.status) ? step : undefined;
    });
    const missing = Array.from({ length: count }, (_, i) => i).filter((i) => !items[i]);
    if (missing.length > 0) {
      const shown = missing.slice(0, 20).join(', ');
      throw new NonRetriableError(
        `Fan-out step "${node.id}" of run "${run.id}": ${missing.length} of ${count} items have not completed (${shown}${missing.length > 20 ? ', …' : ''}).`,
        { context: { runId: run.id, step: node.id, missing: missing.slice(0, 100), count } },
      );
    }
    const itemOutputs = await outputVersions(env.metadata, items as StepRun[]);
    result = await collectFanOut(await executionRequest(scope, {}), parent, itemOutputs, env);
  }
  rememberDone(scope, node.id, result);
  if (run.modelVersionId) await linkModelOutputs(env, node, result, run.modelVersionId);
  return { stepRunId: result.stepRun.id, status: result.stepRun.status as 'completed' | 'cached' };
}

// ---------- finish-run ----------

async function finishRun(request: RequestOf<'finish-run'>, deps: StepRunnerDeps) {
  const { metadata } = deps.stores;
  const run = sameRunOf(await metadata.runs.get(request.runId), request.pipeline);
  if (TERMINAL_RUN_STATUSES.includes(run.status)) return { runId: run.id, status: run.status };
  const endedAt = nowIso();
  if (request.status === 'completed') {
    try {
      return { runId: run.id, status: (await metadata.runs.finish(run.id, 'completed', endedAt)).status };
    } catch (error) {
      if (!(error instanceof ConflictError)) throw error;
      // Finished concurrently (a duplicate delivery): report what it is now.
      return { runId: run.id, status: (await metadata.runs.get(run.id)).status };
    }
  }
  // Marks the run and every step run still `running` (a fan-out's parent, items cut short) failed.
  await metadata.runs.abandon([run.id], 'failed', endedAt, errorFromCatch(request.error));
  return { runId: run.id, status: (await metadata.runs.get(run.id)).status };
}

/**
 * The run's error from a Catch's `{ Error, Cause }`. For Lambda tasks, `Cause` is the JSON the
 * Lambda runtime wrote (`{ errorType, errorMessage, trace }`); for others, plain text.
 */
export function errorFromCatch(
  error: { Error?: string | undefined; Cause?: string | undefined } | undefined,
): ErrorInfo {
  const type = error?.Error || 'States.Runtime';
  const cause = error?.Cause ?? '';
  try {
    const parsed = JSON.parse(cause) as { errorMessage?: unknown };
    if (parsed && typeof parsed.errorMessage === 'string') return { type, message: parsed.errorMessage };
  } catch {
    // not JSON: the cause is the message
  }
  return { type, message: cause || `The state machine failed with ${type}.` };
}

/**
 * The pipelines a module exports (what a bundle's entry hands the runner).
 * @throws PipelineDefinitionError when it exports none.
 */
export function pipelinesOfModule(module: Record<string, unknown>): PipelineDefinition[] {
  const pipelines = Object.values(module).filter(isPipelineDefinition);
  if (pipelines.length === 0) {
    throw new PipelineDefinitionError(
      `The pipeline module exports no pipeline (exports: ${Object.keys(module).join(', ') || 'none'}).`,
    );
  }
  return [...new Map(pipelines.map((p) => [p.name, p])).values()];
}

function pipelineNamed(deps: StepRunnerDeps, name: string): PipelineDefinition {
  const pipeline = deps.pipelines.find((p) => p.name === name);
  if (!pipeline) {
    throw new NonRetriableError(
      `The step runner has no pipeline "${name}" (deployed: ${deps.pipelines.map((p) => p.name).join(', ') || 'none'}).`,
      { context: { pipeline: name } },
    );
  }
  return pipeline;
}
