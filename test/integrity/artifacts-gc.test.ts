import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Stackline } from '../../lib/client.ts';
import { runCli } from '../support/cli.ts';
import { localBlobPath } from '../support/damage.ts';

describe('stackline artifacts gc', () => {
  let home: string;
  let sl: Stackline;
  let storeRoot: string;

  beforeEach(async () => {
    home = await mkdtemp(join(tmpdir(), 'stackline-gc-'));
    sl = await Stackline.open({ home });
    storeRoot = join(home, 'artifacts');
  });

  afterEach(async () => {
    await sl.close();
    await rm(home, { recursive: true, force: true });
  });

  const age = async (contentHash: string, hours: number) => {
    const then = new Date(Date.now() - hours * 3_600_000);
    await utimes(localBlobPath(storeRoot, contentHash), then, then);
  };

  it('removes old blobs no version needs, and keeps recorded ones, files of recorded directories and recent orphans', async () => {
    const kept = await sl.saveArtifact('gc.kept', { keep: true });
    const dir = join(home, 'tree');
    await mkdir(dir);
    await writeFile(join(dir, 'a.txt'), 'file inside a recorded directory');
    const tree = await sl.saveArtifact('gc.tree', dir, { materializer: 'directory' });
    const orphan = await sl.stack.artifacts.put('an orphan: no record points at it');
    const recentOrphan = await sl.stack.artifacts.put('a recent orphan, maybe a run about to record it');
    const fileBlob = (await sl.stack.artifacts.put('file inside a recorded directory')).contentHash;
    for (const hash of [kept.contentHash, tree.contentHash, orphan.contentHash, fileBlob]) await age(hash, 2);

    const dry = await runCli(home, 'artifacts', 'gc', '--dry-run', '--json');
    expect(dry.code).toBe(0);
    expect(dry.json().removed).toEqual([orphan.contentHash]);
    expect(existsSync(localBlobPath(storeRoot, orphan.contentHash))).toBe(true);

    const result = await runCli(home, 'artifacts', 'gc', '--grace', '1h', '--json');
    expect(result.code).toBe(0);
    expect(result.json().removed).toEqual([orphan.contentHash]);
    expect(existsSync(localBlobPath(storeRoot, orphan.contentHash))).toBe(false);
    for (const hash of [kept.contentHash, tree.contentHash, fileBlob, recentOrphan.contentHash]) {
      expect(existsSync(localBlobPath(storeRoot, hash))).toBe(true);
    }
    expect((await runCli(home, 'artifacts', 'verify')).code).toBe(0);
  });

  it('never removes a blob a writer has just found again, however old it was', async () => {
    const blob = await sl.stack.artifacts.put('old bytes written again by a new run');
    await age(blob.contentHash, 5);
    // A concurrent run puts the same content (refreshing the blob) and is about to record it.
    await sl.stack.artifacts.put('old bytes written again by a new run');
    const result = await runCli(home, 'artifacts', 'gc', '--grace', '1h', '--json');
    expect(result.json().removed).toEqual([]);
    expect(existsSync(localBlobPath(storeRoot, blob.contentHash))).toBe(true);
  });

  it('refuses a malformed --grace with one line naming it (exit 2)', async () => {
    const result = await runCli(home, 'artifacts', 'gc', '--grace', 'soon');
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^error: --grace "soon" is not a duration/);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
  });
});
