/**
 * What the real binary loads at start. Timings live in `npm run bench` (bench/cli.ts); these tests
 * guard the structure that makes them: commands load lazily, and a TypeScript pipeline runs from
 * its compiled copy with no loader thread and no tsx (lib/cli/precompile.ts).
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
  await writeFile(log, '');
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

  it('runs a TypeScript pipeline from its compiled copy: no tsx, and esbuild only for a new or changed file', async () => {
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
      // Unchanged: served from the cache, esbuild not even loaded.
      expect(second.urls.filter((u) => packageOf(u) === 'esbuild')).toEqual([]);
    } finally {
      await rm(inRepo, { force: true });
    }
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
