/**
 * Routes the dashboard reads besides the core table: the caller's identity (to offer promotion
 * only to release managers), cache explanations and artifact previews. Plain GETs, open to members.
 */

import * as d from './dashboard-schemas.ts';
import * as dashboard from './handlers/dashboard.ts';
import type { ApiRoute } from './routes.ts';
import * as s from './schemas.ts';

export const DASHBOARD_ROUTES: readonly ApiRoute[] = [
  {
    method: 'get',
    path: '/whoami',
    operationId: 'whoAmI',
    summary: 'The authenticated caller: actor and role',
    tag: 'identity',
    response: d.WhoAmISchema,
    handler: (ctx) => dashboard.whoAmI(ctx),
  },
  {
    method: 'get',
    path: '/runs/{runId}/explain',
    operationId: 'explainRun',
    summary: 'Why each step run hit or missed the cache',
    tag: 'runs',
    params: s.RunParams,
    response: d.RunExplanationSchema,
    handler: (ctx, i) => dashboard.explainRunSteps(ctx, i.params),
  },
  {
    method: 'get',
    path: '/runs/{runId}/artifacts',
    operationId: 'listRunArtifacts',
    summary: "The artifact versions a run's steps read and wrote",
    tag: 'runs',
    params: s.RunParams,
    response: d.RunArtifactsSchema,
    handler: (ctx, i) => dashboard.listRunArtifacts(ctx, i.params),
  },
  {
    method: 'get',
    path: '/artifacts/{artifact}/versions/{version}/preview',
    operationId: 'previewArtifactVersion',
    summary: 'A bounded preview: JSON, text or rows; size and hash for binaries',
    tag: 'artifacts',
    params: s.ArtifactVersionParams,
    response: d.ArtifactPreviewSchema,
    handler: (ctx, i) => dashboard.previewArtifactVersion(ctx, i.params),
  },
];
