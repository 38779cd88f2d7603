import type { RemoteOpenOptions, RemoteStackline } from './api/remote-stackline.ts';
import { loadArtifactVersion } from './artifacts/load-artifact.ts';
import type { PipelineDefinition } from './dsl/pipeline.ts';
import type { NewModel } from './metadata/metadata-store.ts';
import { assertNames } from './metadata/store-rules.ts';
import type {
  ArtifactVersion,
  Metadata,
  ModelArtifactRole,
  ModelRecord,
  ModelStage,
  ModelVersion,
  ModelVersionRef,
  PromotionGate,
  StageChange,
  Tag,
} from './metadata/types.ts';
import { compareModelVersions, type VersionComparison } from './models/compare.ts';
import { currentActor, loadModelArtifact } from './models/model-context.ts';
import { type RunOptions, type RunResult, runPipelineLocally } from './runtime/local-orchestrator.ts';
import { validateRunOptions } from './runtime/run-options.ts';
import { Project, resolveHome, type StackRuntime } from './stacks/project.ts';

export interface SaveArtifactOptions {
  /** Materializer name; chosen from the value when omitted. */
  materializer?: string;
  tags?: Tag[];
  metadata?: Metadata;
  /** Link the new version to a model version (created as the next version when `version` is omitted). */
  model?: { name: string; version?: ModelVersionRef; role?: ModelArtifactRole };
}

/**
 * Stackline from scripts and notebooks: run pipelines, save and load artifacts outside
 * pipelines, and work the model control plane — against the active stack or a named one.
 *
 * @example
 * const sl = await Stackline.open();
 * const v = await sl.saveArtifact('holdout.rows', rows, { tags: ['source:manual'] });
 * const model = await sl.loadModelArtifact('iris_classifier', 'production');
 * await sl.close();
 */
export class Stackline {
  private constructor(
    private readonly project: Project,
    readonly stack: StackRuntime,
    private readonly actor: string,
  ) {}

  /**
   * Opens a stack directly (its stores, with this process's credentials), or — with `api` — connects
   * to a Stackline API and returns a {@link RemoteStackline} that does everything through it.
   */
  static open(options: RemoteOpenOptions): Promise<RemoteStackline>;
  static open(options?: { home?: string; stack?: string; actor?: string }): Promise<Stackline>;
  static async open(
    options: { home?: string; stack?: string; actor?: string } | RemoteOpenOptions = {},
  ): Promise<Stackline | RemoteStackline> {
    if ('api' in options && options.api) {
      const { RemoteStackline } = await import('./api/remote-stackline.ts');
      return RemoteStackline.connect(options);
    }
    return Stackline.openDirect(options as { home?: string; stack?: string; actor?: string });
  }

  private static async openDirect(options: { home?: string; stack?: string; actor?: string }): Promise<Stackline> {
    const project = await Project.open(options.home ?? resolveHome());
    try {
      const stack = await project.openStack(options.stack ?? project.activeStackName());
      return new Stackline(project, stack, options.actor ?? currentActor());
    } catch (error) {
      await project.close();
      throw error;
    }
  }

  /** Runs a pipeline on this stack with the local orchestrator. */
  async run(pipeline: PipelineDefinition, options: Omit<RunOptions, 'stackName'> = {}): Promise<RunResult> {
    validateRunOptions(options, pipeline.name);
    pipeline.parseParameters(options.params);
    return runPipelineLocally(
      pipeline,
      { ...this.stack, actor: this.actor },
      { actor: this.actor, ...options, stackName: this.stack.name },
    );
  }

