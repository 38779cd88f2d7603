/**
 * What lib/cli/precompile.ts compiles, what it leaves to the loader, and that an unchanged file's
 * copy is left alone. (test/e2e/precompile.test.ts runs compiled pipelines through the binary;
 * test/e2e/cli-startup.test.ts shows an unchanged file never loads esbuild.)
 */
import { mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { precompilePipeline } from '../../../lib/cli/precompile.ts';
import { sourceFileOf } from '../../../lib/code-hash/compiled-sources.ts';

let project: string;
let translated: string[];
const OWN_INDEX = 'file:///stackline/dist/lib/index.js';

async function write(path: string, text: string) {
  await mkdir(resolve(project, path, '..'), { recursive: true });
  await writeFile(join(project, path), text);
}

/** Compiles `file` with a translator that only strips `: type` annotations and records its calls. */
function compile(file: string) {
  return precompilePipeline(join(project, file), {
    ownPackageRoot: '/stackline',
    ownIndexUrl: OWN_INDEX,
    transpile: async (path, source) => {
      translated.push(path.slice(project.length + 1));
      if (source.includes('SYNTAX ERROR')) throw new Error('Expected ";"');
      return source.replace(/: (?:string|number)/g, '');
    },
  });
}

beforeEach(async () => {
  project = await mkdtemp(join(tmpdir(), 'stackline-precompile-unit-'));
  translated = [];
  await write('package.json', JSON.stringify({ name: 'unit-project', type: 'module' }));
  await write('node_modules/zod/package.json', JSON.stringify({ name: 'zod' }));
  await write('lib/helper.ts', 'export const twice = (n: number) => n * 2;\n');
  await write(
    'pipeline.ts',
    "import { z } from 'zod';\nimport { readFileSync } from 'node:fs';\nimport { twice } from './lib/helper.js';\nexport const x = twice(2);\n",
  );
});
afterEach(async () => {
  await rm(project, { recursive: true, force: true });
});

describe('precompilePipeline', () => {
  it('compiles the file and its local modules, rewriting only local imports', async () => {
    const url = await compile('pipeline.ts');
    expect(url).toMatch(/\/node_modules\/\.cache\/stackline\/esm\/[0-9a-f]{32}\.mjs$/);
    const code = await readFile(fileURLToPath(url!), 'utf8');
    expect(code).toContain("from 'zod'");
    expect(code).toContain("from 'node:fs'");
    const helper = /from '(file:[^']+)'/.exec(code)![1]!;
    expect(sourceFileOf(fileURLToPath(helper))).toBe(join(project, 'lib/helper.ts'));
    expect(await readFile(fileURLToPath(helper), 'utf8')).toBe('export const twice = (n) => n * 2;\n');
    expect(sourceFileOf(fileURLToPath(url!))).toBe(join(project, 'pipeline.ts'));
    expect(translated.sort()).toEqual(['lib/helper.ts', 'pipeline.ts']);
  });

  it("keeps an unchanged compiled copy as it is, and points the importer at an edited module's new copy", async () => {
    const first = await compile('pipeline.ts');
    const helperOf = async (url: string) =>
      fileURLToPath(/from '(file:[^']+)'/.exec(await readFile(fileURLToPath(url), 'utf8'))![1]!);
    const helper = await helperOf(first!);
    // Not rewritten (a rewrite renames a new file into place): the same inode. Its time is bumped,
    // marking it used for the cache's pruning.
    const written = (await stat(helper)).ino;
    expect(await compile('pipeline.ts')).toBe(first);
    expect((await stat(helper)).ino).toBe(written);
    await write('lib/helper.ts', 'export const twice = (n: number) => n + n;\n');
    expect(await compile('pipeline.ts')).toBe(first);
    const edited = await helperOf(first!);
    expect(edited).not.toBe(helper);
    expect(await readFile(edited, 'utf8')).toContain('n + n');
  });

  it("resolves this package's own name to the CLI's entry only inside this package", async () => {
    await write('pipeline.ts', "import { pipeline } from 'unit-project';\nexport const p = pipeline;\n");
    expect(await compile('pipeline.ts')).toBeUndefined();
    const url = await precompilePipeline(join(project, 'pipeline.ts'), {
      ownPackageRoot: project,
      ownIndexUrl: OWN_INDEX,
      transpile: async (_path, source) => source,
    });
    expect(await readFile(fileURLToPath(url!), 'utf8')).toContain(`from '${OWN_INDEX}'`);
  });

  const leftToLoader: Array<[string, () => Promise<void>]> = [
    ['a .ts file Node treats as CommonJS', () => write('package.json', JSON.stringify({ name: 'unit-project' }))],
    ['tsconfig path aliases', () => write('tsconfig.json', '{ "compilerOptions": { "paths": { "@/*": ["./*"] } } }')],
    [
      'a computed import()',
      () => write('lib/helper.ts', "export const twice = (n: number) => import('./' + n + '.ts');\n"),
    ],
    ['import.meta.resolve', () => write('lib/helper.ts', "export const twice = import.meta.resolve('./x.ts');\n")],
    ['a package that is not installed', () => write('lib/helper.ts', "export { twice } from 'not-installed';\n")],
    ['a package import (#internal)', () => write('lib/helper.ts', "export { twice } from '#internal';\n")],
    ['a relative import that does not resolve', () => write('lib/helper.ts', "export { twice } from './gone.js';\n")],
    ['a syntax error', () => write('lib/helper.ts', 'SYNTAX ERROR\n')],
    [
      'a module under another node_modules',
      async () => {
        await write('lib/node_modules/.keep', '');
      },
    ],
  ];
  for (const [what, arrange] of leftToLoader) {
    it(`leaves ${what} to the loader`, async () => {
      await arrange();
      expect(await compile('pipeline.ts')).toBeUndefined();
    });
  }

  it('compiles a file left to the loader once it is fixed', async () => {
    await write('lib/helper.ts', 'SYNTAX ERROR\n');
    expect(await compile('pipeline.ts')).toBeUndefined();
    await write('lib/helper.ts', 'export const twice = (n: number) => n * 3;\n');
    const url = await compile('pipeline.ts');
    const helper = /from '(file:[^']+)'/.exec(await readFile(fileURLToPath(url!), 'utf8'))![1]!;
    expect(await readFile(fileURLToPath(helper), 'utf8')).toBe('export const twice = (n) => n * 3;\n');
  });
});

describe('the compiled-copy cache', () => {
  it('is pruned when a new copy is written into a full cache, sparing copies just used', async () => {
    const url = await compile('pipeline.ts');
    const esm = join(project, 'node_modules/.cache/stackline/esm');
    const old = new Date(Date.now() - 30 * 24 * 60 * 60 * 1000);
    for (let i = 0; i < 600; i++) {
      await writeFile(join(esm, `stale-${i}.mjs`), '');
      await utimes(join(esm, `stale-${i}.mjs`), old, old);
    }
    // The copies the pipeline uses are older still, but compiling it again marks them used.
    const older = new Date(Date.now() - 60 * 24 * 60 * 60 * 1000);
    for (const name of await readdir(esm)) if (!name.startsWith('stale-')) await utimes(join(esm, name), older, older);
    await compile('pipeline.ts');
    const used = (await readdir(esm)).filter((n) => !n.startsWith('stale-'));
    await write('other.ts', 'export const other = 1;\n');
    await compile('other.ts'); // a new copy: a write, which prunes
    const left = await readdir(esm);
    expect(left.filter((n) => n.startsWith('stale-')).length).toBeLessThan(400);
    expect(used).toContain(url!.split('/').at(-1));
    for (const name of used) expect(left).toContain(name);
  });
});
