import { mkdir, mkdtemp, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** This project's AWS SDK v3 packages: what stands in for the SDK the Lambda runtime ships. */
const PROJECT_SDK = fileURLToPath(new URL('../../node_modules/@aws-sdk', import.meta.url));

/**
 * A temporary directory laid out like the Lambda Node.js runtime: code placed below it resolves
 * `@aws-sdk/*` (linked to this project's copy) and no other package, as a bundle on Lambda finds
 * the SDK the runtime ships and nothing else. moto_ext's `lambda_node.py` lays out its task roots
 * the same way.
 */
export async function createLambdaRuntimeDir(): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'stackline-lambda-runtime-'));
  await mkdir(join(root, 'node_modules'));
  await symlink(PROJECT_SDK, join(root, 'node_modules', '@aws-sdk'), 'dir');
  return root;
}
