/**
 * Stackline from scripts and notebooks through a Stackline API (`Stackline.open({ api })`): every
 * read and change goes through the API, artifact bytes through the short-lived links it hands out,
 * so the process needs API credentials only (a bearer token for `stackline serve`, or SigV4 with
 * the default AWS credential chain for API Gateway) — no S3 or DynamoDB permissions.
 */

import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { z } from 'zod';
import { loadArtifactVersion } from '../artifacts/load-artifact.ts';
import { createMaterializerRegistry } from '../artifacts/registry.ts';
import type { PipelineDefinition } from '../dsl/pipeline.ts';
import { NotFoundError } from '../errors.ts';
import type { ModelStage, ModelVersionRef } from '../metadata/types.ts';
import { connectionFor } from '../stacks/api-connection.ts';
import type { StacklineApiClient } from './client.ts';
import { apiClientFor } from './connect.ts';
import { DownloadLinkArtifactStore } from './download-link-store.ts';
import type * as s from './schemas.ts';

type Run = z.output<typeof s.RunSchema>;
type ArtifactVersionWire = z.output<typeof s.ArtifactVersionSchema>;

/** How to reach the API: its URL and, for `stackline serve`, a bearer token (else SigV4). */
export interface RemoteOpenOptions {
  api: string;
  token?: string;
  /** For SigV4 on a custom domain: the API's region (API Gateway URLs carry theirs). */
  region?: string;
}

const TERMINAL: ReadonlySet<string> = new Set(['completed', 'failed', 'cancelled']);

/**
 * The remote client. Read and control only: it lists and loads, starts runs and promotes; artifacts
 * are written by pipeline runs, not uploaded through the API.
 *
 * @example
 * const sl = await Stackline.open({ api: 'http://127.0.0.1:8787', token: process.env.STACKLINE_TOKEN });
 * const { items } = await sl.listRuns({ pipeline: 'iris_training', limit: 5 });
 * const model = await sl.loadModelArtifact('iris_classifier', 'production');
 */
export class RemoteStackline {
  readonly kind = 'remote' as const;
  private readonly materializers = createMaterializerRegistry({ cacheDir: join(tmpdir(), 'stackline', 'remote') });
  private readonly store = new DownloadLinkArtifactStore();

  private constructor(readonly api: StacklineApiClient) {}

  /** A remote client over an existing API client (the CLI's connection). */
  static over(api: StacklineApiClient): RemoteStackline {
    return new RemoteStackline(api);
  }

  static async connect(options: RemoteOpenOptions): Promise<RemoteStackline> {
    const token = options.token ?? process.env.STACKLINE_TOKEN;
    return new RemoteStackline(
      await apiClientFor(connectionFor(options.api, { token, sigv4: !token, region: options.region })),
    );
  }

  listRuns(query: Parameters<StacklineApiClient['listRuns']>[0] = {}) {
    return this.api.listRuns(query);
  }

  /**
   * Starts a run through `POST /runs`. Given the pipeline definition, its compiled hash goes along
   * and the API refuses (409) when it is not the deployed one.
   */
  async run(
    pipeline: PipelineDefinition | string,
    options: { params?: Record<string, unknown>; tags?: string[]; cache?: boolean; stack?: string } = {},
  ) {
    const name = typeof pipeline === 'string' ? pipeline : pipeline.name;
    const definitionSha256 =
      typeof pipeline === 'string'
        ? undefined
        : (await import('../orchestrators/deployed-pipelines.ts')).pipelineDefinitionHash(pipeline);
    return this.api.startRun({
      pipeline: name,
      ...options,
      ...(definitionSha256 === undefined ? {} : { definitionSha256 }),
    });
  }

  /** Polls a run until it has ended; `onPoll` sees each reading. */
  async waitForRun(runId: string, options: { intervalMs?: number; onPoll?: (run: Run) => void } = {}): Promise<Run> {
    for (;;) {
      const { run } = await this.api.getRun({ runId });
      options.onPoll?.(run);
      if (TERMINAL.has(run.status)) return run;
      await new Promise((r) => setTimeout(r, options.intervalMs ?? 1000));
    }
  }

  getArtifactVersion(name: string, version: number | 'latest' = 'latest'): Promise<ArtifactVersionWire> {
    if (version === 'latest') {
      return this.api.listArtifactVersions({ artifact: name }, { limit: 1 }).then((page) => {
        const newest = page.items[0];
        if (!newest) throw new NotFoundError(`Artifact "${name}" has no versions.`);
        return newest;
      });
    }
    return this.api.getArtifactVersion({ artifact: name, version });
  }

  /** Loads an artifact version's value: its bytes come through the API's download link. */
  async loadArtifact<T = unknown>(name: string, version: number | 'latest' = 'latest'): Promise<T> {
    return this.loadVersion<T>(await this.getArtifactVersion(name, version));
  }

  getModelVersion(model: string, version: ModelVersionRef) {
    return this.api.getModelVersion({ model, version: String(version) });
  }

  /** Loads an artifact linked to a model version (by name, else its `model`-role artifact). */
  async loadModelArtifact<T = unknown>(model: string, version: ModelVersionRef, artifactName?: string): Promise<T> {
    const found = await this.getModelVersion(model, version);
    const link = artifactName
      ? found.artifacts.find((a) => a.artifactName === artifactName)
      : (found.artifacts.find((a) => a.role === 'model') ?? found.artifacts[0]);
    if (!link) {
      throw new NotFoundError(
        `Model "${model}" version ${found.number} has no linked artifact ${artifactName ? `"${artifactName}"` : 'in role "model"'}.`,
      );
    }
    let cursor: string | undefined;
    do {
      const page = await this.api.listArtifactVersions(
        { artifact: link.artifactName },
        { limit: 1000, ...(cursor ? { cursor } : {}) },
      );
      const artifact = page.items.find((v) => v.id === link.artifactVersionId);
      if (artifact) return this.loadVersion<T>(artifact);
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    throw new NotFoundError(`Artifact version ${link.artifactVersionId} of "${link.artifactName}" is gone.`);
  }

  /** Moves a version into a stage; production goes to its own route (release managers). */
  promote(
    model: string,
    version: number,
    stage: ModelStage,
    options: { force?: boolean; reason?: string; expectedHolder?: number | null } = {},
  ) {
    return stage === 'production'
      ? this.api.promoteToProduction({ model, version }, options)
      : this.api.setModelStage({ model, version }, { stage, ...options });
  }

  setAlias(model: string, alias: string, version: number, options: { reason?: string } = {}) {
    return this.api.setModelAlias({ model, alias }, { version, ...options });
  }

  logModelMetadata(model: string, version: number, values: Record<string, unknown>) {
    return this.api.patchModelVersionMetadata({ model, version }, { values });
  }

  compare(model: string, versions: ModelVersionRef[]) {
    return this.api.compareModelVersions({ model }, versions.map(String));
  }

  /** Nothing to release: every call is its own HTTP request. */
  async close(): Promise<void> {}

  private async loadVersion<T>(version: ArtifactVersionWire): Promise<T> {
    const link = await this.api.getArtifactDownloadLink({ artifact: version.name, version: version.version });
    this.store.link(version.contentHash, link.url);
    return (await loadArtifactVersion(this.materializers, version, this.store)) as T;
  }
}
