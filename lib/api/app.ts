import { Readable } from 'node:stream';
import { createRoute, OpenAPIHono } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { z } from 'zod';
import type { ArtifactStore } from '../artifacts/artifact-store.ts';
import { ValidationError } from '../errors.ts';
import type { MetadataStore, StackRepository } from '../metadata/metadata-store.ts';
import { type Caller, DEFAULT_PROTECTED_ALIASES } from './caller.ts';
import type { ApiContext, DownloadLinkIssuer, RunStarter } from './context.ts';
import type { SignedLocalDownloadLinks } from './download-links.ts';
import { httpErrorFor } from './http-errors.ts';
import { API_ROUTES } from './routes.ts';
import { ApiErrorSchema, DownloadParams, DownloadQuery } from './schemas.ts';
import { serveDashboard } from './static-dashboard.ts';

export interface ApiAppOptions {
  metadata: MetadataStore;
  artifacts: ArtifactStore;
  stacks: StackRepository;
  downloads: DownloadLinkIssuer;
  /** Under `stackline serve`: serve `GET /downloads/{contentHash}` for the links it signs. */
  localDownloads?: SignedLocalDownloadLinks;
  protectedAliases?: readonly string[];
  /** Starts runs for `POST /runs`; without it, that route answers 404 naming how to enable it. */
  runs?: RunStarter;
  /** Pipelines whose steps may promote to production through the API (the stack's `promoters`). */
  promoters?: readonly string[];
  /**
   * Who is calling: from a bearer token locally, from the API Gateway request context on AWS.
   * @throws AuthenticationError
   */
  authenticate(c: Context): Caller | Promise<Caller>;
  /** Called with every error that becomes a 500, for the log. */
  onInternalError?(error: unknown, c: Context): void;
  /** A built dashboard to serve at `GET /` (see `static-dashboard.ts`). */
  dashboardDir?: string;
}

type Env = { Variables: { caller: Caller } };

const errorResponses = Object.fromEntries(
  (
    [
      [400, 'Invalid input: `issues` names each bad field'],
      [401, 'Missing or invalid credentials'],
      [403, "The caller's role does not allow this"],
      [404, 'Not found'],
      [409, 'Conflict: for a held stage, `holder` names the version holding it'],
    ] as const
  ).map(([status, description]) => [
    status,
    { description, content: { 'application/json': { schema: ApiErrorSchema } } },
  ]),
);

/**
 * The Stackline HTTP API as a Hono app: the same app runs under `stackline serve` (Node) and behind
 * API Gateway (Lambda). Routing, request validation and the OpenAPI document come from
 * {@link API_ROUTES}; handlers get an {@link ApiContext} with the authenticated caller.
 */
export function createApiApp(options: ApiAppOptions): OpenAPIHono<Env> {
  const app = new OpenAPIHono<Env>({
    // Validation failures go to onError as ZodErrors, so 400s come from the one mapping.
    defaultHook: (result) => {
      if (!result.success) throw result.error;
    },
  });
  const protectedAliases = options.protectedAliases ?? DEFAULT_PROTECTED_ALIASES;

  app.onError((error, c) => {
    let mapped = error;
    // Hono's own 4xx (malformed JSON body, ...) become validation errors with its message.
    if (error instanceof HTTPException && error.status < 500) mapped = new ValidationError(error.message);
    const { status, body } = httpErrorFor(mapped);
    if (status === 500) options.onInternalError?.(error, c);
    return c.json(body, status);
  });
  app.notFound((c) => {
    const { body } = httpErrorFor(new ValidationError(`No route ${c.req.method} ${c.req.path}: see GET /openapi.json`));
    return c.json({ error: { ...body.error, status: 404, code: 'NO_ROUTE' } }, 404);
  });

  app.openAPIRegistry.registerComponent('securitySchemes', 'bearer', {
    type: 'http',
    scheme: 'bearer',
    description: 'A token from `stackline token create` (local `stackline serve`)',
  });
  app.openAPIRegistry.registerComponent('securitySchemes', 'sigv4', {
    type: 'apiKey',
    name: 'Authorization',
    in: 'header',
    description: 'AWS Signature Version 4 (API Gateway AWS_IAM authorization)',
  });

  for (const r of API_ROUTES) {
    const definition = createRoute({
      method: r.method,
      path: r.path,
      operationId: r.operationId,
      summary: r.summary,
      tags: [r.tag],
      security: [{ bearer: [] }, { sigv4: [] }],
      request: {
        ...(r.params ? { params: r.params } : {}),
        ...(r.query ? { query: r.query } : {}),
        ...(r.body ? { body: { required: true, content: { 'application/json': { schema: r.body } } } } : {}),
      },
      responses: {
        200: { description: 'OK', content: { 'application/json': { schema: r.response } } },
        ...errorResponses,
      },
    });
    // Authenticate before validating, so an anonymous caller learns nothing about the input rules.
    app.use(definition.getRoutingPath(), async (c, next) => {
      if (c.req.method.toLowerCase() === r.method) c.set('caller', await options.authenticate(c));
      await next();
    });
    app.openapi(definition, async (c) => {
      const ctx: ApiContext = { ...options, protectedAliases, caller: c.get('caller') };
      const input = {
        params: r.params ? c.req.valid('param' as never) : {},
        query: r.query ? c.req.valid('query' as never) : {},
        body: r.body ? c.req.valid('json' as never) : undefined,
      };
      return c.json((await r.handler(ctx, input)) as never, 200);
    });
  }

  if (options.localDownloads) {
    const links = options.localDownloads;
    app.openapi(
      createRoute({
        method: 'get',
        path: '/downloads/{contentHash}',
        operationId: 'downloadArtifactBytes',
        summary: 'The bytes behind a signed download link (local `stackline serve` only; no bearer token)',
        tags: ['artifacts'],
        request: { params: DownloadParams, query: DownloadQuery },
        responses: {
          200: {
            description: 'The bytes',
            content: { 'application/octet-stream': { schema: z.string().meta({ format: 'binary' }) } },
          },
          ...errorResponses,
        },
      }),
      async (c) => {
        const { contentHash } = c.req.valid('param');
        const { expires, signature } = c.req.valid('query');
        links.verify(contentHash, Number(expires), signature);
        const stream = await options.artifacts.get(contentHash);
        return c.body(Readable.toWeb(stream) as ReadableStream, 200, {
          'content-type': 'application/octet-stream',
        }) as never;
      },
    );
  }

  if (options.dashboardDir) serveDashboard(app, options.dashboardDir);

  app.doc31('/openapi.json', {
    openapi: '3.1.0',
    info: {
      title: 'Stackline API',
      version: '0.1.0',
      description:
        'Stacks, pipelines, runs, artifacts and the model control plane. Locally: bearer tokens from `stackline token create`; on AWS: SigV4 (AWS_IAM).',
    },
  });
  return app;
}
