import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleExecutionStatusLambda } from '../../../lib/bundle/bundle-execution-status-lambda.ts';
import { createLambdaRuntimeDir } from '../../support/lambda-runtime.ts';

let runtimeDir: string;
let alone: string;

beforeAll(async () => {
  runtimeDir = await createLambdaRuntimeDir();
  alone = await mkdtemp(join(tmpdir(), 'stackline-alone-'));
});
afterAll(async () => {
  await Promise.all([runtimeDir, alone].filter(Boolean).map((dir) => rm(dir, { recursive: true, force: true })));
});

/** Imports `file` in a fresh node; its exports' names, or the error it failed with. */
async function load(file: string): Promise<{ exports?: string[]; error?: string }> {
  const script = `import(${JSON.stringify(pathToFileURL(file).href)}).then((m) => console.log(JSON.stringify(Object.keys(m))))`;
  return promisify(execFile)(process.execPath, ['-e', script]).then(
    ({ stdout }) => ({ exports: JSON.parse(stdout) as string[] }),
    (error: { stderr: string }) => ({ error: error.stderr }),
  );
}

describe('bundleExecutionStatusLambda', () => {
  it('takes the AWS SDK from the runtime: loads where the runtime provides it, and only there', async () => {
    const [inRuntime, outside] = await Promise.all([
      bundleExecutionStatusLambda(join(runtimeDir, 'task', 'index.mjs')),
      bundleExecutionStatusLambda(join(alone, 'index.mjs')),
    ]);
    expect(inRuntime.bytes).toBeLessThan(300_000);
    expect(await load(inRuntime.outfile)).toEqual({ exports: ['handler'] });
    expect((await load(outside.outfile)).error).toMatch(/Cannot find (package|module) '@aws-sdk\//);
  });
});
