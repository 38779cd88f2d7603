import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { serve } from '@hono/node-server';
import type { PipelineDefinition } from '../dsl/pipeline.ts';
import { errorMessage } from '../errors.ts';
import type { Project, StackRuntime } from '../stacks/project.ts';
import { createApiApp } from './app.ts';
import type { DownloadLinkIssuer } from './context.ts';
import { S3DownloadLinks, SignedLocalDownloadLinks } from './download-links.ts';
import { LocalRunStarter } from './runs/local-run-starter.ts';
import { builtDashboardDirectory } from './static-dashboard.ts';
import { ApiTokenStore } from './tokens/token-store.ts';

export interface RunningApiServer {
  url: string;
  close(): Promise<void>;
}

/** Bearer tokens live beside the project's other state. */
export function tokenStorePath(project: Project): string {
  return join(project.home, 'tokens.db');
}

/**
 * Serves the API for one opened stack over HTTP on Node (`stackline serve`). Every route but
 * `/openapi.json` and signed `/downloads/...` links needs a bearer token from `stackline token
 * create`; roles are enforced here, by the handlers.
 */
export async function startApiServer(
  project: Project,
  stack: StackRuntime,
  options: {
    port?: number;
    host?: string;
    log?: (line: string) => void;
    /** The built dashboard to serve at `/`; default `dist/dashboard` when built, `false` for none. */
    dashboardDir?: string | false;
    /** Pipelines `POST /runs` may start, by name (`stackline serve --pipelines FILE`). */
    pipelines?: ReadonlyMap<string, PipelineDefinition>;
  } = {},
): Promise<RunningApiServer> {
  const tokens = ApiTokenStore.open(tokenStorePath(project));
  let baseUrl = '';
  const localDownloads = new SignedLocalDownloadLinks(() => baseUrl, randomBytes(32));
  // S3 stores hand out presigned URLs (duck-typed: importing the S3 adapter would load the AWS SDK).
  const s3 = stack.artifacts as Partial<ConstructorParameters<typeof S3DownloadLinks>[0]>;
  const downloads: DownloadLinkIssuer =
    typeof s3.presignedDownloadUrl === 'function'
      ? new S3DownloadLinks(s3 as ConstructorParameters<typeof S3DownloadLinks>[0])
      : localDownloads;
  const runs = new LocalRunStarter(options.pipelines ?? new Map(), stack, options.log);
  const app = createApiApp({
    runs,
    ...(stack.promoters === undefined ? {} : { promoters: stack.promoters }),
    metadata: stack.metadata,
    artifacts: stack.artifacts,
    stacks: project.registry.stacks,
    downloads,
    localDownloads,
    authenticate: (c) => tokens.authenticate(/^Bearer (\S+)$/.exec(c.req.header('authorization') ?? '')?.[1]),
    onInternalError: (error, c) => options.log?.(`error ${c.req.method} ${c.req.path}: ${errorMessage(error)}`),
    ...dashboardOption(options.dashboardDir),
  });
  const host = options.host ?? '127.0.0.1';
  const server = await new Promise<ReturnType<typeof serve>>((resolve, reject) => {
    const s = serve({ fetch: app.fetch, port: options.port ?? 8787, hostname: host }, () => resolve(s));
    s.once('error', reject);
  });
  const address = server.address() as AddressInfo;
  baseUrl = `http://${host.includes(':') ? `[${host}]` : host}:${address.port}`;
  return {
    url: baseUrl,
    close: async () => {
      await runs.close();
      await new Promise<void>((resolve, reject) => {
        server.close((error) => {
          tokens.close();
          if (error) reject(error);
          else resolve();
        });
      });
    },
  };
}

function dashboardOption(dir: string | false | undefined): { dashboardDir?: string } {
  if (dir === false) return {};
  const found = dir ?? builtDashboardDirectory();
  return found ? { dashboardDir: found } : {};
}
