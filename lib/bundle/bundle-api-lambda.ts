import { cp, mkdir, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { builtDashboardDirectory } from '../api/static-dashboard.ts';
import {
  LAMBDA_BUILD_OPTIONS,
  LAMBDA_RUNTIME_PACKAGES,
  withEnglishZodMessagesOnly,
  withoutNativeModules,
} from './bundle-pipeline.ts';

const API_ENTRY = join(dirname(fileURLToPath(import.meta.url)), '../../functions/api/index.ts');

/**
 * Bundles the API Lambda (`functions/api/index.ts`) into one minified ESM file. The AWS SDK v3 is
 * left to the Lambda Node.js runtime, which ships it (as CDK's `NodejsFunction` does by default):
 * it is most of the bundle otherwise, and the API only makes a few DynamoDB and S3 calls.
 *
 * The built web dashboard (`dist/dashboard`) is copied next to it, into `dashboard/`, so the
 * function's code asset carries it and the API serves it at `GET /` (`functions/api/index.ts`).
 * Those files are separate from `bytes`, which counts the JavaScript bundle only.
 */
export async function bundleApiLambda(
  outfile: string,
  options: { dashboardDir?: string | false } = {},
): Promise<{ outfile: string; bytes: number; dashboard?: string }> {
  await mkdir(dirname(outfile), { recursive: true });
  await build({
    ...LAMBDA_BUILD_OPTIONS,
    entryPoints: [API_ENTRY],
    outfile,
    // The Lambda Node.js runtime ships AWS SDK v3: the API uses that copy and stays small.
    external: [...LAMBDA_RUNTIME_PACKAGES],
    plugins: [withoutNativeModules, withEnglishZodMessagesOnly],
  });
  const bytes = (await stat(outfile)).size;
  const dashboardDir = options.dashboardDir ?? builtDashboardDirectory();
  if (!dashboardDir) return { outfile, bytes };
  const dashboard = join(dirname(outfile), 'dashboard');
  await rm(dashboard, { recursive: true, force: true });
  await cp(dashboardDir, dashboard, { recursive: true });
  return { outfile, bytes, dashboard };
}
