/**
 * The web dashboard's built files (`npm run build` → `dist/dashboard`), served by the API app at
 * `GET /` and `GET /assets/{file}`: under `stackline serve`, behind API Gateway (the files ship
 * next to the Lambda bundle) and by the signing proxy of `stackline dashboard --api`. The files hold
 * no data: the page reads everything through the API with the caller's credentials.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serveStatic } from '@hono/node-server/serve-static';
import type { Env, Hono } from 'hono';

/** The paths the dashboard's files are served at (API Gateway needs a method for each). */
export const DASHBOARD_PATHS = ['/', '/assets/{file}'] as const;

/** A directory holds a built dashboard when it has `index.html` and the `assets/` Vite wrote. */
export function isDashboardBuild(dir: string): boolean {
  return existsSync(join(dir, 'index.html')) && existsSync(join(dir, 'assets'));
}

/**
 * Where the built dashboard is: `dist/dashboard` of this package, found from this module whether it
 * runs from source (`lib/api/`) or compiled (`dist/lib/api/`). Undefined when it was not built.
 */
export function builtDashboardDirectory(): string | undefined {
  const here = dirname(fileURLToPath(import.meta.url));
  return [join(here, '../../dist/dashboard'), join(here, '../../dashboard')].find(isDashboardBuild);
}

/**
 * Serves the dashboard from `dir` on `app`: the page at `/` (never cached: it names the current
 * assets) and the content-hashed assets under `/assets/` (cached for good).
 */
export function serveDashboard<E extends Env>(app: Hono<E>, dir: string): void {
  app.get(
    '/',
    serveStatic({
      root: dir,
      path: 'index.html',
      onFound: (_path, c) => c.header('cache-control', 'no-cache'),
    }),
  );
  app.get(
    '/assets/*',
    serveStatic({
      root: dir,
      onFound: (_path, c) => c.header('cache-control', 'public, max-age=31536000, immutable'),
    }),
  );
}
