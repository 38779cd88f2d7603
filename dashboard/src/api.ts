/**
 * The dashboard's only data source: the platform API, at the same origin as the page (relative
 * URLs, so the page works at `/` locally and under an API Gateway stage path). Types come from the
 * API's zod schemas (type-only imports: nothing of the server is bundled).
 *
 * The bearer token arrives once, in the URL fragment (`#token=…`, never sent to a server, not in
 * access logs), is moved to sessionStorage (this tab only, gone when it closes) and removed from the
 * address bar. Behind `stackline dashboard --api` there is no token: the local proxy signs requests.
 */
import type { z } from 'zod';
import type * as d from '../../lib/api/dashboard-schemas.ts';
import type * as s from '../../lib/api/schemas.ts';

export type Run = z.output<typeof s.RunSchema>;
export type StepRun = z.output<typeof s.StepRunSchema>;
export type RunDetail = z.output<typeof s.RunDetailSchema>;
export type RunPage = z.output<typeof s.RunPageSchema>;
export type PipelineList = z.output<typeof s.PipelineListSchema>;
export type ArtifactVersion = z.output<typeof s.ArtifactVersionSchema>;
export type ArtifactPage = z.output<typeof s.ArtifactPageSchema>;
export type ArtifactVersionPage = z.output<typeof s.ArtifactVersionPageSchema>;
export type Lineage = z.output<typeof s.LineageSchema>;
export type DownloadLink = z.output<typeof s.DownloadLinkSchema>;
export type ModelPage = z.output<typeof s.ModelPageSchema>;
export type ModelDetail = z.output<typeof s.ModelDetailSchema>;
export type ModelVersion = z.output<typeof s.ModelVersionSchema>;
export type ModelVersionPage = z.output<typeof s.ModelVersionPageSchema>;
export type StageChangePage = z.output<typeof s.StageChangePageSchema>;
export type Comparison = z.output<typeof s.ComparisonSchema>;
export type StageChanges = z.output<typeof s.StageChangesSchema>;
export type WhoAmI = z.output<typeof d.WhoAmISchema>;
export type RunExplanation = z.output<typeof d.RunExplanationSchema>;
export type StepExplanation = z.output<typeof d.StepExplanationSchema>;
export type ArtifactPreview = z.output<typeof d.ArtifactPreviewSchema>;
export type RunArtifacts = z.output<typeof d.RunArtifactsSchema>;

const TOKEN_KEY = 'stackline.token';

/** Moves a `#token=…` fragment into sessionStorage and out of the address bar. */
export function adoptTokenFromFragment(): void {
  const match = /(?:^#|&)token=([^&]+)/.exec(window.location.hash);
  if (!match) return;
  sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]!));
  history.replaceState(null, '', `${window.location.pathname}${window.location.search}#/runs`);
}

/** An API answer that was not 2xx, with the API's JSON error message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Calls the API: `path` without a leading slash, relative to the page. */
export async function api<T>(path: string, init: { method?: string; body?: unknown } = {}): Promise<T> {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const res = await fetch(path.replace(/^\/+/, ''), {
    method: init.method ?? 'GET',
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
  });
  const json = await res.json().catch(() => undefined);
  if (!res.ok) {
    const message = (json as { error?: { message?: string } } | undefined)?.error?.message ?? `HTTP ${res.status}`;
    throw new ApiError(res.status, message);
  }
  return json as T;
}

export const enc = encodeURIComponent;

/** `query({ a: 1, b: undefined })` → `?a=1`. */
export function query(values: Record<string, string | number | undefined>): string {
  const q = new URLSearchParams(
    Object.entries(values)
      .filter(([, v]) => v !== undefined && v !== '')
      .map(([k, v]) => [k, String(v)]),
  ).toString();
  return q ? `?${q}` : '';
}
