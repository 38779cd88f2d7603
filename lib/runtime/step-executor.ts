import { mkdirSync, mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ArtifactStore } from '../artifacts/artifact-store.ts';
import { loadArtifactVersion } from '../artifacts/load-artifact.ts';
import type { MaterializerRegistry } from '../artifacts/materializers.ts';
import type { StepNode } from '../dsl/builder.ts';
import type { LoadedModelVersion, ModelControl, RetryPolicy, RunModelVersion, StepContext } from '../dsl/types.ts';
import {
  errorInfo,
  NonRetriableError,
  OutputValidationError,
  RunCancelledError,
  StacklineError,
  StepAlreadyDoneError,
  StepFailedError,
  StepTimeoutError,
} from '../errors.ts';
import type { MetadataStore } from '../metadata/metadata-store.ts';
import type {
  ArtifactVersion,
  ErrorInfo,
  ExecutorIdentity,
  Metadata,
  StepRun,
  StepRunOutputDraft,
} from '../metadata/types.ts';
import { createModelControl } from '../models/model-context.ts';
import { canonicalJson, sha256Hex } from '../util/canonical-json.ts';
import { faultPoint } from '../util/fault-points.ts';
import { newId, nowIso } from '../util/ids.ts';
import { mergeRecords } from '../util/merge-records.ts';
import { formatZodIssues } from '../util/zod-format.ts';
import { AttemptContext } from './attempt-context.ts';
import { type IsolatedAttempt, isolatedScratchDir, startIsolatedAttempt } from './attempt-worker.ts';
import { computeCacheKey } from './cache-key.ts';
import { cacheKeyRecord } from './explain.ts';
import { asUserCode } from './heap-growth.ts';
import { recordableLogs } from './step-logs.ts';

/** Everything a step execution needs from the stack it runs on. */
export interface StepEnvironment {
  metadata: MetadataStore;
  artifacts: ArtifactStore;
  materializers: MaterializerRegistry;
  /** Resolves a step's `model` option (model control plane); absent when none is configured. */
  resolveModel?: (node: StepNode) => Promise<LoadedModelVersion | undefined>;
  /** Receives progress events (CLI progress, logs). */
  onEvent?: (event: StepEvent) => void;
  /** Who runs the step (recorded on the runs it creates). Default: the OS user. */
  actor?: string;
  /**
   * The executor recorded on step runs and the in-progress lease they start with: while it holds,
   * no second attempt at the same (run, step, item) starts (a duplicate delivery waits or returns
   * the completed result). Locally renewed by the run's heartbeat; on Lambda, the invocation's deadline.
   */
  lease?: { executor: ExecutorIdentity; until: () => string };
  /**
   * Pipelines whose steps may promote to production here (the stack's `promoters`; `*` = all).
   * Stage changes a step makes are recorded as `pipeline:<name> run <runId>`, never as `actor`.
   */
  promoters?: readonly string[];
}

export type StepEvent =
  | { type: 'step-started'; runId: string; stepId: string; stepRunId: string }
  | { type: 'step-retrying'; runId: string; stepId: string; attempt: number; delayMs: number; error: ErrorInfo }
  | { type: 'step-log'; runId: string; stepId: string; message: string }
  | { type: 'step-finished'; runId: string; stepId: string; stepRun: StepRun };

export interface StepExecutionRequest {
  run: { id: string; pipeline: string; modelVersion?: RunModelVersion };
  node: StepNode;
  /** Input name → the artifact version to read. */
  inputs: Record<string, ArtifactVersion>;
  /** Whether a cache hit may be used (pipeline, run and step settings combined). */
  cache: boolean;
  signal?: AbortSignal;
  /**
   * For one item of a fan-out: its index in the mapped input's list, and the item itself when the
   * caller already has it (otherwise it is read from the list artifact).
   */
  mapItem?: { index: number; value?: unknown };
  /**
   * Retry failed attempts here, per the step's `retries` (default true). False on Step Functions,
   * whose Retry fields do it, so attempts are not multiplied.
   */
  inProcessRetries?: boolean;
}

/** The id a step run is recorded under: the step id, or `id[i]` for item `i` of a fan-out. */
export function stepRecordId(nodeId: string, mapIndex?: number): string {
  return mapIndex === undefined ? nodeId : `${nodeId}[${mapIndex}]`;
}

