import type { z } from 'zod';
import type { Metadata, ModelArtifactRole, ModelVersionRef, Tag } from '../metadata/types.ts';

declare const VALUE_TYPE: unique symbol;

/**
 * A handle on one named output of one step invocation inside a pipeline body. It carries no data:
 * the value crosses a serialization boundary (the artifact store) before the consuming step sees
 * it. `T` is the output's type, checked against the consuming input at compile time.
 */
export interface OutputRef<T> {
  readonly kind: 'output-ref';
  readonly stepId: string;
  readonly output: string;
  /** Phantom: only for type checking. */
  readonly [VALUE_TYPE]?: T;
}

/** An output declared with options (materializer, artifact name, model link). */
export interface OutputOptions<S extends z.ZodType = z.ZodType> {
  schema: S;
  /** Materializer name (`json`, `string`, `binary`, `file`, `directory`, `stream` or a registered one). */
  materializer?: string;
  /** Artifact name; defaults to `<stepId>.<output>`. */
  artifact?: string;
  tags?: Tag[];
  /** Link each produced version to the run's model version in this role. */
  modelRole?: ModelArtifactRole;
  description?: string;
}

export type OutputDeclaration = z.ZodType | OutputOptions;
export type OutputDeclarations = Record<string, OutputDeclaration>;
export type InputDeclarations = Record<string, z.ZodType>;

export type SchemaOf<D> = D extends OutputOptions<infer S> ? S : D extends z.ZodType ? D : never;

/** Input values as the step function receives them. */
export type InputValues<I extends InputDeclarations> = { [K in keyof I]: z.output<I[K]> };
/** What a pipeline body passes for a step's inputs. */
export type InputRefs<I extends InputDeclarations> = { [K in keyof I]: OutputRef<z.output<I[K]>> };
/** What the step function must return. */
export type OutputValues<O extends OutputDeclarations> = { [K in keyof O]: z.input<SchemaOf<O[K]>> };
/** What calling a step inside a pipeline body returns. */
export type OutputRefs<O extends OutputDeclarations> = { [K in keyof O]: OutputRef<z.output<SchemaOf<O[K]>>> };

export interface RetryPolicy {
  /** Extra attempts after the first (0 = no retry). */
  maxRetries: number;
  /** Delay before the first retry. Default 1000 ms. */
  backoffMs?: number;
  /** Multiplier per retry. Default 2. */
  backoffRate?: number;
  /** Upper bound on one delay. Default 60 000 ms. */
  maxBackoffMs?: number;
}

export interface StepResources {
  cpu?: number;
  memoryMb?: number;
  gpu?: number;
  ephemeralStorageMb?: number;
}

/** A model version a step reads at run time (resolved when the step runs; part of its cache key). */
export interface ModelRef {
  model: string;
  /** `production`, `staging`, `latest`, a version number, a version name or an alias. Default `latest`. */
  version?: ModelVersionRef;
}

export interface StepOptions {
  /** Reuse outputs of an identical earlier step run. Default true. */
  cache?: boolean;
  /** A number means `{ maxRetries: n }`. Default no retries. */
  retries?: number | RetryPolicy;
  /** Fails the attempt after this long. */
  timeoutMs?: number;
  /**
   * Where an attempt runs on the local stack. `worker`: in a worker thread that is terminated when
   * the attempt times out or the run is cancelled, so a step that ignores its `signal` cannot go on
   * writing (see "Run lifecycle" in the README). The worker imports the step's module again: the
   * step must be defined at the top level of a module that does not start runs when imported.
   * Default `in-process`. On Lambda and ECS the process is the unit that is stopped.
   */
  isolation?: 'in-process' | 'worker';
  resources?: StepResources;
  /** Where the step runs on AWS stacks. Default `lambda`. Ignored by the local orchestrator. */
  runner?: 'lambda' | 'ecs';
  tags?: Tag[];
  /**
   * Bump to invalidate the cache when code the step calls (not its own body) changed. A number is
   * taken as its decimal string (`2` and `'2'` are the same version).
   */
  codeVersion?: string | number;
  /** A model version this step reads (see {@link StepContext.model}). */
  model?: ModelRef;
}

export interface StepConfig<I extends InputDeclarations, P extends z.ZodType, O extends OutputDeclarations>
  extends StepOptions {
  /** Stable identity of the step: part of artifact names and cache keys. */
  name: string;
  description?: string;
  inputs?: I;
  parameters?: P;
  outputs: O;
}

/** Per-invocation options in a pipeline body. */
export interface InvocationOptions<P> {
  /** Invocation id, required when one pipeline calls the same step twice. Default: the step name. */
  id?: string;
  params?: P;
  /** Run after these step ids even without a data dependency. */
  after?: string[];
  /** Overrides the step's `cache` option for this invocation. */
  cache?: boolean;
}

export interface LoadedModelVersion {
  model: string;
  number: number;
  id: string;
  name?: string;
  stage?: string;
  metadata: Metadata;
  /** Loads the linked artifact with this name (or the first artifact linked in role `model`). */
  loadArtifact<T = unknown>(artifactName?: string): Promise<T>;
  /** Merges values into this model version's metadata (e.g. inference results). */
  logMetadata(values: Metadata): Promise<void>;
}

/** The model control plane as a step sees it (promotion gates, comparisons). */
export interface ModelControl {
  /** Resolves a version by number, name, stage, alias or `latest`; undefined when nothing matches. */
  find(model: string, ref: ModelVersionRef): Promise<LoadedModelVersion | undefined>;
  /**
   * Moves a version to a stage (see `stackline model promote`), recorded as this pipeline's run.
   * `expectedHolder` makes it a compare-and-set: read the holder, decide, and promote only if it is
   * still the one you read (a StageHeldError otherwise: read again and decide again).
   */
  promote(
    model: string,
    version: number,
    stage: 'staging' | 'production' | 'archived',
    options?: { force?: boolean; reason?: string; expectedHolder?: number | null },
  ): Promise<void>;
}

/** What a running step can see and do besides its inputs and parameters. */
export interface StepContext {
  runId: string;
  stepRunId: string;
  stepId: string;
  pipeline: string;
  /** 1 for the first attempt. */
  attempt: number;
  /** Aborted on timeout or cancellation: pass it to long-running work. */
  signal: AbortSignal;
  /** A scratch directory for this attempt. */
  tmpDir: string;
  log(message: string): void;
  /** Merged into the step run's metadata. */
  logMetadata(values: Metadata): void;
  /** Merged into the metadata of the artifact version written for `output`. */
  logArtifactMetadata(output: string, values: Metadata): void;
  /** The resolved model version, when the step declares `model`. */
  model?: LoadedModelVersion;
  /** The run's own model version (pipelines declaring `model`): log metrics on it. */
  runModelVersion?: RunModelVersion;
  /** The model control plane. */
  models: ModelControl;
}

export interface RunModelVersion {
  model: string;
  number: number;
  id: string;
  logMetadata(values: Metadata): Promise<void>;
}
