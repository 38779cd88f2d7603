/**
 * What the real binary loads at start. Timings live in `npm run bench` (bench/cli.ts); these tests
 * guard the structure that makes them: commands load lazily, and once tsx's hooks are registered
 * (on Node 20 every later import then crosses to the hooks thread and back) nothing but the
 * pipeline file is left to load.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

let home: string;
beforeEach(async () => {
  home = await mkdtemp(join(tmpdir(), 'stackline-startup-'));
});
afterEach(async () => {
  await rm(home, { recursive: true, force: true });
});

/** Runs the binary with a module hook that records, in order, the URL of every module loaded. */
async function loadedModules(args: string[]): Promise<{ code: number | null; stdout: string; urls: string[] }> {
  const log = join(home, 'loaded.txt');
  const hooks = join(home, 'record-loads.mjs');
  await writeFile(
    hooks,
    `import { appendFileSync } from 'node:fs';
export async function load(url, context, next) {
  appendFileSync(${JSON.stringify(log)}, url + '\\n');
  return next(url, context);
}
`,
  );
  const register = join(home, 'register.mjs');
  await writeFile(
    register,
    `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(hooks).href)});\n`,
  );
  let stdout = '';
  const code = await new Promise<number | null>((done) => {
    const child = spawn(process.execPath, ['--import', pathToFileURL(register).href, 'bin/stackline.js', ...args], {
      env: { ...process.env, STACKLINE_HOME: join(home, 'project'), NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    child.stdout.on('data', (d) => (stdout += d));
    child.on('exit', (c) => done(c));
  });
  return { code, stdout, urls: (await readFile(log, 'utf8')).split('\n').filter(Boolean) };
}

const packageOf = (url: string) => /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)?.[1];

describe('stackline start-up', () => {
  it('prints --help without loading any command, zod, SQLite, YAML, tsx or the AWS SDK', async () => {
    const { code, urls } = await loadedModules(['--help']);
    expect(code).toBe(0);
    expect(urls.filter((u) => u.includes('/dist/lib/cli/commands/'))).toEqual([]);
    const packages = new Set(urls.map(packageOf).filter(Boolean));
    expect([...packages].sort()).toEqual(['commander', 'picocolors']);
  });

  it('runs a TypeScript pipeline loading only the pipeline file through the hooks, esbuild once, and no YAML', async () => {
    const pipeline = resolve('test/fixtures/pipelines/simple.ts');
    const { code, urls } = await loadedModules(['run', pipeline, '--json']);
    expect(code).toBe(0);
    const tsxHooks = urls.findIndex((u) => u.includes('/node_modules/tsx/dist/esm/index.mjs'));
    expect(tsxHooks).toBeGreaterThan(0);
    // After tsx's hooks module: its own modules (loaded on the hooks thread), then the pipeline.
    const afterHooks = urls
      .slice(tsxHooks + 1)
      .filter((u) => !u.startsWith('node:') && !['tsx', 'esbuild'].includes(packageOf(u) ?? ''));
    expect(afterHooks).toEqual([pathToFileURL(pipeline).href]);
    // tsx's ESM API would load esbuild on the main thread too.
    expect(urls.filter((u) => u.endsWith('/node_modules/esbuild/lib/main.js'))).toHaveLength(1);
    expect(urls.filter((u) => packageOf(u) === 'yaml')).toEqual([]);
  });

  it('loads the YAML parser when the run has a --config file, and applies it', async () => {
    const config = join(home, 'run.yaml');
    await writeFile(config, 'parameters:\n  count: 4\n');
    const { code, stdout, urls } = await loadedModules([
      'run',
      'test/fixtures/pipelines/simple.ts',
      '--config',
      config,
      '--json',
    ]);
    expect(code).toBe(0);
    expect(JSON.parse(stdout).parameters).toEqual({ count: 4 });
    expect(urls.some((u) => packageOf(u) === 'yaml')).toBe(true);
  });
});
