import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type SpooledStream, spoolStream } from '../../../lib/artifacts/stream-spool.ts';
import { fingerprint, patternBytes, sha256 } from '../../conformance/artifact-store.conformance.ts';

describe('spoolStream', () => {
  let dir: string;
  const spooled: SpooledStream[] = [];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stackline-spool-'));
  });

  afterEach(async () => {
    for (const s of spooled.splice(0)) await s.discard();
    await rm(dir, { recursive: true, force: true });
  });

  const spool = async (source: AsyncIterable<Uint8Array | string>, options: { diskMaxBytes?: number } = {}) => {
    const result = await spoolStream(source, { dir, memoryMaxBytes: 64 * 1024, ...options });
    spooled.push(result);
    return result;
  };

  async function contentsOf(result: SpooledStream): Promise<Buffer> {
    if (result.kind === 'memory') return result.bytes;
    const { buffer, bytesRead } = await result.handle.read(Buffer.alloc(result.size), 0, result.size, 0);
    return buffer.subarray(0, bytesRead);
  }

  function chunksOf(bytes: Buffer, size: number): Buffer[] {
    const chunks: Buffer[] = [];
    for (let offset = 0; offset < bytes.length; offset += size) chunks.push(bytes.subarray(offset, offset + size));
    return chunks;
  }

  it('keeps a stream below the memory limit in memory, hashed, and touches no disk', async () => {
    const bytes = patternBytes(40_000, 1);
    const result = await spool(Readable.from(chunksOf(bytes, 7_000)));
    expect(result.kind).toBe('memory');
    expect(result.kind === 'memory' && `sha256:${result.hex}`).toBe(sha256(bytes));
    expect(fingerprint(await contentsOf(result))).toEqual(fingerprint(bytes));
    expect(await readdir(dir)).toEqual([]);
  });

  it('spools a longer stream into a file that has no name on disk, hashed', async () => {
    const bytes = patternBytes(1_000_000, 2);
    const result = await spool(Readable.from(chunksOf(bytes, 10_000)));
    expect(result.kind).toBe('file');
    expect(result.kind === 'file' && [`sha256:${result.hex}`, result.size]).toEqual([sha256(bytes), bytes.length]);
    expect(fingerprint(await contentsOf(result))).toEqual(fingerprint(bytes));
    // Unlinked as soon as created: a crash cannot leave it behind.
    expect(await readdir(dir)).toEqual([]);
  });

  it('copies what it keeps, so a source may reuse one buffer for every chunk', async () => {
    const bytes = patternBytes(300_000, 3);
    const reused = Buffer.alloc(10_000);
    async function* reusing() {
      for (const chunk of chunksOf(bytes, 10_000)) {
        chunk.copy(reused);
        yield reused.subarray(0, chunk.length);
      }
    }
    const result = await spool(reusing());
    expect(fingerprint(await contentsOf(result))).toEqual(fingerprint(bytes));
  });

  it('stops at the disk limit and hands back the rest of the stream, unread and unhashed', async () => {
    const bytes = patternBytes(500_000, 4);
    const result = await spool(Readable.from(chunksOf(bytes, 50_000)), { diskMaxBytes: 200_000 });
    expect(result.kind).toBe('overflow');
    if (result.kind !== 'overflow') return;
    expect(result.size).toBe(200_000);
    const rest: Buffer[] = [];
    for await (const chunk of result.rest) {
      result.hash.update(chunk);
      rest.push(Buffer.from(chunk));
    }
    const whole = Buffer.concat([await contentsOf(result), ...rest]);
    expect(fingerprint(whole)).toEqual(fingerprint(bytes));
    expect(`sha256:${result.hash.digest('hex')}`).toBe(sha256(bytes));
  });

  it("rethrows a failing source's error and leaves nothing behind", async () => {
    const failure = new Error('source broke');
    async function* failing() {
      yield* chunksOf(patternBytes(200_000, 5), 20_000);
      throw failure;
    }
    await expect(spool(failing())).rejects.toBe(failure);
    expect(await readdir(dir)).toEqual([]);
  });
});
