/**
 * A TypeScript pipeline runs from compiled copies (lib/cli/precompile.ts) without changing what it
 * sees: a project outside the repository (stackline and zod linked into its node_modules, as an
 * installed package would be), run by the real binary.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const REPO = resolve(import.meta.dirname, '../..');
let project: string;

const PIPELINE = `import { readFileSync } from 'node:fs';
import { pipeline, step } from 'stackline';
import { z } from 'zod';
import { greeting } from './lib/helper.js';
import { answer } from './lib/other';

const where = step({ name: 'where', outputs: { seen: z.string() } }, () => ({
  seen: JSON.stringify({
    url: import.meta.url,
    dirname: import.meta.dirname,
    data: JSON.parse(readFileSync(new URL('./data.json', import.meta.url), 'utf8')).value,
    greeting: greeting(),
    answer: answer(),
  }),
}));

export const precompiled = pipeline({ name: 'precompiled' }, () => {
  where();
});
`;

const FAILING = `import { pipeline, step } from 'stackline';
import { z } from 'zod';

interface Reason {
  text: string;
}

const explode = step({ name: 'explode', outputs: { n: z.number() } }, () => {
  const reason: Reason = { text: 'no data' };
  throw new Error(reason.text);
});

export const failing = pipeline({ name: 'failing' }, () => {
  explode();
});
`;

// import.meta.resolve names the compiled copy's neighbours, not the source's: this file needs the loader.
const RESOLVING = `import { pipeline, step } from 'stackline';
import { z } from 'zod';

const resolved = step({ name: 'resolved', outputs: { url: z.string() } }, () => ({
  url: import.meta.resolve('./lib/helper.ts'),
}));

export const resolving = pipeline({ name: 'resolving' }, () => {
  resolved();
});
`;

async function write(path: string, text: string) {
  await mkdir(resolve(project, path, '..'), { recursive: true });
  await writeFile(join(project, path), text);
}

async function stackline(...args: string[]): Promise<{ code: number; stdout: string }> {
  try {
    const { stdout } = await promisify(execFile)(process.execPath, [join(REPO, 'bin/stackline.js'), ...args], {
      cwd: project,
      env: { ...process.env, STACKLINE_HOME: join(project, '.stackline'), NO_COLOR: '1' },
    });
    return { code: 0, stdout };
  } catch (error) {
    const e = error as { code: number; stdout: string };
    return { code: e.code, stdout: e.stdout };
  }
}

/** Runs `file` and returns the value of its one step's string output. */
async function runValue(file: string): Promise<string> {
  const { code, stdout } = await stackline('run', file, '--json');
  expect(code).toBe(0);
  const [output] = (JSON.parse(stdout) as { steps: Array<{ outputs: Array<{ artifact: string; version: number }> }> })
    .steps[0]!.outputs;
  const loaded = await stackline('artifacts', 'load', output!.artifact, String(output!.version));
  expect(loaded.code).toBe(0);
  return loaded.stdout.trim();
}

const compiledCopies = async () =>
  (await readdir(join(project, 'node_modules/.cache/stackline/esm'))).filter((f) => f.endsWith('.mjs'));

beforeAll(async () => {
  project = await mkdtemp(join(tmpdir(), 'stackline-precompile-'));
  await write('package.json', JSON.stringify({ name: 'precompile-project', type: 'module' }));
  await mkdir(join(project, 'node_modules'));
  await symlink(REPO, join(project, 'node_modules/stackline'), 'dir');
  await symlink(join(REPO, 'node_modules/zod'), join(project, 'node_modules/zod'), 'dir');
  await write('lib/helper.ts', 'export const greeting = (): string => "hello";\n');
  await write('lib/other.ts', 'export const answer = (): number => 42;\n');
  await write('data.json', JSON.stringify({ value: 'from data.json' }));
  await write('pipeline.ts', PIPELINE);
  await write('failing.ts', FAILING);
  await write('resolving.ts', RESOLVING);
});
afterAll(async () => {
  if (project) await rm(project, { recursive: true, force: true });
});

describe('a TypeScript pipeline run from its compiled copy', () => {
  it("sees its own import.meta and imports with TypeScript's conventions (./x.js for x.ts, no extension)", async () => {
    const seen = JSON.parse(await runValue('pipeline.ts'));
    expect(seen).toEqual({
      url: pathToFileURL(join(project, 'pipeline.ts')).href,
      dirname: project,
      data: 'from data.json',
      greeting: 'hello',
      answer: 42,
    });
    // The pipeline and its two modules, each compiled once.
    expect(await compiledCopies()).toHaveLength(3);
  });

  it('runs an edited module as edited: a compiled copy is never stale', async () => {
    await write('lib/helper.ts', 'export const greeting = (): string => "hello again";\n');
    expect(JSON.parse(await runValue('pipeline.ts')).greeting).toBe('hello again');
  });

  it("maps a failing step's stack trace to the .ts file and line", async () => {
    const { code, stdout } = await stackline('run', 'failing.ts', '--json');
    expect(code).toBe(1);
    const { runId } = JSON.parse(stdout) as { runId: string };
    const shown = JSON.parse((await stackline('runs', 'show', runId, '--json')).stdout) as {
      steps: Array<{ error?: { stack?: string } }>;
    };
    // Line 10 of failing.ts is the throw (the interface above it is gone from the compiled copy).
    expect(shown.steps[0]!.error!.stack).toContain(`${join(project, 'failing.ts')}:10:`);
  });

  it('runs through the loader when the cache cannot be written', async () => {
    const cache = join(project, 'node_modules/.cache/stackline/esm');
    await rm(cache, { recursive: true, force: true });
    // A file where the directory should be: nothing can be written under it, even by root.
    await writeFile(cache, 'not a directory');
    try {
      await write('lib/helper.ts', 'export const greeting = (): string => "hello, loader";\n');
      expect(JSON.parse(await runValue('pipeline.ts')).greeting).toBe('hello, loader');
    } finally {
      await rm(cache, { force: true });
    }
  });

  it('leaves a file it cannot compile faithfully to the loader, which runs it as written', async () => {
    const url = await runValue('resolving.ts');
    expect(url).toBe(pathToFileURL(join(project, 'lib/helper.ts')).href);
  });
});
