import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { VerifiedFileStream } from '../../../lib/artifacts/verified-file-stream.ts';
import { IntegrityError } from '../../../lib/errors.ts';
import { fingerprint, patternBytes, sha256 } from '../../conformance/artifact-store.conformance.ts';

describe('VerifiedFileStream', () => {
  let dir: string;
  let path: string;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stackline-verified-read-'));
    path = join(dir, 'blob');
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** Reads the stream to its end or its error; returns what arrived and the error, if any. */
  async function consume(stream: VerifiedFileStream): Promise<{ bytes: Buffer; error?: unknown }> {
    const chunks: Buffer[] = [];
    try {
      for await (const chunk of stream) chunks.push(chunk as Buffer);
      return { bytes: Buffer.concat(chunks) };
    } catch (error) {
      return { bytes: Buffer.concat(chunks), error };
    }
  }

  it.each([1, 2, 4])('returns the bytes in order with %i reads in flight', async (depth) => {
    const bytes = patternBytes(100_003, depth);
    await writeFile(path, bytes);
    const stream = new VerifiedFileStream(await open(path, 'r'), bytes.length, sha256(bytes), path, 1_000, depth);
    const { bytes: read, error } = await consume(stream);
    expect(error).toBeUndefined();
    expect(fingerprint(read)).toEqual(fingerprint(bytes));
  });

  it('ends an empty file that hashes to the empty hash with no bytes', async () => {
    await writeFile(path, Buffer.alloc(0));
    const stream = new VerifiedFileStream(await open(path, 'r'), 0, sha256(Buffer.alloc(0)), path, 1_000);
    expect(await consume(stream)).toEqual({ bytes: Buffer.alloc(0) });
  });

  it('fails with an IntegrityError naming the blob, and holds back the last chunk, when the last byte is damaged', async () => {
    const bytes = patternBytes(10_000, 5);
    const damaged = Buffer.from(bytes);
    damaged[damaged.length - 1] = (damaged[damaged.length - 1] as number) ^ 0xff;
    await writeFile(path, damaged);
    const stream = new VerifiedFileStream(await open(path, 'r'), bytes.length, sha256(bytes), path, 1_000);
    const { bytes: read, error } = await consume(stream);
    expect(error).toBeInstanceOf(IntegrityError);
    expect((error as Error).message).toContain(sha256(bytes));
    expect((error as Error).message).toContain(path);
    // Everything but the last 1,000-byte chunk arrived; the damaged tail never did.
    expect(read.length).toBe(9_000);
  });

  it('fails with an IntegrityError when the file is shorter than the size it was opened with', async () => {
    const bytes = patternBytes(10_000, 6);
    await writeFile(path, bytes.subarray(0, 4_500));
    const stream = new VerifiedFileStream(await open(path, 'r'), bytes.length, sha256(bytes), path, 1_000, 2);
    const { error } = await consume(stream);
    expect(error).toBeInstanceOf(IntegrityError);
  });

  it('closes the file when destroyed half-way, after the reads in flight', async () => {
    const bytes = patternBytes(50_000, 7);
    await writeFile(path, bytes);
    const handle = await open(path, 'r');
    const stream = new VerifiedFileStream(handle, bytes.length, sha256(bytes), path, 1_000, 4);
    for await (const _chunk of stream) break; // breaking out of for-await destroys the stream
    await new Promise((resolve) => stream.once('close', resolve));
    expect(handle.fd).toBe(-1);
  });
});
