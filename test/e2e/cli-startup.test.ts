/**
 * What the real binary loads at start. Timings live in `npm run bench` (bench/cli.ts); these tests
 * guard the structure that makes them: commands load lazily, and once the TypeScript hooks are registered
 * (on Node 20 every later import then crosses to the hooks thread and back) nothing but the
 * pipeline file is left to load.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { packageOf, runRecordingLoads } from '../support/loaded-modules.ts';

let home: string;
beforeEach(async () => {
  home = await mkdtemp(join(tmpdir(), 'stackline-startup-'));
});
afterEach(async () => {
  await rm(home, { recursive: true, force: true });
});

/** Runs the binary with a module hook that records, in order, the URL of every module loaded. */
function loadedModules(args: string[]) {
  return runRecordingLoads(args, { dir: home, home: join(home, 'project') });
}

describe('stackline start-up', () => {
  it('prints --help without loading any command, zod, SQLite, YAML, tsx or the AWS SDK', async () => {
    const { code, urls } = await loadedModules(['--help']);
    expect(code).toBe(0);
    expect(urls.filter((u) => u.includes('/dist/lib/cli/commands/'))).toEqual([]);
    const packages = new Set(urls.map(packageOf).filter(Boolean));
    expect([...packages].sort()).toEqual(['commander', 'picocolors']);
  });

  it('runs a TypeScript pipeline loading, after the TypeScript hooks, only the one small module they import and the pipeline file', async () => {
    const pipeline = resolve('test/fixtures/pipelines/simple.ts');
    const { code, urls } = await loadedModules(['run', pipeline, '--json']);
    expect(code).toBe(0);
    const hooks = urls.indexOf(pathToFileURL(resolve('dist/lib/cli/typescript-hooks.js')).href);
    expect(hooks).toBeGreaterThan(0);
    // After the hooks module: its own imports (loaded on the hooks thread), then the pipeline, and
    // esbuild and get-tsconfig only if the file was not transpiled before (test/e2e/typescript-loader.test.ts).
    const afterHooks = urls
      .slice(hooks + 1)
      .filter(
        (u) => !u.startsWith('node:') && !['esbuild', 'get-tsconfig', 'resolve-pkg-maps'].includes(packageOf(u) ?? ''),
      );
    expect(afterHooks.map((u) => u.replace(pathToFileURL(resolve('.')).href, ''))).toEqual([
      '/dist/lib/code-hash/project-cache.js',
      '/test/fixtures/pipelines/simple.ts',
    ]);
    expect(urls.filter((u) => packageOf(u) === 'tsx')).toEqual([]);
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
