/**
 * Why a step hit or missed the cache. Each step run records what its cache key was made of (in
 * its metadata, under {@link CACHE_KEY_METADATA}); explaining a step run compares that record with
 * the one of the same step in the closest earlier run of the pipeline.
 */
import type { StepNode } from '../dsl/builder.ts';
import { stepCodeFingerprint } from '../dsl/step.ts';
import type { MetadataStore } from '../metadata/metadata-store.ts';
import type { ArtifactVersion, Metadata, PipelineRun, StepRun } from '../metadata/types.ts';
import { canonicalJson } from '../util/canonical-json.ts';
import { outputDeclarationHash } from './cache-key.ts';

/** The step run metadata key holding its {@link CacheKeyRecord}. */
export const CACHE_KEY_METADATA = 'stackline.cacheKey';

/** What a step run's cache key was made of. Parameters are the step run's own `parameters`. */
export interface CacheKeyRecord {
  /** The code hash's parts (see `CodeFingerprint`): `function`, `module:<path>`, `package:<name>`... */
  code: Record<string, string>;
  /** Input name → content hash read, the upstream step it came from and the version read. */
  inputs: Record<string, { hash: string; from: string; version?: string }>;
  /** Hash of the output declarations (schemas, materializers, artifact names). */
  outputs: string;
  /** `<model>:<number>` of the model version read, when the step declares one. */
  model: string | null;
  /** False when the run or step had the cache turned off. */
  cache: boolean;
}

/** Builds the record stored with a step run (see {@link CACHE_KEY_METADATA}). */
export function cacheKeyRecord(
  node: StepNode,
  inputs: Record<string, ArtifactVersion>,
  inputHashes: Record<string, string>,
  model: string | null,
  cache: boolean,
): Metadata {
  const record: CacheKeyRecord = {
    code: stepCodeFingerprint(node.spec).parts,
    inputs: Object.fromEntries(
      Object.entries(inputHashes).map(([name, hash]) => [
        name,
        {
          hash,
          from: node.inputs[name]?.stepId ?? 'unknown',
          ...(inputs[name] ? { version: `${inputs[name].name}@v${inputs[name].version}` } : {}),
        },
      ]),
    ),
    outputs: outputDeclarationHash(node.spec),
    model,
    cache,
  };
  return { [CACHE_KEY_METADATA]: record as unknown as Metadata };
}

/** One part of the key that differs from the earlier run. */
export interface KeyChange {
  kind: 'code' | 'parameter' | 'input' | 'outputs' | 'model';
  /** `function`, `module:lib/x.ts`, `package:zod`, a parameter or input name. */
  name: string;
  before: string | null;
  after: string | null;
  /** For inputs: the upstream step the input comes from. */
  from?: string;
}

/** Why one step run hit or missed. */
export interface StepExplanation {
  stepId: string;
  stepRunId: string;
  status: StepRun['status'];
  /**
   * `hit`: outputs reused. `changed`: the key differs from the closest earlier run's (see
   * `changes`). `cache-disabled`, `first-run` (no earlier run of this step recorded a key), or
   * `not-reusable` (same key, but the earlier run did not complete).
   */
  verdict: 'hit' | 'changed' | 'cache-disabled' | 'first-run' | 'not-reusable';
  /** The step run compared with (the hit's source for hits). */
  comparedWith?: { runId: string; stepRunId: string };
  changes: KeyChange[];
  /** One line for people. */
  summary: string;
}

function recordOf(stepRun: StepRun): CacheKeyRecord | undefined {
  const value = stepRun.metadata?.[CACHE_KEY_METADATA];
  return value && typeof value === 'object' ? (value as unknown as CacheKeyRecord) : undefined;
}

const show = (value: unknown) => (value === undefined ? null : canonicalJson(value));

