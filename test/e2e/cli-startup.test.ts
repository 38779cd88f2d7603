/**
 * What the real binary loads at start. Timings live in `npm run bench` (bench/cli.ts); these tests
 * guard the structure that makes them: commands load lazily; a TypeScript pipeline runs from its
 * compiled copy, with no loader thread and no tsx (lib/cli/precompile.ts); and when the TypeScript
 * hooks are registered instead (on Node 20 every later import then crosses to the hooks thread and
 * back), nothing but the pipeline file is left to load.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
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
function loadedModules(args: string[], env: NodeJS.ProcessEnv = {}) {
  return runRecordingLoads(args, { dir: home, home: join(home, 'project'), env });
}

describe('stackline start-up', () => {
  it('prints --help without loading any command, zod, SQLite, YAML, tsx or the AWS SDK', async () => {
    const { code, urls } = await loadedModules(['--help']);
    expect(code).toBe(0);
    expect(urls.filter((u) => u.includes('/dist/lib/cli/commands/'))).toEqual([]);
    const packages = new Set(urls.map(packageOf).filter(Boolean));
    expect([...packages].sort()).toEqual(['commander', 'picocolors']);
  });

  it('runs a TypeScript pipeline from its compiled copy: no tsx, and esbuild and the import lexer only for a new or changed file', async () => {
    // Inside the repository, so `stackline` and `zod` resolve as they do for a project's own files.
    const inRepo = resolve('test/fixtures/pipelines', `startup-${Date.now()}-${process.pid}.ts`);
    const source = await readFile('test/fixtures/pipelines/simple.ts', 'utf8');
    try {
      await writeFile(inRepo, `${source}\n// a file of its own: ${home}\n`);
      const first = await loadedModules(['run', inRepo, '--json']);
      expect(first.code).toBe(0);
      // A new file: esbuild translates it once, on the main thread; tsx is never loaded.
      expect(first.urls.filter((u) => u.endsWith('/node_modules/esbuild/lib/main.js'))).toHaveLength(1);
      const second = await loadedModules(['run', inRepo, '--json']);
      expect(second.code).toBe(0);
      for (const { urls } of [first, second]) {
        expect(urls.filter((u) => packageOf(u) === 'tsx')).toEqual([]);
        expect(urls).not.toContain(pathToFileURL(inRepo).href);
        expect(urls.filter((u) => u.includes('/node_modules/.cache/stackline/esm/'))).toHaveLength(1);
        expect(urls.filter((u) => packageOf(u) === 'yaml')).toEqual([]);
      }
      // Unchanged: served from the cache, neither esbuild nor the import lexer even loaded.
      expect(second.urls.filter((u) => ['esbuild', 'es-module-lexer'].includes(packageOf(u) ?? ''))).toEqual([]);
    } finally {
      await rm(inRepo, { force: true });
    }
  });

  it('with compiling ahead switched off, loads after the TypeScript hooks only the modules they import and the pipeline file', async () => {
    const pipeline = resolve('test/fixtures/pipelines/simple.ts');
    const { code, urls } = await loadedModules(['run', pipeline, '--json'], { STACKLINE_PRECOMPILE: '0' });
    expect(code).toBe(0);
    const hooks = urls.indexOf(pathToFileURL(resolve('dist/lib/cli/typescript-hooks.js')).href);
    expect(hooks).toBeGreaterThan(0);
    // After the hooks module: its own imports (loaded on the hooks thread), then the pipeline, and
    // esbuild, get-tsconfig and the cache pruner only if the file was not transpiled before
    // (test/e2e/typescript-loader.test.ts).
    const afterHooks = urls
      .slice(hooks + 1)
      .filter(
        (u) =>
          !u.startsWith('node:') &&
          !u.endsWith('/dist/lib/cli/cache-prune.js') &&
          !['esbuild', 'get-tsconfig', 'resolve-pkg-maps'].includes(packageOf(u) ?? ''),
      );
    expect(afterHooks.map((u) => u.replace(pathToFileURL(resolve('.')).href, ''))).toEqual([
      '/dist/lib/cli/transpile.js',
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
