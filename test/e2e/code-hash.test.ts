/**
 * The code hash follows the code: a project outside the repository (stackline and zod linked into
 * its node_modules, as an installed package would be), run by the real binary after each edit.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const REPO = resolve(import.meta.dirname, '../..');
let project: string;
let home: string;
/** Step name → `explain.summary` of the last run. */
let explained: Record<string, string> = {};

const PIPELINE = `import { pipeline, step } from 'stackline';
import { z } from 'zod';
import { depValue } from 'fake-dep';
import { double } from './helpers.ts';
import './unrelated.ts';

const OFFSET = 10;
const offsetPlus = (n: number) => n + OFFSET;

export const usesHelper = step({ name: 'uses_helper', outputs: { n: z.number() } }, () => ({ n: double(1) }));
export const usesConstant = step({ name: 'uses_constant', outputs: { n: z.number() } }, () => ({ n: offsetPlus(1) }));
export const usesDependency = step({ name: 'uses_dependency', outputs: { n: z.number() } }, () => ({ n: depValue() }));
export const plain = step({ name: 'plain', outputs: { n: z.number() } }, () => ({ n: 4 }));

export const edits = pipeline({ name: 'edits' }, () => {
  usesHelper();
  usesConstant();
  usesDependency();
  plain();
});
`;

async function write(path: string, text: string) {
  await mkdir(resolve(project, path, '..'), { recursive: true });
  await writeFile(join(project, path), text);
}

async function editFile(path: string, from: string, to: string) {
  const text = await readFile(join(project, path), 'utf8');
  if (!text.includes(from)) throw new Error(`${path} has no ${from}`);
  await writeFile(join(project, path), text.replace(from, to));
}

/** Runs the pipeline; returns step name → status. */
async function run(): Promise<Record<string, string>> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [join(REPO, 'bin/stackline.js'), 'run', 'pipeline.ts', '--json'],
    { cwd: project, env: { ...process.env, STACKLINE_HOME: home, NO_COLOR: '1' } },
  );
  const summary = JSON.parse(stdout) as {
    status: string;
    steps: Array<{ name: string; status: string; explain: { summary: string } }>;
  };
  expect(summary.status).toBe('completed');
  explained = Object.fromEntries(summary.steps.map((s) => [s.name, s.explain.summary]));
  return Object.fromEntries(summary.steps.map((s) => [s.name, s.status]));
}

const executed = (statuses: Record<string, string>) =>
  Object.entries(statuses)
    .filter(([, s]) => s !== 'cached')
    .map(([name]) => name)
    .sort();

beforeAll(async () => {
  project = await mkdtemp(join(tmpdir(), 'stackline-codehash-'));
  home = join(project, '.stackline');
  await write('package.json', JSON.stringify({ name: 'edits-project', type: 'module' }));
  await mkdir(join(project, 'node_modules'));
  await symlink(REPO, join(project, 'node_modules/stackline'), 'dir');
  await symlink(join(REPO, 'node_modules/zod'), join(project, 'node_modules/zod'), 'dir');
  await write(
    'node_modules/fake-dep/package.json',
    JSON.stringify({ name: 'fake-dep', version: '1.0.0', type: 'module', main: 'index.js' }),
  );
  await write('node_modules/fake-dep/index.js', 'export const depValue = () => 3;\n');
  await write('helpers.ts', 'export const double = (n: number) => n * 2;\n');
  await write('unrelated.ts', 'export const note = "unrelated";\n');
  await write('pipeline.ts', PIPELINE);
  expect(executed(await run())).toEqual(['plain', 'uses_constant', 'uses_dependency', 'uses_helper']);
}, 120_000);
afterAll(async () => {
  if (project) await rm(project, { recursive: true, force: true });
});

describe('code hashing follows the code', () => {
  it('re-runs nothing when nothing changed', async () => {
    expect(executed(await run())).toEqual([]);
  });

  it('re-runs exactly the step using a helper from another module when the helper changes', async () => {
    await editFile('helpers.ts', 'n * 2', 'n + n');
    expect(executed(await run())).toEqual(['uses_helper']);
    expect(explained.uses_helper).toMatch(/^miss since run \S+: code of module helpers\.ts changed$/);
  });

  it('re-runs exactly the step using a module constant (through a local function) when it changes', async () => {
    await editFile('pipeline.ts', 'const OFFSET = 10;', 'const OFFSET = 11;');
    expect(executed(await run())).toEqual(['uses_constant']);
    expect(explained.uses_constant).toMatch(/: code of declaration OFFSET changed$/);
  });

  it('re-runs nothing when a file no step uses changes', async () => {
    await editFile('unrelated.ts', '"unrelated"', '"still unrelated"');
    expect(executed(await run())).toEqual([]);
  });

  it('re-runs exactly the step importing a package when its version changes', async () => {
    await editFile('node_modules/fake-dep/package.json', '"1.0.0"', '"1.0.1"');
    expect(executed(await run())).toEqual(['uses_dependency']);
    expect(explained.uses_dependency).toMatch(/: package fake-dep 1\.0\.0 → 1\.0\.1$/);
    expect(explained.plain).toMatch(/^hit: /);
  });
});
