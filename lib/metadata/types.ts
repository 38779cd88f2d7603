/**
 * Records kept by a {@link MetadataStore}. Plain data: every backend (SQLite, DynamoDB) stores and
 * returns exactly these shapes, and the conformance suite in `test/conformance` holds them to it.
 * Timestamps are ISO-8601 strings in UTC; ids are ULID-like strings made by the caller or the store.
 */

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type Metadata = Record<string, JsonValue>;

/** `key:value` tags such as `environment:production`; a bare `key` is a tag with an empty value. */
export type Tag = string;

export type RunStatus = 'pending' | 'running' | 'completed' | 'failed' | 'cancelled';
export type StepRunStatus = 'running' | 'completed' | 'failed' | 'cached' | 'cancelled';
/**
 * What `run --json` and `runs show` call a step of a run that has no step run: it never started
 * (an upstream step failed, or the run was cancelled or failed first).
 */
export const NOT_RUN = 'not-run';
export const TERMINAL_RUN_STATUSES: readonly RunStatus[] = ['completed', 'failed', 'cancelled'];

/**
 * Who executes a run or step run: a process on a host (the local CLI or a script, an ECS task) or a
 * Lambda invocation. On the same host a dead process is recognised at once by `pid` and
 * `processStart` (which tells a reused pid apart); elsewhere the holder's `leaseExpiresAt` decides.
 */
export interface ExecutorIdentity {
  kind: 'process' | 'lambda' | 'ecs';
  host: string;
  pid: number;
  /** When the process started (ISO), and on Linux its start time in clock ticks since boot. */
  processStartedAt: string;
  processStart?: string;
}

export interface ErrorInfo {
  type: string;
  message: string;
  stack?: string;
}

export interface StackRecord {
  name: string;
  /** Component configuration, validated by `lib/stacks/stack-config.ts`. */
  components: Record<string, JsonValue>;
  description?: string;
  tags: Tag[];
  createdAt: string;
  updatedAt: string;
}

/**
 * One step of a run's per-step configuration snapshot: what the pipeline wired and set for it.
 * The dashboard draws the DAG from these (steps that never ran included).
 */
export interface StepSnapshotEntry {
  /** The step's name (a pipeline may invoke one step under several ids). */
  step: string;
  codeHash: string;
  /** Step ids this one waits for. */
  upstream: string[];
  options: Metadata;
  map?: { input: string; maxConcurrency?: number };
  /** The run's per-step cache override (`stepCache` of `--config`, or the execution input), when one was set. */
  cache?: boolean;
}

/**
 * Where a run's per-step configuration snapshot is: `run.config.stepsSnapshot`. The snapshot grows
 * with the pipeline (about 140 bytes a step), so it is not in the run record but in the stack's
 * artifact store, as a JSON blob under its own content hash — written before the run record (no run
 * points at a missing blob), shared by every run of the same pipeline and settings. The record keeps
 * only this reference, so its size, and what a step runner reads to run one step, do not grow with
 * the pipeline. Read it with `loadStepSnapshot` (lib/metadata/step-snapshot.ts), which also reads the
 * older form: records that carry `config.steps` (and `config.stepCache`) inline.
 */
export interface StepSnapshotReference {
  /** `sha256:<hex>` of the blob: its key in the artifact store. */
  contentHash: string;
  /** How many steps the snapshot lists. */
  steps: number;
  /** How many of them carry a cache override (0: a step runner never needs the blob). */
  cacheOverrides: number;
}

export interface PipelineRun {
  id: string;
  pipeline: string;
  status: RunStatus;
  stack: string;
  parameters: Metadata;
  /**
   * The settings the run used (orchestrator, cache, external artifact versions, trigger, ...) and,
   * under `stepsSnapshot`, the {@link StepSnapshotReference} to its per-step configuration.
   */
  config: Metadata;
  tags: Tag[];
  metadata: Metadata;
  createdBy: string;
  startedAt: string;
  endedAt?: string;
  error?: ErrorInfo;
  /** The model version this run produced or attached to, when the pipeline declares a model. */
  modelVersionId?: string;
  /** Who executes the run (absent for runs a Step Functions execution owns). */
  executor?: ExecutorIdentity;
  /** The executor renews this while it works; past it, the run counts as abandoned. */
  leaseExpiresAt?: string;
}

export interface StepRun {
  id: string;
  runId: string;
  /** The invocation id within the pipeline (the step name unless the pipeline gave it another id). */
  stepId: string;
  stepName: string;
  status: StepRunStatus;
  cacheKey: string;
  codeHash: string;
  parameters: Metadata;
  startedAt: string;
  endedAt?: string;
  durationMs?: number;
  attempts: number;
  error?: ErrorInfo;
  /** For `cached` step runs: the step run whose outputs were reused. */
  cachedFrom?: string;
  /** Input name → artifact version id. */
  inputs: Record<string, string>;
  /** Output name → artifact version id. */
  outputs: Record<string, string>;
  metadata: Metadata;
  logs?: string[];
  /** Who executes the step run. */
  executor?: ExecutorIdentity;
  /**
   * An in-progress lease: while a `running` step run holds an unexpired lease, no other step run
   * with the same (run, stepId) may start (see {@link RunRepository.startStep}).
   */
  leaseExpiresAt?: string;
}