export interface StepExecutionResult {
  stepRun: StepRun;
  /** Output name → the artifact version (new, or the original one for cached step runs). */
  outputs: Record<string, ArtifactVersion>;
}

function retryPolicy(retries: number | RetryPolicy | undefined): Required<RetryPolicy> {
  const policy = typeof retries === 'number' ? { maxRetries: retries } : (retries ?? { maxRetries: 0 });
  return { backoffMs: 1000, backoffRate: 2, maxBackoffMs: 60_000, ...policy };
}

/** Delay before retry number `retry` (1-based). */
export function backoffDelay(policy: Required<RetryPolicy>, retry: number): number {
  return Math.min(policy.maxBackoffMs, policy.backoffMs * policy.backoffRate ** (retry - 1));
}

/**
 * Runs one step: the single code path used by the local orchestrator, the Lambda handler and the
 * ECS entry point. Resolves the model version and cache key, reuses a cached step run when one
 * matches, otherwise loads inputs, calls the step function (with retries and timeout), validates
 * every output against its schema, writes the outputs to the artifact store and records the step
 * run together with its artifact versions in one metadata transaction.
 *
 * @throws StepFailedError (cause: the step's own error, an OutputValidationError or a StepTimeoutError)
 * @throws RunCancelledError when `signal` aborts
 */
