import { mkdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { LAMBDA_BUILD_OPTIONS, withEnglishZodMessagesOnly, withoutNativeModules } from './bundle-pipeline.ts';

const ENTRY = join(dirname(fileURLToPath(import.meta.url)), '../../functions/execution-status/index.ts');

/**
 * Bundles the execution-status Lambda (`functions/execution-status/index.ts`) into one minified
 * ESM file, SDK included (it makes two DynamoDB calls and one PutEvents; a few hundred KB).
 */
export async function bundleExecutionStatusLambda(outfile: string): Promise<{ outfile: string; bytes: number }> {
  await mkdir(dirname(outfile), { recursive: true });
  await build({
    ...LAMBDA_BUILD_OPTIONS,
    entryPoints: [ENTRY],
    outfile,
    plugins: [withoutNativeModules, withEnglishZodMessagesOnly],
  });
  return { outfile, bytes: (await stat(outfile)).size };
}
