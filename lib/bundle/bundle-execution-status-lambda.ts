import { mkdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import {
  LAMBDA_BUILD_OPTIONS,
  LAMBDA_RUNTIME_PACKAGES,
  withEnglishZodMessagesOnly,
  withoutNativeModules,
} from './bundle-pipeline.ts';
import { withSideEffectFreeModules, withTreeShakableZod } from './tree-shaking.ts';

const ENTRY = join(dirname(fileURLToPath(import.meta.url)), '../../functions/execution-status/index.ts');
const STACKLINE_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/**
 * Bundles the execution-status Lambda (`functions/execution-status/index.ts`) into one minified
 * ESM file. Like the step runner's, it takes AWS SDK v3 from the Lambda runtime (it makes two
 * DynamoDB calls and one PutEvents) and keeps only the zod and Stackline modules it uses.
 */
export async function bundleExecutionStatusLambda(outfile: string): Promise<{ outfile: string; bytes: number }> {
  await mkdir(dirname(outfile), { recursive: true });
  await build({
    ...LAMBDA_BUILD_OPTIONS,
    entryPoints: [ENTRY],
    outfile,
    external: [...LAMBDA_RUNTIME_PACKAGES],
    plugins: [
      withSideEffectFreeModules(join(STACKLINE_ROOT, 'lib')),
      withTreeShakableZod({ packageRoots: [STACKLINE_ROOT] }),
      withoutNativeModules,
      withEnglishZodMessagesOnly,
    ],
  });
  return { outfile, bytes: (await stat(outfile)).size };
}