export async function executeStep(request: StepExecutionRequest, env: StepEnvironment): Promise<StepExecutionResult> {
  const { node, run, signal, mapItem } = request;
  const recordId = stepRecordId(node.id, mapItem?.index);
  const mappedInput = mapItem ? node.map?.input : undefined;
  const model = node.spec.options.model && env.resolveModel ? await env.resolveModel(node) : undefined;
  const inputHashes: Record<string, string> = {};
  const inputIds: Record<string, string> = {};
  let item: { value: unknown } | undefined;
  for (const [name, version] of Object.entries(request.inputs)) {
    inputIds[name] = version.id;
    if (name === mappedInput) {
      // A fan-out item's cache key depends on the item itself, not on the whole list, so editing
      // one item of a list re-runs only that item.
      item = {
        value:
          mapItem!.value !== undefined ? mapItem!.value : await loadItem(version, mapItem!.index, node.id, name, env),
      };
      inputHashes[name] = `item:${sha256Hex(canonicalJson(item.value))}`;
    } else {
      inputHashes[name] = version.contentHash;
    }
  }
  const cacheKey = computeCacheKey({ node, inputHashes, ...(model ? { modelVersionId: model.id } : {}) });
  const base = {
    runId: run.id,
    stepId: recordId,
    stepName: node.spec.name,
    cacheKey,
    codeHash: node.spec.codeHash,
    parameters: node.params,
    inputs: inputIds,
  };

  // What the key was made of, so `stackline runs explain` can say what changed since an earlier run.
  const keyRecord = cacheKeyRecord(
    node,
    request.inputs,
    inputHashes,
    model ? `${model.model}:${model.number}` : null,
    request.cache,
  );
  if (request.cache) {
    const hit = await env.metadata.runs.findCacheHit(cacheKey);
    if (hit)
      return reuseCachedStepRun(
        base,
        hit,
        mergeRecords<Metadata>(model ? { modelVersion: `${model.model}:${model.number}` } : undefined, keyRecord),
        env,
      );
  }

  const started = performance.now();
  let stepRun: StepRun;
  try {
    // Led by a property, not the spread: see mergeRecords.
    stepRun = await env.metadata.runs.startStep({
      id: newId('srun'),
      ...base,
      status: 'running',
      startedAt: nowIso(),
      attempts: 0,
      outputs: {},
      metadata: {},
      ...leaseOf(env),
    });
  } catch (error) {
    // A duplicate delivery of a step that already completed: its result, not a second run.
    if (error instanceof StepAlreadyDoneError) return completedResult(error, env);
    throw error;
  }
  faultPoint('step:started');
  env.onEvent?.({ type: 'step-started', runId: run.id, stepId: recordId, stepRunId: stepRun.id });

  const models = createModelControl(env, { pipeline: run.pipeline, runId: run.id, promoters: env.promoters ?? [] });
  const logs: string[] = [];
  const stepMetadata = mergeRecords<Metadata>(
    model ? { modelVersion: `${model.model}:${model.number}` } : undefined,
    keyRecord,
  );
  const artifactMetadata: Record<string, Metadata> = {};
  let attempts = 0;
  let tmpDir: string | undefined;
  try {
    const inputs: Record<string, unknown> = {};
    for (const [name, version] of Object.entries(request.inputs)) {
      inputs[name] =
        name === mappedInput ? item!.value : await loadArtifactVersion(env.materializers, version, env.artifacts);
    }
    const policy = retryPolicy(request.inProcessRetries === false ? 0 : node.spec.options.retries);
    // A worker thread per attempt where this process is the executor. On Lambda and ECS the
    // process itself is what stops (it exits after a timed-out invocation; a task ends).
    const isolated = node.spec.options.isolation === 'worker' && (env.lease?.executor.kind ?? 'process') === 'process';
    let value: unknown;
    for (;;) {
      attempts++;
      // Each attempt has its own metadata and scratch directory, and a fence: once the attempt has
      // ended (timed out, failed, cancelled), whatever it still does through its context is refused,
      // so an abandoned attempt cannot write beside its retry.
      const attempt = {
        number: attempts,
        ended: false,
        metadata: {} as Metadata,
        artifactMetadata: {} as Record<string, Metadata>,
        tmpDir: isolated ? isolatedScratchDir(node.id) : undefined,
      };
      const fence = () => {
        if (attempt.ended)
          throw new StepTimeoutError(`Step "${node.id}" attempt ${attempt.number} has ended; it can no longer write.`, {
            context: { step: node.id, attempt: attempt.number },
          });
      };
      try {
        value = await runAttempt(
          { models: fencedModels(models, fence), ...request },
          stepRun.id,
          attempts,
          inputs,
          model,
          isolated ? attempt.tmpDir : undefined,
          {
            log: (message) => {
              fence();
              logs.push(message);
              env.onEvent?.({ type: 'step-log', runId: run.id, stepId: recordId, message });
            },
            logMetadata: (values) => {
              fence();
              Object.assign(attempt.metadata, values);
            },
            logArtifactMetadata: (output, values) => {
              fence();
              attempt.artifactMetadata[output] = mergeRecords<Metadata>(attempt.artifactMetadata[output], values);
            },
            tmpDir: () => {
              fence();
              // Lives until the outputs are stored: steps may return files they wrote there.
              attempt.tmpDir ??= makeTmpDirSync(node.id);
              return attempt.tmpDir;
            },
          },
        );
        attempt.ended = true;
        Object.assign(stepMetadata, attempt.metadata);
        Object.assign(artifactMetadata, attempt.artifactMetadata);
        tmpDir = attempt.tmpDir;
        break;
      } catch (error) {
        attempt.ended = true;
        // The ended attempt's scratch directory goes with it, so a retry starts clean.
        if (attempt.tmpDir) await rm(attempt.tmpDir, { recursive: true, force: true });
        if (signal?.aborted) throw new RunCancelledError(`Step "${node.id}" was cancelled.`, { cause: error });
        if (error instanceof NonRetriableError || attempts > policy.maxRetries) throw error;
        const delayMs = backoffDelay(policy, attempts);
        env.onEvent?.({
          type: 'step-retrying',
          runId: run.id,
          stepId: recordId,
          attempt: attempts,
          delayMs,
          error: errorInfo(error, { withStack: true }),
        });
        await sleep(delayMs, undefined, signal ? { signal } : undefined).catch(() => {
          throw new RunCancelledError(`Step "${node.id}" was cancelled while waiting to retry.`);
        });
      }
    }

    faultPoint('step:returned');
    const drafts = await writeOutputs(request, value, artifactMetadata, env);
    const recorded = await recordableLogs(logs, stepRun, recordId, env);
    const completed = await env.metadata.runs.completeStep(stepRun.id, {
      endedAt: nowIso(),
      durationMs: Math.round(performance.now() - started),
      attempts,
      outputs: drafts,
      metadata: mergeRecords<Metadata>(stepMetadata, recorded.metadata),
      ...(logs.length ? { logs: recorded.logs } : {}),
    });
    faultPoint('step:completed');
    env.onEvent?.({ type: 'step-finished', runId: run.id, stepId: recordId, stepRun: completed.stepRun });
    return completed;
  } catch (error) {
    const cancelled = error instanceof RunCancelledError || signal?.aborted === true;
    const recorded = await recordableLogs(logs, stepRun, recordId, env).catch(() => ({
      logs: logs.slice(-100),
      metadata: {},
    }));
    const ended = await env.metadata.runs.endStep(stepRun.id, cancelled ? 'cancelled' : 'failed', nowIso(), {
      durationMs: Math.round(performance.now() - started),
      attempts,
      error: errorInfo(error, { withStack: true }),
      ...(logs.length ? { logs: recorded.logs } : {}),
    });
    env.onEvent?.({ type: 'step-finished', runId: run.id, stepId: recordId, stepRun: ended });
    if (cancelled)
      throw error instanceof RunCancelledError
        ? error
        : new RunCancelledError(`Step "${node.id}" was cancelled.`, { cause: error });
    if (error instanceof StacklineError && !(error instanceof NonRetriableError) && error.code !== 'STACKLINE_ERROR') {
      throw new StepFailedError(`Step "${node.id}" failed: ${error.message}`, {
        cause: error,
        context: { step: node.id, stepRunId: stepRun.id, ...error.context },
      });
    }
    throw new StepFailedError(
      `Step "${node.id}" failed after ${attempts} attempt${attempts === 1 ? '' : 's'}: ${error instanceof Error ? error.message : String(error)}`,
      { cause: error, context: { step: node.id, stepRunId: stepRun.id, attempts } },
    );
  } finally {
    if (tmpDir) await rm(tmpDir, { recursive: true, force: true });
  }
}

