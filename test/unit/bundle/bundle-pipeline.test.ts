import { execFile } from 'node:child_process';
import { copyFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BundleResult, bundlePipeline } from '../../../lib/bundle/bundle-pipeline.ts';
import { ValidationError } from '../../../lib/errors.ts';
import { runCli } from '../../support/cli.ts';
import { createLambdaRuntimeDir } from '../../support/lambda-runtime.ts';

const SIMPLE = join(import.meta.dirname, '../../fixtures/pipelines/simple.ts');

let runtimeDir: string;
let outDir: string;
let result: BundleResult;

beforeAll(async () => {
  // Below a directory that provides @aws-sdk/* the way the Lambda runtime does (and nothing else).
  runtimeDir = await createLambdaRuntimeDir();
  outDir = join(runtimeDir, 'bundle');
  result = await bundlePipeline({ pipelineFile: SIMPLE, outDir });
});
afterAll(async () => {
  if (runtimeDir) await rm(runtimeDir, { recursive: true, force: true });
});

/** Runs `file` with node from a fresh directory with no node_modules above it. */
async function runAlone(file: string, env: Record<string, string> = {}) {
  const alone = await mkdtemp(join(tmpdir(), 'stackline-alone-'));
  try {
    await copyFile(file, join(alone, 'index.mjs'));
    return await promisify(execFile)(process.execPath, [join(alone, 'index.mjs')], {
      env: { PATH: process.env.PATH, ...env },
    }).then(
      ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
      (error: { code: number; stdout: string; stderr: string }) => error,
    );
  } finally {
    await rm(alone, { recursive: true, force: true });
  }
}

/** The Lambda handler of the bundle, loaded the way the Node.js runtime loads `index.handler`. */
async function loadHandler(): Promise<(event: unknown, context: unknown) => Promise<unknown>> {
  const module = (await import(pathToFileURL(result.lambda.path).href)) as { handler: never };
  return module.handler;
}

