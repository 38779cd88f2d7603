import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ArtifactStore } from '../../lib/artifacts/artifact-store.ts';
import { IntegrityError, NotFoundError } from '../../lib/errors.ts';

export interface ArtifactStoreFixture {
  store: ArtifactStore;
  cleanup: () => Promise<void>;
  /** Replaces a stored blob's bytes behind the store's back, as a disk fault or a stray edit would. */
  damage: (contentHash: string, bytes: Buffer) => Promise<void>;
}

const EMPTY_SHA256 = 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const MISSING_HASH = `sha256:${'0'.repeat(64)}`;

/**
 * The behaviour every {@link ArtifactStore} adapter must show. Call it from the adapter's test
 * file with a factory giving a fresh, empty store; the suite runs unchanged against each adapter.
 *
 * @example
 * describeArtifactStoreConformance('LocalArtifactStore', async () => {
 *   const root = await mkdtemp(join(tmpdir(), 'store-'));
 *   return { store: new LocalArtifactStore(root), cleanup: () => rm(root, { recursive: true, force: true }) };
 * });
 */
export function describeArtifactStoreConformance(name: string, factory: () => Promise<ArtifactStoreFixture>): void {
  describe(`${name} (ArtifactStore conformance)`, () => {
    let fixture: ArtifactStoreFixture;
    let store: ArtifactStore;
    let scratchDir: string;

    beforeAll(async () => {
      fixture = await factory();
      store = fixture.store;
      scratchDir = await mkdtemp(join(tmpdir(), 'stackline-conformance-'));
    });

    afterAll(async () => {
      await fixture?.cleanup();
      if (scratchDir) await rm(scratchDir, { recursive: true, force: true });
    });

    describe('round trips', () => {
      it('stores a string as its UTF-8 bytes', async () => {
        const text = 'héllo, wörld ✓ — unique to the string test';
        const blob = await store.put(text);
        expect(fingerprint(await store.getBytes(blob.contentHash))).toEqual(fingerprint(Buffer.from(text, 'utf8')));
        expect(blob.size).toBe(Buffer.byteLength(text, 'utf8'));
      });

      it('stores a Buffer', async () => {
        const bytes = patternBytes(10_000, 1);
        const blob = await store.put(bytes);
        expect(fingerprint(await store.getBytes(blob.contentHash))).toEqual(fingerprint(bytes));
      });

      it('stores a plain Uint8Array', async () => {
        const bytes = new Uint8Array(patternBytes(5_000, 2));
        const blob = await store.put(bytes);
        expect(fingerprint(await store.getBytes(blob.contentHash))).toEqual(fingerprint(bytes));
      });

      it('stores a Readable stream', async () => {
        const bytes = patternBytes(300_000, 3);
        const blob = await store.put(Readable.from(chunksOf(bytes, 64 * 1024)));
        expect(fingerprint(await store.getBytes(blob.contentHash))).toEqual(fingerprint(bytes));
        expect(blob.size).toBe(bytes.length);
      });

      it('stores an async iterable of Uint8Array chunks', async () => {
        const bytes = patternBytes(100_000, 4);
        async function* generate() {
          for (const chunk of chunksOf(bytes, 7_777)) yield new Uint8Array(chunk);
        }
        const blob = await store.put(generate());
        expect(fingerprint(await store.getBytes(blob.contentHash))).toEqual(fingerprint(bytes));
      });

      it('stores a stream of chunks of very different sizes in order', async () => {
        const sizes = [1, 65_536, 300_000, 10, 1_500_000, 16_384, 0, 700_000, 3];
        const chunks = sizes.map((size, index) => patternBytes(size, 20 + index));
        const blob = await store.put(Readable.from(chunks));
        const bytes = Buffer.concat(chunks);
        expect(blob).toMatchObject({ contentHash: sha256(bytes), size: bytes.length });
        expect(fingerprint(await store.getBytes(blob.contentHash))).toEqual(fingerprint(bytes));
      });

      it('stores a local file with putFile', async () => {
        const bytes = patternBytes(2_500_000, 5);
        const path = join(scratchDir, 'input.bin');
        await writeFile(path, bytes);
        const blob = await store.putFile(path);
        expect(blob.size).toBe(bytes.length);
        expect(fingerprint(await store.getBytes(blob.contentHash))).toEqual(fingerprint(bytes));
      });

      it('returns the bytes as a stream from get', async () => {
        const bytes = patternBytes(200_000, 6);
        const blob = await store.put(bytes);
        expect(fingerprint(await readAll(await store.get(blob.contentHash)))).toEqual(fingerprint(bytes));
      });

      it('returns from getFile a local file holding the bytes', async () => {
        const bytes = patternBytes(50_000, 7);
        const blob = await store.put(bytes);
        const path = await store.getFile(blob.contentHash);
        expect(fingerprint(await readFile(path))).toEqual(fingerprint(bytes));
      });

      it('reports stored content as existing', async () => {
        const blob = await store.put('exists check');
        expect(await store.exists(blob.contentHash)).toBe(true);
      });
    });

    describe('content addressing', () => {
      it('names content by the SHA-256 of its bytes', async () => {
        const bytes = patternBytes(12_345, 8);
        const blob = await store.put(bytes);
        expect(blob.contentHash).toBe(sha256(bytes));
        expect(blob.size).toBe(bytes.length);
      });

      it('gives identical content the same hash and uri whatever the source kind', async () => {
        const bytes = patternBytes(70_000, 9);
        const path = join(scratchDir, 'same.bin');
        await writeFile(path, bytes);
        const results = [
          await store.put(bytes),
          await store.put(Readable.from(chunksOf(bytes, 10_000))),
          await store.putFile(path),
          await store.put(bytes),
        ];
        for (const result of results) expect(result).toEqual(results[0]);
      });

      it('keeps the stored bytes intact when the same content is put again', async () => {
        const bytes = patternBytes(40_000, 10);
        const first = await store.put(bytes);
        await store.put(bytes);
        await store.put(Readable.from([bytes]));
        expect(fingerprint(await store.getBytes(first.contentHash))).toEqual(fingerprint(bytes));
      });

      it('accepts concurrent puts of the same content', async () => {
        const bytes = patternBytes(1_500_000, 11);
        const results = await Promise.all([
          ...Array.from({ length: 4 }, () => store.put(bytes)),
          ...Array.from({ length: 4 }, () => store.put(Readable.from(chunksOf(bytes, 100_000)))),
        ]);
        for (const result of results) expect(result).toEqual(results[0]);
        expect(results[0]?.contentHash).toBe(sha256(bytes));
        expect(fingerprint(await store.getBytes(sha256(bytes)))).toEqual(fingerprint(bytes));
      });
    });

    describe('missing content', () => {
      it('reports an unknown hash as not existing', async () => {
        expect(await store.exists(MISSING_HASH)).toBe(false);
      });

      it.each(['get', 'getBytes', 'getFile'] as const)(
        'rejects %s of an unknown hash with NotFoundError naming it',
        async (method) => {
          const attempt = store[method](MISSING_HASH);
          await expect(attempt).rejects.toBeInstanceOf(NotFoundError);
          await expect(attempt).rejects.toThrow(MISSING_HASH);
        },
      );
    });

    describe('failed writes', () => {
      it('rejects put with the error of a failing source and stores nothing', async () => {
        const before = patternBytes(3 * 64 * 1024, 12);
        const intended = Buffer.concat([before, patternBytes(64 * 1024, 13)]);
        const failure = new Error('source broke');
        async function* failing() {
          yield* chunksOf(before, 64 * 1024);
          throw failure;
        }
        await expect(store.put(failing())).rejects.toBe(failure);
        // Every prefix the store may have hashed or written so far, and the whole content.
        const prefixes = [1, 2, 3].map((chunks) => before.subarray(0, chunks * 64 * 1024));
        for (const hash of [...prefixes.map(sha256), sha256(intended)]) {
          expect(await store.exists(hash)).toBe(false);
          await expect(store.getBytes(hash)).rejects.toBeInstanceOf(NotFoundError);
        }
      });

      it('rejects put when a Readable source is destroyed with an error', async () => {
        const before = patternBytes(100_000, 14);
        const source = new Readable({ read() {} });
        source.push(before);
        setTimeout(() => source.destroy(new Error('connection reset')), 20);
        await expect(store.put(source)).rejects.toThrow('connection reset');
        expect(await store.exists(sha256(before))).toBe(false);
      });
    });

    describe('integrity', () => {
      it('refuses to return edited bytes from getBytes, get and getFile, naming the blob', async () => {
        const original = Buffer.from('{"accuracy":0.91} — integrity test');
        const blob = await store.put(original);
        await fixture.damage(blob.contentHash, Buffer.from('{"accuracy":0.99} — integrity test'));
        await expect(store.getBytes(blob.contentHash)).rejects.toThrow(IntegrityError);
        await expect(store.getBytes(blob.contentHash)).rejects.toThrow(blob.contentHash);
        await expect(readAll(await store.get(blob.contentHash))).rejects.toThrow(IntegrityError);
        await expect(store.getFile(blob.contentHash)).rejects.toThrow(IntegrityError);
        expect(await store.check(blob.contentHash)).toBe('damaged');
      });

      it('refuses a blob truncated to 0 bytes instead of returning an empty value', async () => {
        const blob = await store.put('truncated later — integrity test');
        await fixture.damage(blob.contentHash, Buffer.alloc(0));
        await expect(store.getBytes(blob.contentHash)).rejects.toThrow(IntegrityError);
        expect(await store.check(blob.contentHash)).toBe('damaged');
      });

      it('detects damage in a large blob while streaming it', async () => {
        const bytes = patternBytes(3 * 1024 * 1024 + 17, 91);
        const blob = await store.put(Readable.from(chunksOf(bytes, 256 * 1024)));
        const damaged = Buffer.from(bytes);
        damaged.writeUInt8(damaged.readUInt8(damaged.length - 1) ^ 0xff, damaged.length - 1);
        await fixture.damage(blob.contentHash, damaged);
        await expect(readAll(await store.get(blob.contentHash))).rejects.toThrow(IntegrityError);
        expect(await store.check(blob.contentHash)).toBe('damaged');
      });

      it('repairs a damaged blob when the same content is written again, whichever way it arrives', async () => {
        const text = 'repaired by a rewrite — integrity test';
        const blob = await store.put(text);
        for (const write of [
          () => store.put(text),
          () => store.put(Readable.from([Buffer.from(text)])),
          async () => {
            const path = join(scratchDir, 'repair.txt');
            await writeFile(path, text);
            return store.putFile(path);
          },
        ]) {
          await fixture.damage(blob.contentHash, Buffer.from('garbage'));
          expect((await write()).contentHash).toBe(blob.contentHash);
          expect(await store.check(blob.contentHash)).toBe('ok');
          expect((await store.getBytes(blob.contentHash)).toString('utf8')).toBe(text);
        }
      });

      it('reports intact and missing blobs as such', async () => {
        const blob = await store.put('checked — integrity test');
        expect(await store.check(blob.contentHash)).toBe('ok');
        expect(await store.check(MISSING_HASH)).toBe('missing');
      });
    });

    describe('sizes', () => {
      it.each([
        ['an empty string', () => ''],
        ['an empty Buffer', () => Buffer.alloc(0)],
        ['an empty stream', () => Readable.from([])],
      ])('stores %s as the empty blob', async (_label, source) => {
        const blob = await store.put(source());
        expect(blob).toMatchObject({ contentHash: EMPTY_SHA256, size: 0 });
        expect((await store.getBytes(EMPTY_SHA256)).length).toBe(0);
        expect(await readAll(await store.get(EMPTY_SHA256))).toHaveLength(0);
        expect(await readFile(await store.getFile(EMPTY_SHA256))).toHaveLength(0);
      });

      it('streams a multi-megabyte blob in and out', async () => {
        const chunkSize = 256 * 1024;
        const chunkCount = 64; // 16 MiB
        const expected = createHash('sha256');
        async function* generate() {
          for (let index = 0; index < chunkCount; index++) {
            const chunk = patternBytes(chunkSize, 100 + index);
            expected.update(chunk);
            yield chunk;
          }
        }
        const blob = await store.put(generate());
        const expectedHash = `sha256:${expected.digest('hex')}`;
        expect(blob).toMatchObject({ contentHash: expectedHash, size: chunkSize * chunkCount });

        const actual = createHash('sha256');
        let size = 0;
        for await (const chunk of await store.get(blob.contentHash)) {
          actual.update(chunk as Buffer);
          size += (chunk as Buffer).length;
        }
        expect(`sha256:${actual.digest('hex')}`).toBe(expectedHash);
        expect(size).toBe(chunkSize * chunkCount);
      });
    });
  });
}

/** Deterministic, non-repeating-looking bytes; different seeds give different content. */
export function patternBytes(length: number, seed: number): Buffer {
  const bytes = Buffer.allocUnsafe(length);
  let state = (seed * 2654435761) >>> 0 || 1;
  for (let index = 0; index < length; index++) {
    // xorshift32
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    bytes[index] = state & 0xff;
  }
  return bytes;
}

export function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/**
 * Size and hash of some bytes, for comparing blobs: `toEqual` on large Buffers compares element by
 * element and takes seconds per megabyte.
 */
export function fingerprint(bytes: Uint8Array): { size: number; contentHash: string } {
  return { size: bytes.byteLength, contentHash: sha256(bytes) };
}

export async function readAll(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}

function chunksOf(bytes: Buffer, size: number): Buffer[] {
  const chunks: Buffer[] = [];
  for (let offset = 0; offset < bytes.length; offset += size) chunks.push(bytes.subarray(offset, offset + size));
  return chunks;
}