/** The parts of the key that differ between two step runs of a step. */
export function keyChanges(before: StepRun, after: StepRun): KeyChange[] {
  const a = recordOf(before);
  const b = recordOf(after);
  if (!a || !b) return [];
  const changes: KeyChange[] = [];
  for (const name of union(a.code, b.code)) {
    if (a.code[name] !== b.code[name])
      changes.push({ kind: 'code', name, before: a.code[name] ?? null, after: b.code[name] ?? null });
  }
  for (const name of union(before.parameters, after.parameters)) {
    const x = show(before.parameters[name]);
    const y = show(after.parameters[name]);
    if (x !== y) changes.push({ kind: 'parameter', name, before: x, after: y });
  }
  for (const name of union(a.inputs, b.inputs)) {
    if (a.inputs[name]?.hash !== b.inputs[name]?.hash) {
      changes.push({
        kind: 'input',
        name,
        before: a.inputs[name]?.version ?? a.inputs[name]?.hash ?? null,
        after: b.inputs[name]?.version ?? b.inputs[name]?.hash ?? null,
        from: b.inputs[name]?.from ?? a.inputs[name]?.from ?? 'unknown',
      });
    }
  }
  if (a.outputs !== b.outputs)
    changes.push({ kind: 'outputs', name: 'declarations', before: a.outputs, after: b.outputs });
  if (a.model !== b.model) changes.push({ kind: 'model', name: 'version', before: a.model, after: b.model });
  return changes;
}

function union(x: object, y: object): string[] {
  return [...new Set([...Object.keys(x), ...Object.keys(y)])].sort();
}

/** Describes one change for people: `code of module examples/shared/preprocessing.ts changed`. */
export function describeChange(change: KeyChange): string {
  switch (change.kind) {
    case 'code': {
      const [what, name] = change.name.includes(':') ? change.name.split(/:(.*)/s) : [change.name, ''];
      const label =
        what === 'function' ? 'the step function' : what === 'codeVersion' ? 'codeVersion' : `${what} ${name}`;
      if (what === 'package')
        return `package ${name} ${change.before ?? 'not imported'} → ${change.after ?? 'not imported'}`;
      if (what === 'codeVersion') return `codeVersion ${change.before ?? '(none)'} → ${change.after ?? '(none)'}`;
      if (change.before === null) return `code: now uses ${label}`;
      if (change.after === null) return `code: no longer uses ${label}`;
      return `code of ${label} changed`;
    }
    case 'parameter':
      return `parameter ${change.name}: ${change.before ?? '(unset)'} → ${change.after ?? '(unset)'}`;
    case 'input':
      return `input ${change.name} from step ${change.from} changed: ${change.before ?? '(none)'} → ${change.after ?? '(none)'}`;
    case 'outputs':
      return 'output declarations changed';
    case 'model':
      return `model version ${change.before ?? '(none)'} → ${change.after ?? '(none)'}`;
  }
}

/**
 * Explains the step runs of `runId` (or only `stepId`'s): for each, whether it hit, and otherwise
 * which parts of its key differ from the same step's in the closest earlier run of the pipeline.
 */
export async function explainRun(metadata: MetadataStore, runId: string, stepId?: string): Promise<StepExplanation[]> {
  const run = await metadata.runs.get(runId);
  const steps = (await metadata.runs.listSteps(runId)).filter((s) => stepId === undefined || s.stepId === stepId);
  return explainStepRuns(metadata, run, steps);
}

/**
 * Explains the given step runs of `run`: those a run's result already holds, so explaining a run
 * just finished does not read its whole step list a second time.
 */
export async function explainStepRuns(
  metadata: MetadataStore,
  run: PipelineRun,
  steps: Iterable<StepRun>,
): Promise<StepExplanation[]> {
  const explain = stepRunExplainer(metadata, run);
  const all = [...steps];
  const explanations: StepExplanation[] = [];
  for (let from = 0; from < all.length; from += EXPLAIN_BATCH) {
    const batch = all.slice(from, from + EXPLAIN_BATCH);
    const explained = await explain(batch);
    for (const stepRun of batch) explanations.push(explained.get(stepRun.id)!);
  }
  return explanations;
}

/** How many step runs' earlier counterparts are looked up together. */
const EXPLAIN_BATCH = 100;

/**
 * Explains step runs of `run` a batch at a time (keyed by step run id). What it reads of earlier
 * runs is the batch's steps only — their latest step run in each earlier run, closest first, until
 * each has one that recorded its key — so a long run's explanation holds no earlier run's whole
 * step list, and looks each step up by key rather than by scanning one.
 */
