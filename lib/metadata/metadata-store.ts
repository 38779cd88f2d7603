import type {
  ArtifactSummary,
  ArtifactVersion,
  ArtifactVersionDraft,
  ErrorInfo,
  Metadata,
  MetadataTarget,
  ModelArtifactRole,
  ModelRecord,
  ModelStage,
  ModelVersion,
  ModelVersionRef,
  Page,
  PageRequest,
  PipelineRun,
  PromotionGate,
  RunFilter,
  RunStatus,
  StackRecord,
  StageChange,
  StepRun,
  StepRunCompletion,
  StepRunStatus,
  Tag,
  TagFilter,
} from './types.ts';

/**
 * Where Stackline keeps everything that is not artifact content: stacks, runs, step runs, artifact
 * versions with their lineage, models and their versions, stages and aliases.
 *
 * One interface, one adapter per backend (`SqliteMetadataStore` for the local default stack, a
 * DynamoDB adapter for AWS stacks). Every method is async so remote backends fit; every adapter must
 * pass `test/conformance/metadata-store.conformance.ts` unchanged. Adapters translate backend errors
 * into {@link NotFoundError} / {@link ConflictError} / {@link ValidationError} from `lib/errors.ts`.
 */
export interface MetadataStore {
  readonly kind: string;
  readonly stacks: StackRepository;
  readonly runs: RunRepository;
  readonly artifacts: ArtifactRepository;
  readonly models: ModelRepository;
  /** Merges `values` into the metadata of a run, step run, artifact version, model or model version. */
  logMetadata(target: MetadataTarget, values: Metadata): Promise<void>;
  close(): Promise<void>;
}

export interface StackRepository {
  /** Creates or replaces a stack by name. */
  put(stack: Omit<StackRecord, 'createdAt' | 'updatedAt'>): Promise<StackRecord>;
  /** @throws NotFoundError */
  get(name: string): Promise<StackRecord>;
  find(name: string): Promise<StackRecord | undefined>;
  list(filter?: TagFilter): Promise<Page<StackRecord>>;
  /** @throws NotFoundError */
  delete(name: string): Promise<void>;
}

export interface RunRepository {
  /** @throws ConflictError when a run with this id exists. */
  create(run: PipelineRun): Promise<PipelineRun>;
  /** @throws NotFoundError */
  get(id: string): Promise<PipelineRun>;
  list(filter?: RunFilter): Promise<Page<PipelineRun>>;
  /**
   * Moves a run to `status`. Only a run in a non-terminal status may move; finishing a run that has
   * already finished throws ConflictError (so a late `completed` cannot overwrite `cancelled`).
   */
  finish(
    id: string,
    status: Exclude<RunStatus, 'pending' | 'running'>,
    endedAt: string,
    error?: ErrorInfo,
  ): Promise<PipelineRun>;
  /** Sets the run's model version link. */
  setModelVersion(runId: string, modelVersionId: string): Promise<void>;

  /**
   * Records a step run in status `running`, in one transaction with two conditions:
   * - its run is still `pending` or `running` (RunFinishedError otherwise: a late delivery cannot
   *   add work to a finished run);
   * - when the step run carries a `leaseExpiresAt`, it is the only live attempt at its (run, stepId):
   *   another `running` step run with an unexpired (or no) lease → StepInProgressError; a
   *   `completed` or `cached` one → StepAlreadyDoneError naming it (`context.stepRunId`); a
   *   `running` one whose lease expired is ended `failed` (its executor is gone) and replaced.
   */
  startStep(stepRun: StepRun): Promise<StepRun>;
  /**
   * Extends the lease of a non-terminal run and of those of `stepRunIds` still running (the
   * executor's heartbeat). Returns false when the run has already finished (the executor should stop).
   */
  renewLease(runId: string, leaseExpiresAt: string, stepRunIds?: string[]): Promise<boolean>;
  /**
   * Completes a running step run and creates one artifact version per output (allocating version
   * numbers), all in one transaction: either the step run is `completed` with every output recorded,
   * or nothing changed. Returns the step run and the created versions keyed by output name.
   */
  completeStep(
    stepRunId: string,
    completion: StepRunCompletion,
  ): Promise<{ stepRun: StepRun; outputs: Record<string, ArtifactVersion> }>;
  /**
   * Records a `cached` step run whose outputs are the original step run's artifact versions, under
   * the same conditions as {@link startStep} (the run still open; exclusive when it carries a lease).
   */
  recordCachedStep(stepRun: StepRun): Promise<StepRun>;
  /** Ends a running step run as `failed` or `cancelled`. */
  endStep(
    stepRunId: string,
    status: Extract<StepRunStatus, 'failed' | 'cancelled'>,
    endedAt: string,
    details: { durationMs: number; attempts: number; error?: ErrorInfo; logs?: string[] },
  ): Promise<StepRun>;
  /** @throws NotFoundError */
  getStep(stepRunId: string): Promise<StepRun>;
  listSteps(runId: string): Promise<StepRun[]>;
  /**
   * The newest step run recorded under each of `stepIds` (node ids or `id[i]`) in a run, by step
   * id (newest: latest `startedAt`, then highest id); step ids with none are left out. What a step
   * runner reads instead of {@link listSteps}, so its cost does not grow with the run.
   */
  latestSteps(runId: string, stepIds: readonly string[]): Promise<Map<string, StepRun>>;
  /** The newest `completed` (not cached) step run with this cache key, if any. */
  findCacheHit(cacheKey: string): Promise<StepRun | undefined>;
  /**
   * Marks every non-terminal run (and its running step runs) as `status` — used when a process is
   * interrupted. Returns the ids it changed.
   */
  abandon(runIds: string[], status: 'failed' | 'cancelled', endedAt: string, error: ErrorInfo): Promise<string[]>;
}

