/**
 * A run's per-step configuration snapshot, kept out of the run record: a JSON blob in the stack's
 * artifact store under its content hash, referenced from `run.config.stepsSnapshot` (see
 * {@link StepSnapshotReference}). A DynamoDB item holds 400 KB and every step runner reads the run
 * record, so what grows with the pipeline stays out of it.
 */
import type { ArtifactStore } from '../artifacts/artifact-store.ts';
import type { PipelineGraph } from '../dsl/builder.ts';
import { IntegrityError, NotFoundError } from '../errors.ts';
import { canonicalJson } from '../util/canonical-json.ts';
import type { Metadata, PipelineRun, StepSnapshotEntry, StepSnapshotReference } from './types.ts';

/** The run config key holding the {@link StepSnapshotReference}. */
export const STEP_SNAPSHOT_KEY = 'stepsSnapshot';
const FORMAT = 'stackline.steps/1';

/** Step id → its entry, in the pipeline's topological order. */
export type StepSnapshot = Record<string, StepSnapshotEntry>;

/** What the blob holds: an array, so the order of the steps survives canonical JSON. */
interface StepSnapshotBlob {
  format: typeof FORMAT;
  steps: Array<StepSnapshotEntry & { id: string }>;
}

/**
 * Writes the snapshot of a run's graph (with the run's per-step cache overrides) to the artifact
 * store and returns the reference the run record keeps. Canonical JSON: the same pipeline and
 * settings give the same bytes, so their runs share one blob.
 *
 * @example
 * const ref = await writeStepSnapshot(env.artifacts, graph, { train: false });
 * // { contentHash: 'sha256:…', steps: 3, cacheOverrides: 1 }
 */
export async function writeStepSnapshot(
  artifacts: ArtifactStore,
  graph: PipelineGraph,
  stepCache: Readonly<Record<string, boolean>> = {},
): Promise<StepSnapshotReference> {
  const blob: StepSnapshotBlob = {
    format: FORMAT,
    steps: graph.nodes.map((n) => ({
      id: n.id,
      step: n.spec.name,
      codeHash: n.spec.codeHash,
      upstream: n.upstream,
      options: n.spec.options as Metadata,
      ...(n.map ? { map: n.map } : {}),
      ...(typeof stepCache[n.id] === 'boolean' ? { cache: stepCache[n.id] } : {}),
    })),
  };
  const stored = await artifacts.put(canonicalJson(blob));
  return {
    contentHash: stored.contentHash,
    steps: blob.steps.length,
    cacheOverrides: blob.steps.filter((s) => s.cache !== undefined).length,
  };
}

/** The run's reference, when its record has one. */
export function stepSnapshotReference(run: PipelineRun): StepSnapshotReference | undefined {
  const ref = run.config[STEP_SNAPSHOT_KEY];
  if (!ref || typeof ref !== 'object' || Array.isArray(ref) || typeof ref.contentHash !== 'string') return undefined;
  return ref as unknown as StepSnapshotReference;
}

/**
 * Parsed snapshots by content hash. A blob never changes, so a warm container (a step runner, the
 * API) reads each at most once; bounded, since one snapshot of 10,000 steps is about 1.4 MB.
 */
const loaded = new Map<string, Promise<StepSnapshot>>();
const LOADED_MAX = 8;

/**
 * The run's per-step snapshot: from the artifact store by its reference (once per process), or
 * inline in the records written before snapshots moved out (`config.steps`, `config.stepCache`).
 * Undefined when the run recorded none.
 *
 * @throws IntegrityError when the referenced blob is missing or is not a step snapshot.
 */
export async function loadStepSnapshot(artifacts: ArtifactStore, run: PipelineRun): Promise<StepSnapshot | undefined> {
  const ref = stepSnapshotReference(run);
  if (!ref || hasInlineSnapshot(run)) return inlineSnapshot(run);
  let snapshot = loaded.get(ref.contentHash);
  if (snapshot) {
    loaded.delete(ref.contentHash);
  } else {
    snapshot = readBlob(artifacts, ref.contentHash, run.id);
    snapshot.catch(() => loaded.delete(ref.contentHash));
  }
  loaded.set(ref.contentHash, snapshot);
  if (loaded.size > LOADED_MAX) loaded.delete(loaded.keys().next().value!);
  return snapshot;
}

