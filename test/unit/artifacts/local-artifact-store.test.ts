import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalArtifactStore } from '../../../lib/artifacts/local-artifact-store.ts';
import { NotFoundError, ValidationError } from '../../../lib/errors.ts';
import {
  describeArtifactStoreConformance,
  fingerprint,
  patternBytes,
  sha256,
} from '../../conformance/artifact-store.conformance.ts';
import { damageLocalBlob } from '../../support/damage.ts';

describeArtifactStoreConformance('LocalArtifactStore', async () => {
  const root = await mkdtemp(join(tmpdir(), 'stackline-local-store-'));
  const store = new LocalArtifactStore(root);
  return { store, cleanup: () => rm(root, { recursive: true, force: true }), damage: damageLocalBlob(store) };
});

describe('LocalArtifactStore', () => {
  let root: string;
  let store: LocalArtifactStore;

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'stackline-local-store-'));
    store = new LocalArtifactStore(root);
  });

  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  const hexOf = (contentHash: string) => contentHash.slice('sha256:'.length);
  const blobPathOf = (contentHash: string) => join(root, 'blobs', hexOf(contentHash).slice(0, 2), hexOf(contentHash));
  const tmpFiles = async () => (existsSync(join(root, 'tmp')) ? readdir(join(root, 'tmp')) : []);

  it('has kind "local"', () => {
    expect(store.kind).toBe('local');
  });

  it('stores each blob at blobs/<first two hex digits>/<hex> with a file:// uri', async () => {
    const blob = await store.put('layout');
    expect(blob.uri).toBe(pathToFileURL(blobPathOf(blob.contentHash)).href);
    expect(await readFile(blobPathOf(blob.contentHash), 'utf8')).toBe('layout');
    expect(await store.getFile(blob.contentHash)).toBe(blobPathOf(blob.contentHash));
  });

  it('resolves a relative root to an absolute path', () => {
    expect(new LocalArtifactStore('relative/store').root).toBe(join(process.cwd(), 'relative/store'));
  });

  it.each([
    ['a small Buffer', () => Buffer.from('small')],
    ['a large Buffer', () => patternBytes(200_000, 1)],
    [
      'a stream',
      () =>
        (async function* () {
          yield patternBytes(10_000, 2);
        })(),
    ],
  ])('makes blobs written from %s read-only', async (_label, source) => {
    const blob = await store.put(source());
    expect((await stat(blobPathOf(blob.contentHash))).mode & 0o777).toBe(0o444);
  });

  it('makes blobs written by putFile read-only', async () => {
    const path = join(root, 'input.bin');
    await writeFile(path, patternBytes(3_000_000, 3));
    const blob = await store.putFile(path);
    expect((await stat(blobPathOf(blob.contentHash))).mode & 0o777).toBe(0o444);
  });

  it('does not rewrite a blob when the same content is put again, but marks it as just written', async () => {
    const bytes = patternBytes(100_000, 4);
    const first = await store.put(bytes);
    const before = await stat(blobPathOf(first.contentHash));
    await store.put(bytes);
    await store.put(
      (async function* () {
        yield bytes;
      })(),
    );
    const after = await stat(blobPathOf(first.contentHash));
    expect(after.ino).toBe(before.ino);
    // Refreshed for `collectGarbage`: a blob a writer just found must not look abandoned.
    expect(after.mtimeMs).toBeGreaterThanOrEqual(before.mtimeMs);
    expect(after.mtimeMs).toBeGreaterThan(Date.now() - 60_000);
  });

  it('stores correctly a source that reuses one buffer for every chunk', async () => {
    const expected: Buffer[] = [];
    async function* reusing() {
      for (const size of [64 * 1024, 512 * 1024]) {
        const buffer = Buffer.alloc(size);
        for (let index = 0; index < 40; index++) {
          buffer.fill(index);
          expected.push(Buffer.from(buffer));
          yield buffer;
        }
      }
    }
    const blob = await store.put(reusing());
    expect(blob.contentHash).toBe(sha256(Buffer.concat(expected)));
    expect(fingerprint(await store.getBytes(blob.contentHash))).toEqual(fingerprint(Buffer.concat(expected)));
  });

  it('leaves no temp files after successful puts of every source kind', async () => {
    const path = join(root, 'input.bin');
    await writeFile(path, patternBytes(1_000_000, 5));
    await store.put('text');
    await store.put(patternBytes(500_000, 6));
    await store.put(
      (async function* () {
        yield patternBytes(1000, 7);
      })(),
    );
    await store.putFile(path);
    await store.putFile(path);
    expect(await tmpFiles()).toEqual([]);
  });

  it('leaves no temp file and no blob after a failing source', async () => {
    async function* failing() {
      yield patternBytes(100_000, 8);
      throw new Error('boom');
    }
    await expect(store.put(failing())).rejects.toThrow('boom');
    expect(await tmpFiles()).toEqual([]);
    const shards = existsSync(join(root, 'blobs')) ? await readdir(join(root, 'blobs'), { recursive: true }) : [];
    expect(shards).toEqual([]);
  });

  it('never exposes a partial blob at the content path while a write is in progress', async () => {
    const chunks = [patternBytes(64 * 1024, 9), patternBytes(64 * 1024, 10), patternBytes(64 * 1024, 11)];
    const contentPath = blobPathOf(sha256(Buffer.concat(chunks)));
    const seenWhileWriting: boolean[] = [];
    async function* slow() {
      for (const chunk of chunks) {
        seenWhileWriting.push(existsSync(contentPath));
        yield chunk;
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      seenWhileWriting.push(existsSync(contentPath));
    }
    const blob = await store.put(slow());
    expect(seenWhileWriting).toEqual([false, false, false, false]);
    expect((await tmpFiles()).length).toBe(0);
    expect((await stat(blobPathOf(blob.contentHash))).size).toBe(3 * 64 * 1024);
  });

  it('recreates a shard directory removed behind its back', async () => {
    const first = await store.put('shard one');
    await rm(join(root, 'blobs'), { recursive: true, force: true });
    const again = await store.put(patternBytes(100_000, 12));
    const sameShard = await store.put('shard one');
    expect(await store.getBytes(again.contentHash)).toHaveLength(100_000);
    expect(sameShard).toEqual(first);
    expect((await store.getBytes(first.contentHash)).toString()).toBe('shard one');
  });

  it('rejects putFile of a missing file with NotFoundError naming the path', async () => {
    const path = join(root, 'missing.bin');
    await expect(store.putFile(path)).rejects.toBeInstanceOf(NotFoundError);
    await expect(store.putFile(path)).rejects.toThrow(path);
  });

  it('rejects a malformed content hash with ValidationError instead of touching the disk', async () => {
    for (const hash of ['sha256:../../etc/passwd', 'md5:abc', `sha256:${'A'.repeat(64)}`]) {
      await expect(store.getBytes(hash)).rejects.toBeInstanceOf(ValidationError);
      await expect(store.exists(hash)).rejects.toBeInstanceOf(ValidationError);
    }
  });
});