  /** Saves a value as the next version of artifact `name`. */
  async saveArtifact(name: string, value: unknown, options: SaveArtifactOptions = {}): Promise<ArtifactVersion> {
    // Checked before anything is written: the store would refuse the record, after the blob.
    assertNames([['artifact', name], ...(options.model ? [['model', options.model.name] as const] : [])], options.tags);
    const { materializers, artifacts, metadata } = this.stack;
    const materializer = options.materializer ? materializers.get(options.materializer) : materializers.pick(value);
    // Resolve the model version before writing anything, so a bad reference leaves nothing behind.
    let modelVersion: ModelVersion | undefined;
    if (options.model) {
      modelVersion =
        options.model.version === undefined
          ? await metadata.models.createVersion(options.model.name)
          : await metadata.models.getVersion(options.model.name, options.model.version);
    }
    const stored = await materializer.save(value, { store: artifacts });
    const version = await metadata.artifacts.createVersion({
      name,
      contentHash: stored.contentHash,
      uri: stored.uri,
      size: stored.size,
      materializer: materializer.name,
      dataType: stored.dataType,
      metadata: options.metadata ?? {},
      tags: options.tags ?? [],
    });
    if (modelVersion) await metadata.models.linkArtifact(modelVersion.id, options.model?.role ?? 'data', version);
    return version;
  }

  /** Loads artifact `name` at a version number (default: latest). */
  async loadArtifact<T = unknown>(name: string, version: number | 'latest' = 'latest'): Promise<T> {
    const found = await this.stack.metadata.artifacts.getVersion(name, version);
    return (await loadArtifactVersion(this.stack.materializers, found, this.stack.artifacts)) as T;
  }

  getArtifactVersion(name: string, version: number | 'latest' = 'latest'): Promise<ArtifactVersion> {
    return this.stack.metadata.artifacts.getVersion(name, version);
  }

  /** Merges values (metrics, notes) into an artifact version's metadata. */
  async logArtifactMetadata(name: string, version: number | 'latest', values: Metadata): Promise<void> {
    const found = await this.stack.metadata.artifacts.getVersion(name, version);
    await this.stack.metadata.logMetadata({ kind: 'artifact_version', id: found.id }, values);
  }

  /** Loads an artifact linked to a model version picked by stage, number, name, alias or `latest`. */
  async loadModelArtifact<T = unknown>(model: string, version: ModelVersionRef, artifactName?: string): Promise<T> {
    return loadModelArtifact<T>(this.stack, await this.getModelVersion(model, version), artifactName);
  }

  /**
   * Creates a model explicitly (pipelines also create theirs on first use). With `promotionGate`,
   * a version goes to production only when its metric beats the holder's. @throws ConflictError if it exists
   */
  createModel(model: NewModel): Promise<ModelRecord> {
    return this.stack.metadata.models.create(model);
  }

  /** Sets a model's promotion gate, or removes it with `null`. */
  setPromotionGate(model: string, gate: PromotionGate | null): Promise<ModelRecord> {
    return this.stack.metadata.models.setPromotionGate(model, gate);
  }

  getModelVersion(model: string, version: ModelVersionRef): Promise<ModelVersion> {
    return this.stack.metadata.models.getVersion(model, version);
  }

  logModelMetadata(model: string, version: number, values: Metadata): Promise<void> {
    return this.getModelVersion(model, version).then((v) =>
      this.stack.metadata.logMetadata({ kind: 'model_version', id: v.id }, values),
    );
  }

  promote(
    model: string,
    version: number,
    stage: ModelStage,
    options: { force?: boolean; reason?: string; expectedHolder?: number | null } = {},
  ): Promise<StageChange[]> {
    // The actor is this client's, never a value in `options`.
    const { force, reason, expectedHolder } = options;
    return this.stack.metadata.models.setStage(model, version, stage, {
      actor: this.actor,
      ...(force === undefined ? {} : { force }),
      ...(reason === undefined ? {} : { reason }),
      ...(expectedHolder === undefined ? {} : { expectedHolder }),
    });
  }

  setAlias(model: string, alias: string, version: number, options: { reason?: string } = {}): Promise<StageChange> {
    return this.stack.metadata.models.setAlias(model, alias, version, {
      actor: this.actor,
      ...(options.reason === undefined ? {} : { reason: options.reason }),
    });
  }

  async compare(model: string, versions: ModelVersionRef[]): Promise<VersionComparison> {
    return compareModelVersions(await Promise.all(versions.map((v) => this.getModelVersion(model, v))));
  }

  async close(): Promise<void> {
    await this.stack.close();
    await this.project.close();
  }
}
