import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createApiApp } from '../../lib/api/app.ts';
import { SignedLocalDownloadLinks } from '../../lib/api/download-links.ts';
import { ApiTokenStore } from '../../lib/api/tokens/token-store.ts';
import { LocalArtifactStore } from '../../lib/artifacts/local-artifact-store.ts';
import { SqliteMetadataStore } from '../../lib/metadata/sqlite/sqlite-metadata-store.ts';
import { seedApiFixture } from './api-fixture.ts';

// biome-ignore lint/suspicious/noExplicitAny: tests index into response bodies freely
export type JsonResponse = Omit<Response, 'json'> & { json(): Promise<any> };

/**
 * The API app in-process over a seeded local stack (SQLite + disk), with one member and one
 * release-manager token. `request` goes through Hono's `app.request`, no socket.
 */
export async function createApiHarness(
  options: { versions?: number; app?: Pick<Parameters<typeof createApiApp>[0], 'runs' | 'promoters'> } = {},
) {
  const dir = await mkdtemp(join(tmpdir(), 'stackline-api-'));
  const metadata = SqliteMetadataStore.open(join(dir, 'metadata.db'));
  const artifacts = new LocalArtifactStore(join(dir, 'artifacts'));
  const tokens = ApiTokenStore.open(join(dir, 'tokens.db'));
  await metadata.stacks.put({ name: 'default', components: {}, tags: ['environment:local'] });
  const seeded = await seedApiFixture(metadata, artifacts, options.versions ?? 3);
  const member = tokens.create({ role: 'member', name: 'alice' }).token;
  const releaseManager = tokens.create({ role: 'release-manager', name: 'rita' }).token;
  const localDownloads = new SignedLocalDownloadLinks(() => 'http://localhost', randomBytes(32));
  const internalErrors: unknown[] = [];
  const app = createApiApp({
    ...options.app,
    metadata,
    artifacts,
    stacks: metadata.stacks,
    downloads: localDownloads,
    localDownloads,
    authenticate: (c) => tokens.authenticate(/^Bearer (\S+)$/.exec(c.req.header('authorization') ?? '')?.[1]),
    onInternalError: (error) => internalErrors.push(error),
  });
  const request = (
    method: string,
    path: string,
    init: { token?: string | null; body?: unknown; rawBody?: string } = {},
  ) => {
    const token = init.token === undefined ? member : init.token;
    const headers: Record<string, string> = {};
    if (token) headers.authorization = `Bearer ${token}`;
    let body: string | undefined;
    if (init.rawBody !== undefined || init.body !== undefined) {
      headers['content-type'] = 'application/json';
      body = init.rawBody ?? JSON.stringify(init.body);
    }
    return app.request(path, {
      method: method.toUpperCase(),
      headers,
      ...(body === undefined ? {} : { body }),
    }) as Promise<JsonResponse>;
  };
  return {
    dir,
    app,
    metadata,
    artifacts,
    tokens: { member, releaseManager },
    seeded,
    internalErrors,
    request,
    async close() {
      tokens.close();
      await metadata.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export type ApiHarness = Awaited<ReturnType<typeof createApiHarness>>;
