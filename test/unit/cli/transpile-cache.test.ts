/** The transpile cache (lib/cli/transpile.ts) stays bounded: a miss that writes an entry prunes it. */
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { transpile } from '../../../lib/cli/transpile.ts';

let project: string;
beforeEach(async () => {
  project = await mkdtemp(join(tmpdir(), 'stackline-transpile-cache-'));
  await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'p', type: 'module' }));
  await mkdir(join(project, 'node_modules'));
});
afterEach(async () => {
  await rm(project, { recursive: true, force: true });
});

it('removes the oldest entries of a full transpile cache when it writes a new one', async () => {
  const cache = join(project, 'node_modules/.cache/stackline/typescript');
  await mkdir(cache, { recursive: true });
  const old = new Date(Date.now() - 30 * 24 * 60 * 60 * 1000);
  for (let i = 0; i < 600; i++) {
    await writeFile(join(cache, `stale-${i}.js`), '');
    await utimes(join(cache, `stale-${i}.js`), old, old);
  }
  const code = await transpile(join(project, 'a.ts'), 'export const a: number = 1;\n', 'ts');
  expect(code).toContain('const a = 1;');
  const left = await readdir(cache);
  expect(left).toHaveLength(400);
  expect(left.filter((n) => !n.startsWith('stale-'))).toHaveLength(1);
});
