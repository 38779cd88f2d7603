import { userInfo } from 'node:os';
import type { ArtifactStore } from '../artifacts/artifact-store.ts';
import { loadArtifactVersion } from '../artifacts/load-artifact.ts';
import type { MaterializerRegistry } from '../artifacts/materializers.ts';
import type { PipelineModel } from '../dsl/pipeline.ts';
import type { LoadedModelVersion, ModelControl, RunModelVersion } from '../dsl/types.ts';
import { NotFoundError } from '../errors.ts';
import type { MetadataStore } from '../metadata/metadata-store.ts';
import { PipelineNotPromoterError } from '../metadata/promotion-rules.ts';
import { MODEL_STAGES, type ModelVersion } from '../metadata/types.ts';

export interface ModelStores {
  metadata: MetadataStore;
  artifacts: ArtifactStore;
  materializers: MaterializerRegistry;
}

/** Loads the artifact linked to a model version by artifact name, or its first `model`-role artifact. */
export async function loadModelArtifact<T>(
  stores: ModelStores,
  version: ModelVersion,
  artifactName?: string,
): Promise<T> {
  const link = artifactName
    ? version.artifacts.find((a) => a.artifactName === artifactName)
    : (version.artifacts.find((a) => a.role === 'model') ?? version.artifacts[0]);
  if (!link) {
    const linked = version.artifacts.map((a) => `${a.artifactName} (${a.role})`).join(', ') || 'none';
    throw new NotFoundError(
      `Model "${version.model}" version ${version.number} has no linked artifact ${artifactName ? `"${artifactName}"` : 'in role "model"'} (linked: ${linked}).`,
      { context: { model: version.model, version: version.number, artifact: artifactName } },
    );
  }
  const artifact = await stores.metadata.artifacts.getVersionById(link.artifactVersionId);
  return (await loadArtifactVersion(stores.materializers, artifact, stores.artifacts)) as T;
}

export function toLoadedModelVersion(stores: ModelStores, version: ModelVersion): LoadedModelVersion {
  return {
    model: version.model,
    number: version.number,
    id: version.id,
    ...(version.name === undefined ? {} : { name: version.name }),
    ...(version.stage === undefined ? {} : { stage: version.stage }),
    metadata: version.metadata,
    loadArtifact: (artifactName) => loadModelArtifact(stores, version, artifactName),
    logMetadata: (values) => stores.metadata.logMetadata({ kind: 'model_version', id: version.id }, values),
  };
}

/** Who a step acts as and what its stack lets it do: see {@link createModelControl}. */
export interface StepIdentity {
  pipeline: string;
  runId: string;
  /** The stack's `promoters`: pipelines that may promote to production (`*` = all). */
  promoters: readonly string[];
  /**
   * The environment's API: promotions go there, signed with the runner's AWS identity, and the API
   * applies the promoters. Default: `STACKLINE_API_URL`, or the SSM parameter `STACKLINE_API_URL_PARAMETER`
   * names (set on AWS by the CDK runner stack).
   */
  apiUrl?: string;
}

/** The actor recorded on stage changes a pipeline step makes: the pipeline and its run, never a caller's value. */
export function pipelineActor(identity: Pick<StepIdentity, 'pipeline' | 'runId'>): string {
  return `pipeline:${identity.pipeline} run ${identity.runId}`;
}

/** Whether a stack's or environment's `promoters` let `pipeline` promote to production (`*` = all). */
export function isPromoter(promoters: readonly string[], pipeline: string): boolean {
  return promoters.some((name) => name === '*' || name === pipeline);
}

/**
 * The model control plane handed to steps as `context.models`. A step promotes under the runner's
 * identity: the change is recorded as {@link pipelineActor} with the run id, and goes through the
 * store's promotion rules with the run as `runId` (so the gate may promote its own run's version
 * before the run completes). Only pipelines in the stack's `promoters` may promote to production.
 */
export function createModelControl(stores: ModelStores, identity: StepIdentity): ModelControl {
  const actor = pipelineActor(identity);
  return {
    async find(model, ref) {
      try {
        return toLoadedModelVersion(stores, await stores.metadata.models.getVersion(model, ref));
      } catch (error) {
        if (error instanceof NotFoundError) return undefined;
        throw error;
      }
    },
    async promote(model, version, stage, options = {}) {
      if (identity.apiUrl || process.env.STACKLINE_API_URL || process.env.STACKLINE_API_URL_PARAMETER) {
        // Loaded only on AWS: local runs never pay for the signer.
        const { promoteThroughApi, resolveRunnerApiUrl } = await import('../api/runner-promotion.ts');
        const apiUrl = identity.apiUrl ?? (await resolveRunnerApiUrl());
        if (apiUrl) return promoteThroughApi(apiUrl, identity.runId, { model, version, stage, options });
      }
      if (stage === 'production' && !isPromoter(identity.promoters, identity.pipeline)) {
        throw new PipelineNotPromoterError(
          `Pipeline "${identity.pipeline}" may not promote to production on this stack (promoters: ${identity.promoters.length === 0 ? 'none' : identity.promoters.join(', ')}); add it to the stack's "promoters" (for an AWS environment: "promoters" in cdk.json) or promote by hand`,
          { context: { pipeline: identity.pipeline, runId: identity.runId, model, version, stage } },
        );
      }
      await stores.metadata.models.setStage(model, version, stage, { ...options, actor, runId: identity.runId });
    },
  };
}

/**
 * Who is acting in direct (no API) mode: `STACKLINE_USER`, else the OS user. Recorded on runs and on
 * the stage changes the CLI and the `Stackline` client make on a store they open themselves; the one
 * place this is decided. Pipeline steps never use it for stage changes (see {@link pipelineActor}).
 */
export function currentActor(env: NodeJS.ProcessEnv = process.env): string {
  return env.STACKLINE_USER ?? env.USER ?? env.USERNAME ?? osUserName();
}

function osUserName(): string {
  try {
    return userInfo().username;
  } catch {
    return 'unknown';
  }
}

function isExistingRef(ref: string): boolean {
  return ref === 'latest' || (MODEL_STAGES as readonly string[]).includes(ref) || /^\d+$/.test(ref);
}

/**
 * The model version a pipeline run works on: a new version per run by default; an existing one
 * when the pipeline names a stage, number or `latest`; a named version (created on first use)
 * otherwise.
 */
export async function prepareRunModelVersion(
  stores: ModelStores,
  model: PipelineModel,
  runId: string,
  tags: string[],
): Promise<RunModelVersion> {
  await stores.metadata.models.ensure({
    name: model.name,
    ...(model.description === undefined ? {} : { description: model.description }),
    ...(model.tags === undefined ? {} : { tags: model.tags }),
  });
  let version: ModelVersion;
  if (model.version === undefined) {
    version = await stores.metadata.models.createVersion(model.name, { runId, tags });
  } else if (isExistingRef(model.version)) {
    version = await stores.metadata.models.getVersion(
      model.name,
      /^\d+$/.test(model.version) ? Number(model.version) : model.version,
    );
  } else {
    try {
      version = await stores.metadata.models.getVersion(model.name, model.version);
    } catch (error) {
      if (!(error instanceof NotFoundError)) throw error;
      version = await stores.metadata.models.createVersion(model.name, { name: model.version, runId, tags });
    }
  }
  await stores.metadata.models.linkRun(version.id, runId);
  await stores.metadata.runs.setModelVersion(runId, version.id);
  const id = version.id;
  return {
    model: version.model,
    number: version.number,
    id,
    logMetadata: (values) => stores.metadata.logMetadata({ kind: 'model_version', id }, values),
  };
}