async function readBlob(artifacts: ArtifactStore, contentHash: string, runId: string): Promise<StepSnapshot> {
  let bytes: Buffer;
  try {
    bytes = await artifacts.getBytes(contentHash);
  } catch (error) {
    if (!(error instanceof NotFoundError)) throw error;
    throw new IntegrityError(
      `Run "${runId}" refers to its step snapshot ${contentHash}, which the ${artifacts.kind} artifact store no longer has (removed outside Stackline?): its step runs are intact, but which steps were planned is lost.`,
      { cause: error, context: { runId, contentHash } },
    );
  }
  let blob: Partial<StepSnapshotBlob> | null;
  try {
    blob = JSON.parse(bytes.toString('utf8')) as Partial<StepSnapshotBlob> | null;
  } catch {
    blob = null;
  }
  if (blob?.format !== FORMAT || !Array.isArray(blob.steps)) {
    throw new IntegrityError(
      `Run "${runId}" refers to ${contentHash} as its step snapshot, but that blob is not one (format ${JSON.stringify(blob?.format ?? null)}).`,
      { context: { runId, contentHash } },
    );
  }
  return Object.fromEntries(blob.steps.map(({ id, ...entry }) => [id, entry]));
}

/** Older records, and run detail from the API (see {@link withInlineStepSnapshot}), carry it inline. */
function hasInlineSnapshot(run: PipelineRun): boolean {
  const steps = run.config.steps;
  return steps !== null && typeof steps === 'object' && !Array.isArray(steps);
}

function inlineSnapshot(run: PipelineRun): StepSnapshot | undefined {
  if (!hasInlineSnapshot(run)) return undefined;
  const steps = run.config.steps;
  const overrides = cacheOverridesInline(run) ?? {};
  return Object.fromEntries(
    Object.entries(steps as unknown as StepSnapshot).map(([id, entry]) => [
      id,
      typeof overrides[id] === 'boolean' ? { ...entry, cache: overrides[id] } : entry,
    ]),
  );
}

function cacheOverridesInline(run: PipelineRun): Record<string, boolean> | undefined {
  const stepCache = run.config.stepCache;
  return stepCache && typeof stepCache === 'object' && !Array.isArray(stepCache)
    ? (stepCache as Record<string, boolean>)
    : undefined;
}

/**
 * The run's per-step cache overrides, for the step runner: no read at all unless the run set some
 * (the reference counts them), and then the snapshot at most once per container.
 */
export async function stepCacheOverrides(
  artifacts: ArtifactStore,
  run: PipelineRun,
): Promise<Record<string, boolean> | undefined> {
  const ref = stepSnapshotReference(run);
  if (!ref || hasInlineSnapshot(run)) return cacheOverridesInline(run);
  if (ref.cacheOverrides === 0) return undefined;
  const snapshot = (await loadStepSnapshot(artifacts, run)) ?? {};
  return Object.fromEntries(
    Object.entries(snapshot).flatMap(([id, entry]) => (entry.cache === undefined ? [] : [[id, entry.cache]])),
  );
}

/**
 * The run as records carried it before the snapshot moved out: `config.steps` (and `config.stepCache`)
 * inline, read from the artifact store. What the API's run detail returns, so its clients (the
 * dashboard draws the DAG from `config.steps`) see one shape for old and new records.
 */
export async function withInlineStepSnapshot(artifacts: ArtifactStore, run: PipelineRun): Promise<PipelineRun> {
  if (!stepSnapshotReference(run) || hasInlineSnapshot(run)) return run;
  const snapshot = (await loadStepSnapshot(artifacts, run)) ?? {};
  const steps: Record<string, Metadata> = {};
  const stepCache: Record<string, boolean> = {};
  for (const [id, { cache, ...entry }] of Object.entries(snapshot)) {
    steps[id] = entry as unknown as Metadata;
    if (cache !== undefined) stepCache[id] = cache;
  }
  return {
    ...run,
    config: { ...run.config, steps, ...(Object.keys(stepCache).length > 0 ? { stepCache } : {}) },
  };
}
