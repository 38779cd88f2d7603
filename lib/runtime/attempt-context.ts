import type { LoadedModelVersion, ModelControl, RunModelVersion, StepContext } from '../dsl/types.ts';

/** The data an attempt's context carries; `signal` and `tmpDir` are made on first read. */
export interface AttemptContextFields extends Omit<StepContext, 'signal' | 'tmpDir' | 'model' | 'runModelVersion'> {
  model: LoadedModelVersion | undefined;
  runModelVersion: RunModelVersion | undefined;
}

/**
 * The `context` a step attempt receives. A class rather than an object literal with getters: in
 * Node 20's V8 each literal with accessors gets a hidden class of its own, one more per attempt,
 * which kept young objects alive through scavenges and grew a run's heap with its step count
 * (see lib/util/merge-records.ts). Here the accessors sit once on the prototype.
 */
export class AttemptContext implements StepContext {
  readonly runId: string;
  readonly stepRunId: string;
  readonly stepId: string;
  readonly pipeline: string;
  readonly attempt: number;
  readonly log: StepContext['log'];
  readonly logMetadata: StepContext['logMetadata'];
  readonly logArtifactMetadata: StepContext['logArtifactMetadata'];
  readonly model: LoadedModelVersion | undefined;
  readonly runModelVersion: RunModelVersion | undefined;
  readonly models: ModelControl;
  readonly #signal: () => AbortSignal;
  readonly #tmpDir: () => string;

  constructor(fields: AttemptContextFields, signal: () => AbortSignal, tmpDir: () => string) {
    this.runId = fields.runId;
    this.stepRunId = fields.stepRunId;
    this.stepId = fields.stepId;
    this.pipeline = fields.pipeline;
    this.attempt = fields.attempt;
    this.log = fields.log;
    this.logMetadata = fields.logMetadata;
    this.logArtifactMetadata = fields.logArtifactMetadata;
    this.model = fields.model;
    this.runModelVersion = fields.runModelVersion;
    this.models = fields.models;
    this.#signal = signal;
    this.#tmpDir = tmpDir;
  }

  /** Aborted on timeout or cancellation; made when first read (most steps never do). */
  get signal(): AbortSignal {
    return this.#signal();
  }

  /** A scratch directory for this attempt, created when first read. */
  get tmpDir(): string {
    return this.#tmpDir();
  }
}
