import { COLLECTION, type CollectionManifest } from '../artifacts/collection.ts';
import { loadArtifactVersion } from '../artifacts/load-artifact.ts';
import type { StepNode } from '../dsl/builder.ts';
import { NonRetriableError } from '../errors.ts';
import type { ArtifactVersion, StepRun, StepRunOutputDraft } from '../metadata/types.ts';
import { canonicalJson, sha256Hex } from '../util/canonical-json.ts';
import { newId, nowIso } from '../util/ids.ts';
import { computeCacheKey } from './cache-key.ts';
import {
  reuseCachedStepRun,
  type StepEnvironment,
  type StepExecutionRequest,
  type StepExecutionResult,
} from './step-executor.ts';

/**
 * A fan-out step runs in three phases, the same locally and on Step Functions (plan-map, Map,
 * collect-map): plan records a parent step run and counts the items; each item runs through the
 * ordinary step executor; collect stores each output as a collection of the items' blobs and
 * completes the parent. A parent whose cache key (step, parameters, the whole list, model) matches
 * a completed one is `cached` and no item runs at all.
 */
export interface FanOutPlan {
  parent: StepRun;
  /** Set when the parent was served from the cache: nothing else to do. */
  cached?: StepExecutionResult;
  count: number;
  /** The list itself when it was loaded here (local runs pass items on instead of re-reading it). */
  items?: unknown[];
}

type FanOutRequest = Pick<StepExecutionRequest, 'run' | 'node' | 'inputs' | 'cache'>;

export async function planFanOut(request: FanOutRequest, env: StepEnvironment): Promise<FanOutPlan> {
  const { node, run } = request;
  const mapped = node.map!.input;
  const listVersion = request.inputs[mapped]!;
  const model = node.spec.options.model && env.resolveModel ? await env.resolveModel(node) : undefined;
  const inputHashes = Object.fromEntries(Object.entries(request.inputs).map(([n, v]) => [n, v.contentHash]));
  const cacheKey = `fanout:${computeCacheKey({ node, inputHashes, ...(model ? { modelVersionId: model.id } : {}) })}`;
  const base = {
    runId: run.id,
    stepId: node.id,
    stepName: node.spec.name,
    cacheKey,
    codeHash: node.spec.codeHash,
    parameters: node.params,
    inputs: Object.fromEntries(Object.entries(request.inputs).map(([n, v]) => [n, v.id])),
  };
  if (request.cache) {
    const hit = await env.metadata.runs.findCacheHit(cacheKey);
    if (hit) {
      const cached = await reuseCachedStepRun(base, hit, hit.metadata, env);
      return { parent: cached.stepRun, cached, count: Number(hit.metadata.items ?? 0) };
    }
  }
  const list = await loadArtifactVersion(env.materializers, listVersion, env.artifacts);
  if (!Array.isArray(list)) {
    throw new NonRetriableError(
      `Step "${node.id}" maps over input "${mapped}", but ${listVersion.name} v${listVersion.version} is not a list.`,
      {
        context: { step: node.id, input: mapped },
      },
    );
  }
  const parent = await env.metadata.runs.startStep({
    ...base,
    id: newId('srun'),
    status: 'running',
    startedAt: nowIso(),
    attempts: 1,
    outputs: {},
    metadata: { items: list.length },
  });
  env.onEvent?.({ type: 'step-started', runId: run.id, stepId: node.id, stepRunId: parent.id });
  return { parent, count: list.length, items: list };
}

/** Collects the items' outputs (in item order) into collection artifacts and completes the parent. */
export async function collectFanOut(
  request: Pick<StepExecutionRequest, 'run' | 'node'>,
  parent: StepRun,
  itemOutputs: Array<Record<string, ArtifactVersion>>,
  env: StepEnvironment,
): Promise<StepExecutionResult> {
  const { node, run } = request;
  const collection = env.materializers.get(COLLECTION);
  const drafts: StepRunOutputDraft[] = [];
  for (const [output, declaration] of Object.entries(node.spec.outputs)) {
    const manifest: CollectionManifest = {
      items: itemOutputs.map((outputs, index) => {
        const v = outputs[output];
        if (!v) throw new Error(`Fan-out step "${node.id}": item ${index} has no output "${output}".`);
        return { contentHash: v.contentHash, materializer: v.materializer, dataType: v.dataType, size: v.size };
      }),
    };
    const stored = await collection.save(manifest as never, { store: env.artifacts });
    drafts.push({
      outputName: output,
      artifact: {
        name: declaration.artifact ?? `${node.id}.${output}`,
        contentHash: stored.contentHash,
        uri: stored.uri,
        size: stored.size,
        materializer: COLLECTION,
        dataType: stored.dataType,
        metadata: {
          items: itemOutputs.length,
          itemsHash: sha256Hex(canonicalJson(manifest.items.map((i) => i.contentHash))),
        },
        tags: declaration.tags ?? [],
        producerRunId: run.id,
      },
    });
  }
  const completed = await env.metadata.runs.completeStep(parent.id, {
    endedAt: nowIso(),
    durationMs: Date.now() - Date.parse(parent.startedAt),
    attempts: 1,
    outputs: drafts,
    metadata: { items: itemOutputs.length },
  });
  env.onEvent?.({ type: 'step-finished', runId: run.id, stepId: node.id, stepRun: completed.stepRun });
  return completed;
}

/** Index of a fan-out item's step run id `id[i]`, or undefined for other step ids. */
export function fanOutItemIndex(node: StepNode, stepId: string): number | undefined {
  const match = /^(.*)\[(\d+)\]$/.exec(stepId);
  return match && match[1] === node.id ? Number(match[2]) : undefined;
}
