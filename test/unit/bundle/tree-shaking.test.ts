import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build, type Plugin } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withEnglishZodMessagesOnly } from '../../../lib/bundle/bundle-pipeline.ts';
import { withSideEffectFreeModules, withTreeShakableZod } from '../../../lib/bundle/tree-shaking.ts';

let dir: string;

beforeAll(async () => {
  // A project of its own (files outside node_modules) whose `zod` is this project's.
  dir = await mkdtemp(join(tmpdir(), 'stackline-tree-shaking-'));
  await mkdir(join(dir, 'node_modules'));
  await symlink(join(import.meta.dirname, '../../../node_modules/zod'), join(dir, 'node_modules', 'zod'), 'dir');
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function bundle(entry: string, plugins: Plugin[]): Promise<{ file: string; bytes: number; code: string }> {
  const file = `${entry}.${plugins.length}.bundle.mjs`;
  const result = await build({
    entryPoints: [entry],
    outfile: file,
    bundle: true,
    platform: 'node',
    format: 'esm',
    minify: true,
    write: false,
    plugins,
    logLevel: 'silent',
  });
  const code = result.outputFiles[0]!.text;
  await writeFile(file, code);
  return { file, bytes: Buffer.byteLength(code), code };
}

describe('withTreeShakableZod', () => {
  it('keeps only the zod a file uses, and `z`, other names and type imports behave as before', async () => {
    const entry = join(dir, 'uses-zod.ts');
    await writeFile(
      entry,
      [
        "import { type ZodType, z, ZodError } from 'zod';",
        "import zDefault from 'zod';",
        'const schema: ZodType = z.object({ n: z.number().int() });',
        'export const ok = schema.parse({ n: 2 });',
        'let failed: unknown;',
        'try { zDefault.string().parse(1); } catch (e) { failed = e; }',
        'export const isZodError = failed instanceof ZodError;',
        'export const message = (failed as ZodError).issues[0]?.message;',
      ].join('\n'),
    );
    const plain = await bundle(entry, []);
    const shaken = await bundle(entry, [withTreeShakableZod()]);
    // All of zod (with its ~60 locales) without the plugin; a fraction of it with.
    expect(plain.bytes).toBeGreaterThan(400_000);
    expect(shaken.bytes).toBeLessThan(plain.bytes / 4);
    const loaded = await import(pathToFileURL(shaken.file).href);
    expect(loaded.ok).toEqual({ n: 2 });
    expect(loaded.isZodError).toBe(true);
    expect(loaded.message).toBe('Invalid input: expected string, received number');
  });

  it('with English-only messages, a pipeline selecting another zod locale fails saying it is not in the bundle', async () => {
    const entry = join(dir, 'locale.ts');
    await writeFile(
      entry,
      "import { z } from 'zod';\nexport function french() { z.config(z.locales.fr()); }\nexport const english = z.locales.en().localeError !== undefined;\n",
    );
    const shaken = await bundle(entry, [withTreeShakableZod(), withEnglishZodMessagesOnly]);
    const loaded = await import(pathToFileURL(shaken.file).href);
    expect(loaded.english).toBe(true);
    expect(() => loaded.french()).toThrow('zod locale "fr" is not in the step runner bundle.');
  });

  it('rewrites files inside node_modules only under the given package roots (Stackline installed as a package)', async () => {
    const installed = join(dir, 'node_modules', 'stackline-installed');
    await mkdir(installed, { recursive: true });
    await writeFile(join(installed, 'schema.js'), "import { z } from 'zod';\nexport const n = z.number().parse(4);\n");
    const entry = join(dir, 'uses-installed.ts');
    await writeFile(entry, "export { n } from './node_modules/stackline-installed/schema.js';\n");
    const untouched = await bundle(entry, [withTreeShakableZod()]);
    const shaken = await bundle(entry, [withTreeShakableZod({ packageRoots: [installed] })]);
    expect(untouched.bytes).toBeGreaterThan(400_000);
    expect(shaken.bytes).toBeLessThan(untouched.bytes / 4);
    expect((await import(pathToFileURL(shaken.file).href)).n).toBe(4);
  });

  it('leaves files that import no `z` from zod untouched', async () => {
    const entry = join(dir, 'no-z.ts');
    await writeFile(entry, "import { number } from 'zod';\nexport const n = number().parse(3);\n");
    const plain = await bundle(entry, []);
    const shaken = await bundle(entry, [withTreeShakableZod()]);
    expect(shaken.code).toBe(plain.code);
  });
});

describe('withSideEffectFreeModules', () => {
  it('drops a module of the given folder whose exports are unused, module-level calls and all', async () => {
    const lib = join(dir, 'lib');
    await mkdir(lib, { recursive: true });
    await writeFile(join(lib, 'unused.ts'), "export const table = ['CREATE TABLE unused'].map((s) => s.trim());\n");
    await writeFile(join(lib, 'used.ts'), "export const used = ['kept'].map((s) => s.toUpperCase());\n");
    await writeFile(join(lib, 'index.ts'), "export { table } from './unused.ts';\nexport { used } from './used.ts';\n");
    const entry = join(dir, 'entry.ts');
    await writeFile(entry, "import { used } from './lib/index.ts';\nconsole.log(used);\n");
    const plain = await bundle(entry, []);
    const shaken = await bundle(entry, [withSideEffectFreeModules(lib)]);
    expect(plain.code).toContain('CREATE TABLE unused');
    expect(shaken.code).not.toContain('CREATE TABLE unused');
    expect(shaken.code).toContain('kept');
  });
});