export interface ArtifactVersion {
  id: string;
  name: string;
  /** 1, 2, 3… per artifact name, allocated atomically, never reused. */
  version: number;
  /** `sha256:<hex>` of the stored content. */
  contentHash: string;
  /** Where the artifact store keeps the content (`file://…`, `s3://…`). */
  uri: string;
  size: number;
  /** Name of the materializer that wrote it and will read it back. */
  materializer: string;
  /** Free-form description of the value's type (`json:object`, `file`, `directory`, ...). */
  dataType: string;
  metadata: Metadata;
  tags: Tag[];
  producerRunId?: string;
  producerStepRunId?: string;
  createdAt: string;
}

/** What a caller supplies to create an artifact version; the store allocates `id` and `version`. */
export type ArtifactVersionDraft = Omit<ArtifactVersion, 'id' | 'version' | 'createdAt'> & { id?: string };

export interface ArtifactSummary {
  name: string;
  latestVersion: number;
  versionCount: number;
  tags: Tag[];
  updatedAt: string;
}

export interface StepRunOutputDraft {
  outputName: string;
  artifact: ArtifactVersionDraft;
}

export interface StepRunCompletion {
  endedAt: string;
  durationMs: number;
  attempts: number;
  outputs: StepRunOutputDraft[];
  metadata?: Metadata;
  logs?: string[];
}

// ---------- Models (the model control plane) ----------

export type ModelStage = 'staging' | 'production' | 'archived';
export const MODEL_STAGES: readonly ModelStage[] = ['staging', 'production', 'archived'];
/** Stages of which at most one version per model may hold at a time. */
export const EXCLUSIVE_STAGES: readonly ModelStage[] = ['staging', 'production'];
export type ModelArtifactRole = 'data' | 'model' | 'deployment';

/**
 * A model's promotion gate: a version goes to `production` only when its `metric` (a number in the
 * version's metadata) beats the current holder's, higher (`max`) or lower (`min`) being better.
 */
export interface PromotionGate {
  metric: string;
  direction: 'max' | 'min';
}

export interface ModelRecord {
  name: string;
  description?: string;
  tags: Tag[];
  metadata: Metadata;
  latestVersion: number;
  /** Checked by the store on every promotion to `production` (see `lib/metadata/promotion-rules.ts`). */
  promotionGate?: PromotionGate;
  createdAt: string;
  updatedAt: string;
}

export interface ModelVersion {
  id: string;
  model: string;
  number: number;
  /** Optional unique (per model) name such as `2026-q4-baseline`. */
  name?: string;
  description?: string;
  stage?: ModelStage;
  aliases: string[];
  tags: Tag[];
  metadata: Metadata;
  /** Linked artifacts: artifact name → { role, artifactVersionId }. */
  artifacts: ModelArtifactLink[];
  runIds: string[];
  createdAt: string;
  updatedAt: string;
}

export interface ModelArtifactLink {
  role: ModelArtifactRole;
  artifactName: string;
  artifactVersionId: string;
}

/**
 * One recorded stage or alias change. `alias` entries (an alias set on `versionNumber`, moved from
 * `previousVersion` if it was elsewhere) and `alias-removed` entries (the alias taken off
 * `versionNumber`) use `alias` and leave the stages undefined.
 */
export interface StageChange {
  id: string;
  model: string;
  versionNumber: number;
  kind: 'stage' | 'alias' | 'alias-removed';
  fromStage?: ModelStage;
  toStage?: ModelStage;
  alias?: string;
  /** For alias moves: the version that held the alias before, if any. */
  previousVersion?: number;
  actor: string;
  reason?: string;
  at: string;
}

/** How a caller names a model version: a number, a name, a stage, an alias, or `latest`. */
export type ModelVersionRef = number | string;

// ---------- Listing ----------

export interface Page<T> {
  items: T[];
  /** Opaque; pass back as `cursor` for the next page. Absent on the last page. */
  nextCursor?: string;
}

export interface PageRequest {
  limit?: number;
  cursor?: string;
}

export interface RunFilter extends PageRequest {
  pipeline?: string;
  status?: RunStatus;
  tag?: Tag;
  /** ISO timestamps bounding `startedAt` (inclusive). */
  since?: string;
  until?: string;
}

export interface TagFilter extends PageRequest {
  tag?: Tag;
}

export type MetadataTarget =
  | { kind: 'run'; id: string }
  | { kind: 'step_run'; id: string }
  | { kind: 'artifact_version'; id: string }
  | { kind: 'model_version'; id: string }
  | { kind: 'model'; name: string };