/** The model control plane as an attempt sees it: every call refused once the attempt has ended. */
function fencedModels(models: ModelControl, fence: () => void): ModelControl {
  return new Proxy(models, {
    get(target, key, receiver) {
      const value = Reflect.get(target, key, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        fence();
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}

type ContextCallbacks = Pick<StepContext, 'log' | 'logMetadata' | 'logArtifactMetadata'> & { tmpDir: () => string };

async function runAttempt(
  request: StepExecutionRequest & { models: ModelControl },
  stepRunId: string,
  attempt: number,
  inputs: Record<string, unknown>,
  model: LoadedModelVersion | undefined,
  isolatedScratch: string | undefined,
  callbacks: ContextCallbacks,
): Promise<unknown> {
  const { node, run } = request;
  const attemptSignal = lazyAbortSignal();
  const onAbort = () => attemptSignal.abort(request.signal?.reason);
  request.signal?.addEventListener('abort', onAbort, { once: true });
  const timeoutMs = node.spec.options.timeoutMs;
  let timer: NodeJS.Timeout | undefined;
  let isolated: IsolatedAttempt | undefined;
  let onRunAbort: (() => void) | undefined;
  try {
    if (request.signal?.aborted) throw new RunCancelledError(`Step "${node.id}" was cancelled.`);
    const context = new AttemptContext(
      {
        runId: run.id,
        stepRunId,
        stepId: node.id,
        pipeline: run.pipeline,
        attempt,
        log: callbacks.log,
        logMetadata: callbacks.logMetadata,
        logArtifactMetadata: callbacks.logArtifactMetadata,
        model,
        runModelVersion: run.modelVersion,
        models: request.models,
      },
      attemptSignal.signal,
      callbacks.tmpDir,
    );
    let call: Promise<unknown>;
    // The step's own code: V8 sizes the heap for it as usual (see heap-growth.ts).
    if (isolatedScratch === undefined) {
      call = asUserCode(() =>
        Promise.resolve().then(() => {
          faultPoint('step:attempt');
          return node.spec.fn({ inputs, params: node.params, context });
        }),
      );
    } else {
      try {
        const started = startIsolatedAttempt(node, inputs, context, isolatedScratch);
        isolated = started;
        call = asUserCode(() => started.result);
      } catch (error) {
        call = Promise.reject(error);
      }
    }
    if (timeoutMs === undefined && !request.signal) return await call;
    const guards: Promise<never>[] = [];
    if (timeoutMs !== undefined) {
      const started = isolated?.started;
      guards.push(
        new Promise<never>((_, reject) => {
          const arm = () => {
            timer = setTimeout(() => {
              const error = new StepTimeoutError(
                `Step "${node.id}" timed out after ${timeoutMs} ms (attempt ${attempt}).`,
                { context: { step: node.id, timeoutMs } },
              );
              attemptSignal.abort(error);
              reject(error);
            }, timeoutMs);
          };
          // An isolated attempt's time starts when its function does, not while its worker imports the module.
          if (started) void started.then(arm);
          else arm();
        }),
      );
    }
    const runSignal = request.signal;
    if (runSignal) {
      // The run's signal, not the attempt's: a timeout also aborts the attempt, and must stay a timeout.
      guards.push(
        new Promise<never>((_, reject) => {
          onRunAbort = () => reject(new RunCancelledError(`Step "${node.id}" was cancelled.`));
          runSignal.addEventListener('abort', onRunAbort, { once: true });
        }),
      );
    }
    call.catch(() => {}); // the race below reports it; avoid an unhandled rejection when a guard wins
    return await Promise.race([call, ...guards]);
  } finally {
    if (timer) clearTimeout(timer);
    request.signal?.removeEventListener('abort', onAbort);
    // The run's signal outlives its steps: a listener left on it would keep every attempt (its
    // closure, inputs and result) alive until the run ends, memory growing with the pipeline.
    if (onRunAbort) request.signal?.removeEventListener('abort', onRunAbort);
    // The hard stop: the attempt's thread is gone before its scratch directory is removed or a retry starts.
    await isolated?.stop();
  }
}

/**
 * An attempt's abort signal, made when the step first reads `context.signal`. Most steps never do,
 * and in Node 20 every AbortSignal costs a hidden class of its own (see mergeRecords): made for
 * every attempt, they grew the heap with the number of steps. Aborted before anyone read it, the
 * signal is born aborted with the same reason.
 */
function lazyAbortSignal() {
  let controller: AbortController | undefined;
  let aborted: { reason: unknown } | undefined;
  return {
    signal(): AbortSignal {
      if (controller === undefined) {
        controller = new AbortController();
        if (aborted) controller.abort(aborted.reason);
      }
      return controller.signal;
    },
    abort(reason: unknown): void {
      aborted ??= { reason };
      controller?.abort(reason);
    },
  };
}

const tmpRoot = join(tmpdir(), 'stackline');
function makeTmpDirSync(stepId: string): string {
  // Synchronous because `context.tmpDir` is a property; only steps that read it pay for it.
  mkdirSync(tmpRoot, { recursive: true });
  return mkdtempSync(join(tmpRoot, `${stepId}-`));
}

async function loadItem(version: ArtifactVersion, index: number, stepId: string, input: string, env: StepEnvironment) {
  const list = await loadArtifactVersion(env.materializers, version, env.artifacts);
  return itemOf(list, index, stepId, input);
}

/** The fields a step run is recorded with, whether it runs or is served from the cache. */
export type StepRunIdentity = Pick<
  StepRun,
  'runId' | 'stepId' | 'stepName' | 'cacheKey' | 'codeHash' | 'parameters' | 'inputs'
>;

/** Records a `cached` step run pointing at `hit`'s artifact versions, and returns them. */
export async function reuseCachedStepRun(
  identity: StepRunIdentity,
  hit: StepRun,
  metadata: Metadata,
  env: StepEnvironment,
): Promise<StepExecutionResult> {
  const now = nowIso();
  let stepRun: StepRun;
  try {
    stepRun = await env.metadata.runs.recordCachedStep({
      id: newId('srun'),
      ...identity,
      status: 'cached',
      startedAt: now,
      endedAt: now,
      durationMs: 0,
      attempts: 0,
      cachedFrom: hit.id,
      outputs: hit.outputs,
      metadata,
      ...leaseOf(env),
    });
  } catch (error) {
    if (error instanceof StepAlreadyDoneError) return completedResult(error, env);
    throw error;
  }
  const versions = new Map(
    (await env.metadata.artifacts.getVersionsByIds(Object.values(hit.outputs))).map((v) => [v.id, v]),
  );
  const outputs = Object.fromEntries(Object.entries(hit.outputs).map(([name, id]) => [name, versions.get(id)!]));
  env.onEvent?.({ type: 'step-finished', runId: identity.runId, stepId: identity.stepId, stepRun });
  return { stepRun, outputs };
}

function leaseOf(env: StepEnvironment): Pick<StepRun, 'executor' | 'leaseExpiresAt'> {
  return env.lease ? { executor: env.lease.executor, leaseExpiresAt: env.lease.until() } : {};
}

/** The step run a StepAlreadyDoneError names, with its output versions. */
async function completedResult(error: StepAlreadyDoneError, env: StepEnvironment): Promise<StepExecutionResult> {
  const stepRun = await env.metadata.runs.getStep(String(error.context.stepRunId));
  const versions = new Map(
    (await env.metadata.artifacts.getVersionsByIds(Object.values(stepRun.outputs))).map((v) => [v.id, v]),
  );
  const outputs = Object.fromEntries(Object.entries(stepRun.outputs).map(([name, id]) => [name, versions.get(id)!]));
  return { stepRun, outputs };
}

function itemOf(list: unknown, index: number, stepId: string, input: string): unknown {
  if (!Array.isArray(list)) {
    throw new NonRetriableError(`Step "${stepId}" maps over input "${input}", which is not a list.`, {
      context: { step: stepId, input },
    });
  }
  if (index >= list.length) {
    throw new NonRetriableError(
      `Step "${stepId}": item ${index} of input "${input}" does not exist (${list.length} items).`,
    );
  }
  return list[index];
}

/** Validates every declared output, then materializes them. Nothing is recorded if any is invalid. */
async function writeOutputs(
  request: StepExecutionRequest,
  value: unknown,
  artifactMetadata: Record<string, Metadata>,
  env: StepEnvironment,
): Promise<StepRunOutputDraft[]> {
  const { node, run } = request;
  if (typeof value !== 'object' || value === null) {
    throw new OutputValidationError(
      `Step "${node.id}" returned ${value === null ? 'null' : typeof value}; it must return an object with its outputs (${Object.keys(node.spec.outputs).join(', ')}).`,
      { context: { step: node.id } },
    );
  }
  const returned = value as Record<string, unknown>;
  for (const key of Object.keys(returned)) {
    if (!(key in node.spec.outputs)) {
      throw new OutputValidationError(
        `Step "${node.id}" returned output "${key}", which it does not declare (declared: ${Object.keys(node.spec.outputs).join(', ')}).`,
        { context: { step: node.id, output: key } },
      );
    }
  }
  const parsed: Record<string, unknown> = {};
  for (const [name, declaration] of Object.entries(node.spec.outputs)) {
    const result = declaration.schema.safeParse(returned[name]);
    if (!result.success) {
      throw new OutputValidationError(
        `Step "${node.id}" output "${name}" does not match its schema: ${formatZodIssues(result.error)}`,
        {
          context: {
            step: node.id,
            output: name,
            issues: result.error.issues.map((i) => ({ path: i.path.map(String), message: i.message })),
          },
        },
      );
    }
    parsed[name] = result.data;
  }
  const drafts: StepRunOutputDraft[] = [];
  for (const [name, declaration] of Object.entries(node.spec.outputs)) {
    const materializer = declaration.materializer
      ? env.materializers.get(declaration.materializer)
      : env.materializers.pick(parsed[name]);
    const stored = await materializer.save(parsed[name], { store: env.artifacts });
    faultPoint('blob:written');
    drafts.push({
      outputName: name,
      artifact: {
        // Fan-out items are versions of `<artifact>.items`; `<artifact>` holds the collected list.
        name: `${declaration.artifact ?? `${node.id}.${name}`}${request.mapItem ? '.items' : ''}`,
        contentHash: stored.contentHash,
        uri: stored.uri,
        size: stored.size,
        materializer: materializer.name,
        dataType: stored.dataType,
        metadata: artifactMetadata[name] ?? {},
        tags: declaration.tags ?? [],
        producerRunId: run.id,
      },
    });
  }
  return drafts;
}