describe('bundlePipeline', () => {
  it('writes a Lambda bundle under 300 KB that takes only the AWS SDK from the runtime and holds no native module', async () => {
    expect(result.lambda.path).toBe(join(outDir, 'lambda', 'index.mjs'));
    expect(result.lambda.bytes).toBeLessThan(300_000);
    const code = await readFile(result.lambda.path, 'utf8');
    expect(code).not.toContain('better-sqlite3');
    expect(code).not.toMatch(/\.node['"]/);
    // Nothing of the local SQLite store (its migrations) reaches the runner through `stackline`'s index.
    expect(code).not.toContain('CREATE TABLE');
    expect(result.lambda.bytes).toBe(Buffer.byteLength(code));
    expect(result.lambda.runtimeImports).toEqual(
      expect.arrayContaining(['@aws-sdk/client-dynamodb', '@aws-sdk/client-s3']),
    );
    for (const name of result.lambda.runtimeImports) expect(name).toMatch(/^@aws-sdk\//);
  });

  it('cannot load where no runtime provides the AWS SDK: the SDK is not inside the Lambda bundle', async () => {
    const alone = await runAlone(result.lambda.path);
    expect(alone.code).not.toBe(0);
    expect(alone.stderr).toMatch(/Cannot find (package|module) '@aws-sdk\//);
  });

  it('puts the AWS SDK into the Lambda bundle on request (bundleAwsSdk)', async () => {
    const bundled = await bundlePipeline({
      pipelineFile: SIMPLE,
      outDir: join(outDir, 'with-sdk'),
      bundleAwsSdk: true,
    });
    expect(bundled.lambda.runtimeImports).toEqual([]);
    expect(bundled.lambda.bytes).toBeGreaterThan(result.lambda.bytes + 500_000);
  });

  it('pins each step to the code hash it has when the CLI loads the module, so local and AWS runs share the cache', async () => {
    const { simple } = await import(SIMPLE);
    const local = Object.fromEntries(
      simple
        .build({ count: 1 })
        .nodes.map((n: { spec: { name: string; codeHash: string } }) => [n.spec.name, n.spec.codeHash]),
    );
    const code = await readFile(result.lambda.path, 'utf8');
    const pinned = JSON.parse(/globalThis\.__stacklineCodeHashes\s*=\s*(\{[^}]*\})/.exec(code)![1]!);
    expect(Object.keys(local).sort()).toEqual(['numbers', 'stats']);
    for (const [name, hash] of Object.entries(local)) expect(pinned[name]).toBe(hash);
  });

  it('pins the reference scenario steps to the hashes a separate local CLI process computes, dependencies included', async () => {
    const reference = join(import.meta.dirname, '../../fixtures/pipelines/reference-all.ts');
    const bundled = await bundlePipeline({ pipelineFile: reference, outDir: join(outDir, 'reference') });
    const code = await readFile(bundled.lambda.path, 'utf8');
    const pinned = JSON.parse(/globalThis\.__stacklineCodeHashes\s*=\s*(\{[^}]*\})/.exec(code)![1]!);
    const parts = JSON.parse(/globalThis\.__stacklineCodeParts\s*=\s*(\{.*\});$/m.exec(code)![1]!);
    // What a local run records: a fresh process loading the pipelines the way the CLI does.
    const script = [
      `const m = await import(${JSON.stringify(pathToFileURL(reference).href)});`,
      `const { definedStepCodeHashes } = await import(${JSON.stringify(pathToFileURL(join(import.meta.dirname, '../../../lib/dsl/step.ts')).href)});`,
      'for (const p of Object.values(m)) p.build(p.parseParameters({}));',
      'console.log(JSON.stringify(definedStepCodeHashes()));',
    ].join('\n');
    const { stdout } = await promisify(execFile)(process.execPath, [
      '--conditions=stackline-source',
      '--import',
      'tsx',
      '--input-type=module',
      '-e',
      script,
    ]);
    const local = JSON.parse(stdout) as Record<string, string>;
    expect(Object.keys(local).length).toBeGreaterThanOrEqual(9);
    // The bundling process also defined the `simple` fixture's steps: the bundle pins only its own.
    expect(Object.keys(pinned).sort()).toEqual(Object.keys(local).sort());
    expect(Object.fromEntries(Object.keys(local).map((name) => [name, pinned[name]]))).toEqual(local);
    // The pinned parts say what each hash covers: \`evaluate\` uses the shared preprocessing module.
    expect(Object.keys(parts.evaluate)).toEqual(
      expect.arrayContaining(['function', 'module:examples/shared/preprocessing.ts', 'package:ml-random-forest']),
    );
  });

  it('produces a module whose handler loads without AWS configuration (read at the first invocation)', async () => {
    expect(typeof (await loadHandler())).toBe('function');
  });

  it('keeps error names through minification: an invalid event fails as NonRetriableError naming the field', async () => {
    const handler = await loadHandler();
    await expect(handler({ action: 'run-step', pipeline: 'simple', runId: 'run_1' }, {})).rejects.toMatchObject({
      name: 'NonRetriableError',
      message: expect.stringMatching(/stepId: /),
    });
  });

  it('reports a missing runner configuration by variable name at the first invocation', async () => {
    const handler = await loadHandler();
    const saved = process.env.STACKLINE_STACK;
    delete process.env.STACKLINE_STACK;
    try {
      await expect(handler({ action: 'start-run', pipeline: 'simple' }, {})).rejects.toMatchObject({
        name: 'NonRetriableError',
        message: expect.stringMatching(/STACKLINE_STACK: missing/),
      });
    } finally {
      if (saved !== undefined) process.env.STACKLINE_STACK = saved;
    }
  });

  it('writes a container directory with the ECS entry and a Dockerfile that runs it', async () => {
    const dockerfile = await readFile(join(result.container.dir, 'Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(/^FROM \S+node:22-slim$/m);
    expect(dockerfile).toMatch(/^CMD \["node", "\/app\/index\.mjs"\]$/m);
    const entry = await readFile(join(result.container.dir, 'index.mjs'), 'utf8');
    expect(result.container.bytes).toBe(Buffer.byteLength(entry) + Buffer.byteLength(dockerfile));
  });

  it('builds an ECS entry that runs without any node_modules (SDK inside), prints the error type on stderr and exits 1 on a bad request', async () => {
    const failure = await runAlone(join(result.container.dir, 'index.mjs'), {
      STACKLINE_REQUEST: '{"action":"plan-map"}',
    });
    expect(failure.code).toBe(1);
    expect(failure.stdout).toBe('');
    expect(JSON.parse(failure.stderr.trim().split('\n').at(-1)!)).toMatchObject({
      errorType: 'NonRetriableError',
      errorMessage: expect.stringMatching(/pipeline: /),
    });
  });

  it('rejects a pipeline file that does not exist', async () => {
    await expect(bundlePipeline({ pipelineFile: join(outDir, 'missing.ts'), outDir })).rejects.toThrow(ValidationError);
  });
});

describe('stackline bundle', () => {
  it('bundles a pipeline file and prints the pipelines and sizes with --json', async () => {
    const out = join(outDir, 'cli');
    const result = await runCli(join(outDir, 'home'), 'bundle', SIMPLE, '--out', out, '--json');
    expect(result.code).toBe(0);
    expect(result.json()).toMatchObject({
      pipelines: ['simple'],
      lambda: {
        path: join(out, 'lambda', 'index.mjs'),
        bytes: expect.any(Number),
        runtimeImports: expect.arrayContaining(['@aws-sdk/client-s3', '@aws-sdk/lib-dynamodb']),
      },
      container: { dir: join(out, 'container'), bytes: expect.any(Number) },
    });
  });

  it('puts the AWS SDK inside the Lambda bundle with --bundle-aws-sdk', async () => {
    const out = join(outDir, 'cli-with-sdk');
    const result = await runCli(join(outDir, 'home'), 'bundle', SIMPLE, '--out', out, '--bundle-aws-sdk', '--json');
    expect(result.code).toBe(0);
    expect(result.json()).toMatchObject({ lambda: { runtimeImports: [] } });
  });

  it('fails with a usage error when the file exports no pipeline', async () => {
    const result = await runCli(
      join(outDir, 'home'),
      'bundle',
      join(import.meta.dirname, '../../../examples/shared/preprocessing.ts'),
      '--out',
      join(outDir, 'x'),
    );
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/exports no pipeline/);
  });
});
