import { createHash } from 'node:crypto';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalArtifactStore } from '../../../lib/artifacts/local-artifact-store.ts';
import { MaterializerRegistry } from '../../../lib/artifacts/materializers.ts';
import { patternBytes } from '../../conformance/artifact-store.conformance.ts';

const MiB = 1024 * 1024;
const FILE_SIZE = 600 * MiB;
const MAX_RSS_GROWTH = 128 * MiB;

describe('a file artifact larger than 512 MB', () => {
  let root: string;
  let sourcePath: string;
  let expectedHash: string;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'stackline-large-file-'));
    sourcePath = join(root, 'large.bin');
    expectedHash = await writePatternFile(sourcePath, FILE_SIZE);
  });

  afterAll(async () => {
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('is saved through the file materializer and read back through get with bounded memory', async () => {
    const store = new LocalArtifactStore(join(root, 'store'));
    const registry = MaterializerRegistry.withBuiltins({ cacheDir: join(root, 'store', 'materialized') });

    const rss = sampleRss();
    const saved = await registry.get('file').save(sourcePath, { store });
    const readBack = createHash('sha256');
    let size = 0;
    for await (const chunk of await store.get(saved.contentHash)) {
      readBack.update(chunk as Buffer);
      size += (chunk as Buffer).length;
    }
    const peakGrowth = rss.stop();

    expect(saved).toMatchObject({ contentHash: expectedHash, size: FILE_SIZE, dataType: 'file' });
    expect(`sha256:${readBack.digest('hex')}`).toBe(expectedHash);
    expect(size).toBe(FILE_SIZE);
    expect(peakGrowth, `RSS grew by ${(peakGrowth / MiB).toFixed(1)} MiB`).toBeLessThan(MAX_RSS_GROWTH);
  });
});

/**
 * Writes `size` bytes of non-repeating content (a pseudo-random 1 MiB block stamped with its
 * index), so that hashing is real work and a misplaced chunk would change the hash.
 * Returns the content hash of what was written.
 */
async function writePatternFile(path: string, size: number): Promise<string> {
  const block = patternBytes(MiB, 42);
  const hash = createHash('sha256');
  const file = await open(path, 'w');
  try {
    for (let index = 0; index * MiB < size; index++) {
      block.writeUInt32LE(index, 0);
      block.writeUInt32LE(index ^ 0x5bd1e995, MiB - 4);
      hash.update(block);
      await file.write(block, 0, MiB, index * MiB);
    }
  } finally {
    await file.close();
  }
  return `sha256:${hash.digest('hex')}`;
}

/** Samples the process's resident set size every few milliseconds until stopped; returns the peak growth. */
function sampleRss(): { stop: () => number } {
  const baseline = process.memoryUsage.rss();
  let peak = baseline;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 5);
  return {
    stop() {
      clearInterval(timer);
      peak = Math.max(peak, process.memoryUsage.rss());
      return peak - baseline;
    },
  };
}
