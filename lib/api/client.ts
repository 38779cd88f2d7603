import type { z } from 'zod';
import { StacklineError } from '../errors.ts';
import * as d from './dashboard-schemas.ts';
import { requestApi } from './request.ts';
import { API_ROUTES } from './routes.ts';
import * as s from './schemas.ts';

export { ApiRequestError } from './request.ts';

/** Query strings take numbers too; they are sent as their decimal text. */
type Query<T extends z.ZodType> = { [K in keyof z.input<T>]?: string | number };
type Params<T extends z.ZodType> = { [K in keyof z.input<T>]: string | number };

/**
 * A typed client of the Stackline API, from the same zod schemas and route table as the server:
 * inputs are typed from the request schemas, and every response is parsed with its response schema.
 *
 * @example
 * const api = new StacklineApiClient({ url: 'http://127.0.0.1:8787', token: process.env.STACKLINE_TOKEN! });
 * const { items } = await api.listRuns({ pipeline: 'iris_training', status: 'completed', limit: 5 });
 * const production = await api.getModelVersion({ model: 'iris_classifier', version: 'production' });
 */
export class StacklineApiClient {
  private readonly url: string;
  private readonly token: string | undefined;
  private readonly fetch: typeof fetch;
  private readonly headers: Record<string, string>;

  /**
   * @param options.fetch e.g. `createSigV4Fetch()` for an API Gateway deployment (AWS_IAM)
   * @param options.headers sent with every request (the step runner names its run in `x-stackline-run`)
   */
  constructor(options: { url: string; token?: string; fetch?: typeof fetch; headers?: Record<string, string> }) {
    this.url = options.url.replace(/\/+$/, '');
    this.token = options.token;
    this.fetch = options.fetch ?? globalThis.fetch;
    this.headers = options.headers ?? {};
  }

  private async call<R extends z.ZodType>(
    operationId: string,
    response: R,
    input: { params?: Record<string, string | number>; query?: Record<string, unknown>; body?: unknown } = {},
  ): Promise<z.output<R>> {
    const route = API_ROUTES.find((r) => r.operationId === operationId);
    if (!route) throw new StacklineError(`No API operation ${operationId}`);
    const endpoint = {
      url: this.url,
      fetch: this.fetch,
      headers: this.headers,
      ...(this.token ? { token: this.token } : {}),
    };
    const json = await requestApi(endpoint, { method: route.method, path: route.path, ...input });
    return response.parse(json);
  }

