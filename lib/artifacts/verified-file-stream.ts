import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { damagedBlobError } from './integrity.ts';

/** One read of a {@link VerifiedFileStream}: a fresh buffer (it is handed to the consumer) and its length. */
interface Chunk {
  buffer: Buffer;
  bytesRead: number;
  /** File offset just past the bytes asked for. */
  end: number;
}

/**
 * Streams a file's first `size` bytes, hashing them in the same pass, and fails instead of ending
 * when they do not hash to `contentHash`. Up to `depth` reads of the next chunks (thread pool) run
 * while this one is hashed and consumed (this thread), so a verified read costs about what a plain
 * read does rather than a read plus a hash, where the disk rather than the CPU is the limit. The last chunk is held back until the digest matches: a consumer
 * never receives the complete bytes of a damaged blob, only a stream that errors with an
 * `IntegrityError`. Takes ownership of `handle` and closes it.
 */
export class VerifiedFileStream extends Readable {
  readonly #handle: FileHandle;
  readonly #size: number;
  readonly #chunkSize: number;
  readonly #contentHash: string;
  readonly #where: string;
  readonly #hash = createHash('sha256');
  /** File offset of the next read to start. */
  #position = 0;
  /** How many reads may be in flight at once. */
  readonly #depth: number;
  /** Reads started ahead of demand, oldest first. */
  readonly #ahead: Promise<Chunk>[] = [];
  /** The read the stream is waiting for. */
  #current: Promise<Chunk> | undefined;

  constructor(handle: FileHandle, size: number, contentHash: string, where: string, chunkSize: number, depth = 2) {
    super({ highWaterMark: chunkSize });
    this.#depth = depth;
    this.#handle = handle;
    this.#size = size;
    this.#contentHash = contentHash;
    this.#where = where;
    this.#chunkSize = chunkSize;
  }

  override _read(): void {
    const reading = this.#ahead.shift() ?? this.#readNext();
    this.#current = reading;
    reading.then(
      (chunk) => this.#deliver(chunk),
      (error: Error) => this.destroy(error),
    );
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // Never close the handle under a read in flight.
    const inFlight = Promise.allSettled([this.#current, ...this.#ahead.splice(0)]);
    inFlight
      .then(() => this.#handle.close())
      .then(
        () => callback(error),
        (closeError: Error) => callback(error ?? closeError),
      );
  }

  #deliver({ buffer, bytesRead, end }: Chunk): void {
    if (this.destroyed) return;
    const chunk = buffer.subarray(0, bytesRead);
    // A short read means the file is shorter than it was: stop there (its bytes cannot match).
    const last = bytesRead < buffer.byteLength || end >= this.#size;
    while (!last && this.#ahead.length < this.#depth && this.#position < this.#size) {
      const next = this.#readNext();
      // Observed by a later `_read` or by `_destroy`; until then not an unhandled rejection.
      next.catch(() => {});
      this.#ahead.push(next);
    }
    this.#hash.update(chunk);
    if (!last) {
      this.push(chunk);
      return;
    }
    const actual = this.#hash.digest('hex');
    if (`sha256:${actual}` !== this.#contentHash) {
      this.destroy(damagedBlobError(this.#contentHash, this.#where, actual));
      return;
    }
    if (chunk.byteLength > 0) this.push(chunk);
    this.push(null);
  }

  /** Starts reading the next chunk; the file range is claimed now, so several reads may overlap. */
  async #readNext(): Promise<Chunk> {
    const start = this.#position;
    const length = Math.max(Math.min(this.#chunkSize, this.#size - start), 0);
    this.#position = start + length;
    const buffer = Buffer.allocUnsafeSlow(length);
    let bytesRead = 0;
    // A short read is not the end of the file; only a read of 0 bytes is.
    while (bytesRead < length) {
      const result = await this.#handle.read(buffer, bytesRead, length - bytesRead, start + bytesRead);
      if (result.bytesRead === 0) break;
      bytesRead += result.bytesRead;
    }
    return { buffer, bytesRead, end: start + length };
  }
}
