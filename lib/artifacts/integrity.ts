import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { pipeline as pipeStreams, type Readable, Transform } from 'node:stream';
import { IntegrityError, ValidationError } from '../errors.ts';

/**
 * Checks shared by every artifact store: bytes read back must hash to the content hash they are
 * stored under. A mismatch is an {@link IntegrityError}; loaders add the artifact version to it
 * (`lib/artifacts/load-artifact.ts`).
 */

const CONTENT_HASH = /^sha256:([0-9a-f]{64})$/;

/** The hex digest of a `sha256:<hex>` content hash. @throws ValidationError on any other shape. */
export function hexOfContentHash(contentHash: string): string {
  const hex = CONTENT_HASH.exec(contentHash)?.[1];
  if (hex === undefined) {
    throw new ValidationError(
      `Invalid content hash ${JSON.stringify(contentHash)}: expected "sha256:" followed by 64 lowercase hex digits.`,
      { context: { contentHash } },
    );
  }
  return hex;
}

/** The result of re-reading a blob: intact, absent, or present with other bytes. */
export type BlobCheck = 'ok' | 'missing' | 'damaged';

export function damagedBlobError(contentHash: string, where: string, actual: string): IntegrityError {
  return new IntegrityError(
    `Blob ${contentHash} at ${where} is damaged (its bytes hash to sha256:${actual}). ` +
      'Run "stackline artifacts verify" to list the affected versions; re-running the step that produced it rewrites it.',
    { context: { contentHash, where, actualHash: `sha256:${actual}` } },
  );
}

/** Returns `bytes` if they hash to `contentHash`. @throws IntegrityError */
export function checkedBytes(bytes: Buffer, contentHash: string, where: string): Buffer {
  const actual = createHash('sha256').update(bytes).digest('hex');
  if (`sha256:${actual}` !== contentHash) throw damagedBlobError(contentHash, where, actual);
  return bytes;
}

/**
 * Passes `source` through, hashing as it goes; the stream errors with an {@link IntegrityError} at
 * its end if the bytes were not `contentHash`. Nothing is buffered beyond the chunk in flight.
 */
export function verifyingStream(source: Readable, contentHash: string, where: string): Readable {
  const hash = createHash('sha256');
  const check = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      done(null, chunk);
    },
    flush(done) {
      const actual = hash.digest('hex');
      done(`sha256:${actual}` === contentHash ? null : damagedBlobError(contentHash, where, actual));
    },
  });
  // pipeline forwards a source error (or a missing file) to `check`, which the caller reads.
  return pipeStreams(source, check, () => {});
}

/** SHA-256 of a stream's bytes, read chunk by chunk. */
export async function hashStream(source: AsyncIterable<Buffer | Uint8Array>): Promise<{ hex: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of source) {
    hash.update(chunk);
    size += chunk.byteLength;
  }
  return { hex: hash.digest('hex'), size };
}

/** SHA-256 of a file, streamed in 1 MiB chunks. */
export function hashFile(path: string): Promise<{ hex: string; size: number }> {
  return hashStream(createReadStream(path, { highWaterMark: 1024 * 1024 }));
}
