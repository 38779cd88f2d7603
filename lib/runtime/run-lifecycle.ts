import type { PipelineGraph, StepNode } from '../dsl/builder.ts';
import type { PipelineDefinition } from '../dsl/pipeline.ts';
import type { RunModelVersion } from '../dsl/types.ts';
import { errorInfo } from '../errors.ts';
import { STEP_SNAPSHOT_KEY, writeStepSnapshot } from '../metadata/step-snapshot.ts';
import type { ArtifactVersion, ExecutorIdentity, Metadata, PipelineRun, Tag } from '../metadata/types.ts';
import { currentActor, prepareRunModelVersion, toLoadedModelVersion } from '../models/model-context.ts';
import { newId, nowIso } from '../util/ids.ts';
import type { StepEnvironment, StepExecutionResult } from './step-executor.ts';

/**
 * The parts of a run's life that every orchestrator shares — the local one in this process and
 * the step runner behind a Step Functions state machine — so both record runs the same way.
 */

export interface PreparedRun {
  params: Metadata;
  graph: PipelineGraph;
  /** External artifact pseudo-step id → the version it resolved to. */
  externals: Map<string, ArtifactVersion>;
}

/**
 * Validates parameters, builds the DAG and resolves external artifacts — before anything is
 * recorded, so bad input never leaves a run behind. @throws ValidationError | PipelineDefinitionError | NotFoundError
 */
export async function prepareRun(
  pipeline: PipelineDefinition,
  rawParams: unknown,
  env: Pick<StepEnvironment, 'metadata'>,
): Promise<PreparedRun> {
  const params = pipeline.parseParameters(rawParams ?? {}) as Metadata;
  const graph = pipeline.build(params);
  const externals = new Map<string, ArtifactVersion>();
  for (const external of graph.externals) {
    externals.set(external.id, await env.metadata.artifacts.getVersion(external.name, external.version));
  }
  return { params, graph, externals };
}

export interface CreateRunOptions {
  runId?: string;
  stack: string;
  tags?: Tag[];
  actor?: string;
  /** Recorded in the run's configuration snapshot. */
  settings?: Metadata;
  /** Per-step cache overrides (step id → on/off): kept with the per-step snapshot, out of the run record. */
  stepCache?: Readonly<Record<string, boolean>>;
  /** Who executes the run and until when its lease holds (absent when an execution owns the run). */
  executor?: ExecutorIdentity;
  leaseExpiresAt?: string;
}

/** Records the run (`running`) and, for pipelines with a model, its model version. */
export async function createRun(
  pipeline: PipelineDefinition,
  prepared: PreparedRun,
  env: StepEnvironment,
  options: CreateRunOptions,
): Promise<{ run: PipelineRun; modelVersion?: RunModelVersion }> {
  const tags = [...new Set([...(pipeline.config.tags ?? []), ...(options.tags ?? [])])];
  // Written first: a run record never points at a snapshot that is not there.
  const stepsSnapshot = await writeStepSnapshot(env.artifacts, prepared.graph, options.stepCache);
  const run = await env.metadata.runs.create({
    id: options.runId ?? newId('run'),
    pipeline: pipeline.name,
    status: 'running',
    stack: options.stack,
    parameters: prepared.params,
    config: {
      ...options.settings,
      externalArtifacts: Object.fromEntries([...prepared.externals].map(([id, v]) => [id, v.id])),
      [STEP_SNAPSHOT_KEY]: stepsSnapshot as unknown as Metadata,
    },
    tags,
    metadata: {},
    createdBy: options.actor ?? currentActor(),
    startedAt: nowIso(),
    ...(options.executor ? { executor: options.executor } : {}),
    ...(options.leaseExpiresAt ? { leaseExpiresAt: options.leaseExpiresAt } : {}),
  });
  if (!pipeline.config.model) return { run };
  try {
    const modelVersion = await prepareRunModelVersion(env, pipeline.config.model, run.id, tags);
    for (const version of prepared.externals.values())
      await env.metadata.models.linkArtifact(modelVersion.id, 'data', version);
    return { run: { ...run, modelVersionId: modelVersion.id }, modelVersion };
  } catch (error) {
    await env.metadata.runs.finish(run.id, 'failed', nowIso(), errorInfo(error));
    throw error;
  }
}

/** The run's model version as steps see it, from a recorded run (for runners in other processes). */
export async function runModelVersionOf(env: StepEnvironment, run: PipelineRun): Promise<RunModelVersion | undefined> {
  if (!run.modelVersionId) return undefined;
  const version = await env.metadata.models.getVersionById(run.modelVersionId);
  return {
    model: version.model,
    number: version.number,
    id: version.id,
    logMetadata: (values) => env.metadata.logMetadata({ kind: 'model_version', id: version.id }, values),
  };
}

/** Completes the environment steps run in: the default model resolution and the acting user. */
export function stepEnvironment(env: StepEnvironment, actor?: string): StepEnvironment {
  return {
    ...env,
    actor: env.actor ?? actor ?? currentActor(),
    resolveModel:
      env.resolveModel ??
      (async (node) => {
        const ref = node.spec.options.model!;
        return toLoadedModelVersion(env, await env.metadata.models.getVersion(ref.model, ref.version ?? 'latest'));
      }),
  };
}

/** Whether a step may reuse a cached result: run setting, config-file override, invocation, step option. */
export function stepUsesCache(node: StepNode, runCache: boolean, overrides?: Record<string, boolean>): boolean {
  return runCache && (overrides?.[node.id] ?? node.cache ?? node.spec.options.cache ?? true);
}

/** The artifact versions a step reads: upstream outputs or resolved external artifacts. */
export function resolveStepInputs(
  node: StepNode,
  externals: ReadonlyMap<string, ArtifactVersion>,
  outputsOf: (stepId: string) => Record<string, ArtifactVersion> | undefined,
): Record<string, ArtifactVersion> {
  const inputs: Record<string, ArtifactVersion> = {};
  for (const [name, source] of Object.entries(node.inputs)) {
    const version = externals.get(source.stepId) ?? outputsOf(source.stepId)?.[source.output];
    if (!version)
      throw new Error(
        `Input "${name}" of step "${node.id}" is not available: step "${source.stepId}" has not completed.`,
      );
    inputs[name] = version;
  }
  return inputs;
}

/** Links a step's outputs declared with `modelRole` to the run's model version (also when cached). */
export async function linkModelOutputs(
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