export interface ArtifactRepository {
  /** Creates a version outside a pipeline (save API); version number allocated atomically. */
  createVersion(draft: ArtifactVersionDraft): Promise<ArtifactVersion>;
  /** `version` omitted or `'latest'` means the highest number. @throws NotFoundError */
  getVersion(name: string, version?: number | 'latest'): Promise<ArtifactVersion>;
  /** @throws NotFoundError */
  getVersionById(id: string): Promise<ArtifactVersion>;
  getVersionsByIds(ids: string[]): Promise<ArtifactVersion[]>;
  list(filter?: TagFilter): Promise<Page<ArtifactSummary>>;
  /** Newest first. */
  listVersions(name: string, filter?: TagFilter): Promise<Page<ArtifactVersion>>;
  /** Step runs that read this artifact version as an input. */
  consumers(artifactVersionId: string): Promise<StepRun[]>;
  addTags(artifactVersionId: string, tags: Tag[]): Promise<void>;
}

export interface PromoteOptions {
  force?: boolean;
  reason?: string;
  /** Who made the change: the authenticated caller where there is one, never a value a client supplies. */
  actor: string;
  /**
   * Compare-and-set: the version number the caller expects to hold the target stage now (`null`:
   * expects it free). When another version holds it, the change is refused with a ConflictError
   * naming the holder. Omitted: no expectation.
   */
  expectedHolder?: number | null;
  /**
   * The pipeline run making the change (set by the runtime for a promotion gate step, never by
   * clients): that run's own version may go to `production` while the run is still `running`.
   */
  runId?: string;
}

/** What creating a model takes: its name and, optionally, description, tags, metadata and promotion gate. */
export interface NewModel {
  name: string;
  description?: string;
  tags?: Tag[];
  metadata?: Metadata;
  promotionGate?: PromotionGate;
}

export interface ModelRepository {
  /** @throws ConflictError if the model exists. */
  create(model: NewModel): Promise<ModelRecord>;
  /** Sets (or, with `null`, removes) the model's promotion gate. @throws NotFoundError */
  setPromotionGate(model: string, gate: PromotionGate | null): Promise<ModelRecord>;
  /** Returns the model, creating it when missing. */
  ensure(model: { name: string; description?: string; tags?: Tag[] }): Promise<ModelRecord>;
  /** @throws NotFoundError */
  get(name: string): Promise<ModelRecord>;
  list(filter?: TagFilter): Promise<Page<ModelRecord>>;

  /**
   * Creates the next version (numbers allocated atomically per model). A `name`, when given, must be
   * unique within the model (ConflictError otherwise). The model is created if missing.
   */
  createVersion(
    model: string,
    init?: { name?: string; description?: string; tags?: Tag[]; metadata?: Metadata; runId?: string },
  ): Promise<ModelVersion>;
  /**
   * Resolves a number, a version name, a stage (`staging`, `production`, `archived` — the newest
   * archived), an alias or `latest` to one version. @throws NotFoundError naming what was asked for.
   */
  getVersion(model: string, ref: ModelVersionRef): Promise<ModelVersion>;
  /** @throws NotFoundError */
  getVersionById(id: string): Promise<ModelVersion>;
  /** Newest first. */
  listVersions(model: string, filter?: TagFilter & { stage?: ModelStage }): Promise<Page<ModelVersion>>;
  linkArtifact(
    modelVersionId: string,
    role: ModelArtifactRole,
    artifactVersion: Pick<ArtifactVersion, 'id' | 'name'>,
  ): Promise<void>;
  linkRun(modelVersionId: string, runId: string): Promise<void>;
  /**
   * Moves a version to a stage in one transaction, under the rules of `promotion-rules.ts`
   * (compare-and-set on `expectedHolder`, the production policy and the model's gate, checked in the
   * same transaction). Moving into `staging`/`production` while another version holds it throws
   * StageHeldError (a ConflictError) naming the holder, unless `force` or `expectedHolder` names it,
   * in which case the holder moves to `archived`. Every change (including the holder's) is recorded
   * in the stage history.
   */
  setStage(model: string, version: number, stage: ModelStage, options: PromoteOptions): Promise<StageChange[]>;
  /** Points `alias` at `version`, moving it off any other version atomically; recorded in history. */
  setAlias(model: string, alias: string, version: number, options: Omit<PromoteOptions, 'force'>): Promise<StageChange>;
  removeAlias(model: string, alias: string, options: Omit<PromoteOptions, 'force'>): Promise<StageChange>;
  /** Oldest first. */
  history(model: string, filter?: PageRequest): Promise<Page<StageChange>>;
}