  listStacks(query: Query<typeof s.TagPageQuerySchema> = {}) {
    return this.call('listStacks', s.StackPageSchema, { query });
  }
  getStack(params: Params<typeof s.StackParams>) {
    return this.call('getStack', s.StackSchema, { params });
  }
  listPipelines() {
    return this.call('listPipelines', s.PipelineListSchema);
  }
  listRuns(query: Query<typeof s.RunListQuery> = {}) {
    return this.call('listRuns', s.RunPageSchema, { query });
  }
  startRun(body: z.input<typeof s.StartRunRequestSchema>) {
    return this.call('startRun', s.StartedRunSchema, { body });
  }
  getRun(params: Params<typeof s.RunParams>) {
    return this.call('getRun', s.RunDetailSchema, { params });
  }
  listStepRuns(params: Params<typeof s.RunParams>) {
    return this.call('listStepRuns', s.StepRunListSchema, { params });
  }
  getStepLogs(params: Params<typeof s.StepRunParams>) {
    return this.call('getStepLogs', s.StepLogsSchema, { params });
  }
  patchRunMetadata(params: Params<typeof s.RunParams>, body: z.input<typeof s.MetadataPatchSchema>) {
    return this.call('patchRunMetadata', s.OkSchema, { params, body });
  }
  listArtifacts(query: Query<typeof s.TagPageQuerySchema> = {}) {
    return this.call('listArtifacts', s.ArtifactPageSchema, { query });
  }
  listArtifactVersions(params: Params<typeof s.ArtifactParams>, query: Query<typeof s.TagPageQuerySchema> = {}) {
    return this.call('listArtifactVersions', s.ArtifactVersionPageSchema, { params, query });
  }
  getArtifactVersion(params: Params<typeof s.ArtifactVersionParams>) {
    return this.call('getArtifactVersion', s.ArtifactVersionSchema, { params });
  }
  getArtifactLineage(params: Params<typeof s.ArtifactVersionParams>) {
    return this.call('getArtifactLineage', s.LineageSchema, { params });
  }
  getArtifactDownloadLink(params: Params<typeof s.ArtifactVersionParams>) {
    return this.call('getArtifactDownloadLink', s.DownloadLinkSchema, { params });
  }
  patchArtifactVersionMetadata(
    params: Params<typeof s.ArtifactVersionParams>,
    body: z.input<typeof s.MetadataPatchSchema>,
  ) {
    return this.call('patchArtifactVersionMetadata', s.OkSchema, { params, body });
  }
  addArtifactVersionTags(params: Params<typeof s.ArtifactVersionParams>, body: z.input<typeof s.TagsRequestSchema>) {
    return this.call('addArtifactVersionTags', s.ArtifactVersionSchema, { params, body });
  }
  listModels(query: Query<typeof s.TagPageQuerySchema> = {}) {
    return this.call('listModels', s.ModelPageSchema, { query });
  }
  getModel(params: Params<typeof s.ModelParams>) {
    return this.call('getModel', s.ModelDetailSchema, { params });
  }
  listModelVersions(params: Params<typeof s.ModelParams>, query: Query<typeof s.ModelVersionListQuery> = {}) {
    return this.call('listModelVersions', s.ModelVersionPageSchema, { params, query });
  }
  getModelVersion(params: Params<typeof s.ModelVersionRefParams>) {
    return this.call('getModelVersion', s.ModelVersionSchema, { params });
  }
  setModelStage(params: Params<typeof s.ModelVersionNumberParams>, body: z.input<typeof s.StageRequestSchema>) {
    return this.call('setModelStage', s.StageChangesSchema, { params, body });
  }
  promoteToProduction(
    params: Params<typeof s.ModelVersionNumberParams>,
    body: z.input<typeof s.ProductionRequestSchema> = {},
  ) {
    return this.call('promoteToProduction', s.StageChangesSchema, { params, body });
  }
  patchModelVersionMetadata(
    params: Params<typeof s.ModelVersionNumberParams>,
    body: z.input<typeof s.MetadataPatchSchema>,
  ) {
    return this.call('patchModelVersionMetadata', s.OkSchema, { params, body });
  }
  setModelAlias(params: Params<typeof s.AliasParams>, body: z.input<typeof s.AliasRequestSchema>) {
    return this.call('setModelAlias', s.StageChangeSchema, { params, body });
  }
  removeModelAlias(params: Params<typeof s.AliasParams>, query: Query<typeof s.AliasRemoveQuery> = {}) {
    return this.call('removeModelAlias', s.StageChangeSchema, { params, query });
  }
  getModelHistory(params: Params<typeof s.ModelParams>, query: Query<typeof s.PageQuerySchema> = {}) {
    return this.call('getModelHistory', s.StageChangePageSchema, { params, query });
  }
  compareModelVersions(params: Params<typeof s.ModelParams>, versions: Array<string | number>) {
    return this.call('compareModelVersions', s.ComparisonSchema, { params, query: { versions: versions.join(',') } });
  }
  whoAmI() {
    return this.call('whoAmI', d.WhoAmISchema);
  }
  explainRun(params: Params<typeof s.RunParams>) {
    return this.call('explainRun', d.RunExplanationSchema, { params });
  }
  listRunArtifacts(params: Params<typeof s.RunParams>) {
    return this.call('listRunArtifacts', d.RunArtifactsSchema, { params });
  }
  previewArtifactVersion(params: Params<typeof s.ArtifactVersionParams>) {
    return this.call('previewArtifactVersion', d.ArtifactPreviewSchema, { params });
  }
}