export function stepRunExplainer(
  metadata: MetadataStore,
  run: PipelineRun,
): (stepRuns: readonly StepRun[]) => Promise<Map<string, StepExplanation>> {
  const earlier = new EarlierRuns(metadata, run);
  return async (stepRuns) => {
    earlier.forget();
    await earlier.lookUp(stepRuns.filter(comparesWithEarlier).map((s) => s.stepId));
    const explained = new Map<string, StepExplanation>();
    for (const stepRun of stepRuns) explained.set(stepRun.id, await explainStepRun(metadata, stepRun, earlier));
    return explained;
  };
}

/** Whether explaining `stepRun` compares it with an earlier run's (not a hit, cache not off). */
function comparesWithEarlier(stepRun: StepRun): boolean {
  if (stepRun.status === 'cached' && stepRun.cachedFrom) return false;
  const record = recordOf(stepRun);
  return record?.cache === true;
}

/** The pipeline's runs before a given one, newest first, and the steps of them looked up last. */
class EarlierRuns {
  private runs: PipelineRun[] | undefined;
  /** Step id → its step run in the closest earlier run that recorded its key (undefined: none). */
  private readonly found = new Map<string, StepRun | undefined>();
  constructor(
    private readonly metadata: MetadataStore,
    private readonly run: PipelineRun,
  ) {}

  /** Drops what earlier lookups found (a batch explained). */
  forget(): void {
    this.found.clear();
  }

  /** Looks up these steps. */
  async lookUp(stepIds: readonly string[]): Promise<void> {
    let left = [...new Set(stepIds)];
    for (const id of left) this.found.set(id, undefined);
    if (left.length === 0) return;
    this.runs ??= (
      await this.metadata.runs.list({ pipeline: this.run.pipeline, until: this.run.startedAt, limit: 50 })
    ).items.filter((r) => r.id !== this.run.id && r.startedAt <= this.run.startedAt);
    for (const run of this.runs) {
      if (left.length === 0) break;
      const latest = await this.metadata.runs.latestSteps(run.id, left);
      left = left.filter((id) => {
        const stepRun = latest.get(id);
        if (!stepRun || !recordOf(stepRun)) return true;
        this.found.set(id, stepRun);
        return false;
      });
    }
  }

  /** The same step's latest run in the closest earlier run where it recorded its key. */
  async previous(stepRun: StepRun): Promise<StepRun | undefined> {
    if (!this.found.has(stepRun.stepId)) await this.lookUp([stepRun.stepId]);
    return this.found.get(stepRun.stepId);
  }
}

async function explainStepRun(
  metadata: MetadataStore,
  stepRun: StepRun,
  earlier: EarlierRuns,
): Promise<StepExplanation> {
  // Led by named properties, not by a spread of a shared base: see mergeRecords.
  const explained = (fields: Omit<StepExplanation, 'stepId' | 'stepRunId' | 'status'>): StepExplanation => ({
    stepId: stepRun.stepId,
    stepRunId: stepRun.id,
    status: stepRun.status,
    ...fields,
  });
  if (stepRun.status === 'cached' && stepRun.cachedFrom) {
    const source = await metadata.runs.getStep(stepRun.cachedFrom).catch(() => undefined);
    return explained({
      verdict: 'hit',
      ...(source ? { comparedWith: { runId: source.runId, stepRunId: source.id } } : {}),
      changes: [],
      summary: `hit: same key as ${source ? `run ${source.runId}` : `step run ${stepRun.cachedFrom}`}; its outputs were reused`,
    });
  }
  const record = recordOf(stepRun);
  if (record && !record.cache) {
    return explained({ verdict: 'cache-disabled', changes: [], summary: 'miss: the cache was disabled for this step' });
  }
  const previous = record ? await earlier.previous(stepRun) : undefined;
  if (!previous || !record) {
    return explained({
      verdict: 'first-run',
      changes: [],
      summary: 'miss: no earlier run of this step recorded its cache key',
    });
  }
  const comparedWith = { runId: previous.runId, stepRunId: previous.id };
  const changes = keyChanges(previous, stepRun);
  if (changes.length === 0) {
    return explained({
      verdict: 'not-reusable',
      comparedWith,
      changes,
      summary: `miss: same key as run ${previous.runId}, whose step ${previous.status === 'completed' || previous.status === 'cached' ? 'outputs were not found' : `ended ${previous.status}`}`,
    });
  }
  return explained({
    verdict: 'changed',
    comparedWith,
    changes,
    summary: `miss since run ${previous.runId}: ${changes.map(describeChange).join('; ')}`,
  });
}
