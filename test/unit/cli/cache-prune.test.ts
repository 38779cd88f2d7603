/** lib/cli/cache-prune.ts: the CLI's caches stay bounded without removing what may be in use. */
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pruneCacheDir } from '../../../lib/cli/cache-prune.ts';

const DAY = 24 * 60 * 60 * 1000;
const NOW = Date.parse('2026-12-01T12:00:00Z');
let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stackline-prune-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Writes `name`, last written `daysAgo` days before NOW. */
async function entry(name: string, daysAgo: number) {
  await writeFile(join(dir, name), name);
  const at = new Date(NOW - daysAgo * DAY);
  await utimes(join(dir, name), at, at);
}

describe('pruneCacheDir', () => {
  it('removes the oldest-written entries down to `keep` once there are more than `max`', async () => {
    for (let i = 1; i <= 12; i++) await entry(`old-${i}.mjs`, 20 - i); // old-1 is the oldest
    pruneCacheDir(dir, { max: 10, keep: 6 }, NOW);
    expect((await readdir(dir)).sort()).toEqual([
      'old-10.mjs',
      'old-11.mjs',
      'old-12.mjs',
      'old-7.mjs',
      'old-8.mjs',
      'old-9.mjs',
    ]);
  });

  it('leaves a directory of at most `max` entries alone', async () => {
    for (let i = 1; i <= 10; i++) await entry(`old-${i}.mjs`, 30);
    pruneCacheDir(dir, { max: 10, keep: 6 }, NOW);
    expect(await readdir(dir)).toHaveLength(10);
  });

  it('never removes an entry written (or marked used) within the last day, even over `max`', async () => {
    for (let i = 1; i <= 4; i++) await entry(`old-${i}.mjs`, 5);
    for (let i = 1; i <= 8; i++) await entry(`recent-${i}.mjs`, 0.5);
    pruneCacheDir(dir, { max: 10, keep: 6 }, NOW);
    const left = (await readdir(dir)).sort();
    expect(left.filter((n) => n.startsWith('old-'))).toEqual([]);
    expect(left.filter((n) => n.startsWith('recent-'))).toHaveLength(8);
  });

  it('counts and removes files only, never a subdirectory, and ignores a directory that is not there', async () => {
    for (let i = 1; i <= 12; i++) await entry(`old-${i}.mjs`, 30);
    await mkdir(join(dir, 'imports'));
    pruneCacheDir(dir, { max: 10, keep: 6 }, NOW);
    const left = await readdir(dir);
    expect(left).toContain('imports');
    expect(left.filter((n) => n.endsWith('.mjs'))).toHaveLength(6);
    expect(() => pruneCacheDir(join(dir, 'missing'), {}, NOW)).not.toThrow();
  });
});
