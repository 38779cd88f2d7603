import { createHash, type Hash, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { type FileHandle, open, readFile, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { NotFoundError, ValidationError } from '../errors.ts';
import type { ArtifactStore, BlobSource, StoredBlob } from './artifact-store.ts';

/**
 * Chunk size for file copies and read streams. Large chunks keep the per-chunk overhead (a
 * thread-pool round trip, a hash update) small next to the copying itself; on a 1 GB file, 1 MiB
 * is within noise of larger sizes and several times faster than the 64 KiB stream default.
 */
const CHUNK_SIZE = 1024 * 1024;
/** Blobs up to this size are read synchronously by `getBytes`. */
const SYNC_READ_LIMIT = 1024 * 1024;

/** In-memory content up to this size is written synchronously (see `#writeSmallBlob`). */
const SYNC_WRITE_LIMIT = 64 * 1024;
/** Blobs never change once written, so they are created read-only. */
const BLOB_MODE = 0o444;
const CONTENT_HASH = /^sha256:([0-9a-f]{64})$/;

/**
 * An {@link ArtifactStore} on local disk, content-addressed by SHA-256.
 *
 * Layout under `root`: `blobs/<first two hex digits>/<hex>` holds each blob (read-only);
 * `tmp/` holds writes in progress. Content is streamed into a temp file while being hashed, then
 * renamed onto its content path, so readers never see a partial blob and a failed write leaves
 * nothing behind. If the blob already exists the temp file is dropped: identical content is stored
 * once, and concurrent writes of the same content both succeed.
 *
 * @example
 * const store = new LocalArtifactStore('.stackline/artifacts');
 * const { contentHash } = await store.put(JSON.stringify({ accuracy: 0.97 }));
 * const bytes = await store.getBytes(contentHash);
 */
export class LocalArtifactStore implements ArtifactStore {
  readonly kind = 'local';
  /** Absolute path of the store's root directory. */
  readonly root: string;
  readonly #blobsDir: string;
  readonly #tmpDir: string;
  /** Directories known to exist, so a put does not pay for a `mkdir` each time. */
  readonly #madeDirs = new Set<string>();

  constructor(root: string) {
    this.root = resolve(root);
    this.#blobsDir = join(this.root, 'blobs');
    this.#tmpDir = join(this.root, 'tmp');
  }

  async put(source: BlobSource): Promise<StoredBlob> {
    if (typeof source === 'string') return this.#putBytes(Buffer.from(source, 'utf8'));
    if (source instanceof Uint8Array) return this.#putBytes(source);
    return this.#putChunks(source);
  }

  async putFile(path: string): Promise<StoredBlob> {
    const source = await open(path, 'r').catch((error: unknown) => {
      if (isErrorCode(error, 'ENOENT')) {
        throw new NotFoundError(`Cannot store file ${path}: it does not exist.`, { cause: error, context: { path } });
      }
      throw error;
    });
    try {
      return await this.#writeBlob((target, hash) => copyHashing(source, target, hash));
    } finally {
      await source.close();
    }
  }

  async get(contentHash: string): Promise<Readable> {
    const handle = await open(this.#blobPath(contentHash), 'r').catch((error: unknown) => {
      throw this.#translateMissing(error, contentHash);
    });
    return handle.createReadStream({ highWaterMark: CHUNK_SIZE });
  }

  async getBytes(contentHash: string): Promise<Buffer> {
    const path = this.#blobPath(contentHash);
    try {
      // Small values (the common case: JSON step outputs) are read synchronously: promise-based
      // readFile makes four thread-pool round trips (~170 µs vs ~40 µs), paid on every step input.
      if (statSync(path).size <= SYNC_READ_LIMIT) return readFileSync(path);
      return await readFile(path);
    } catch (error) {
      throw this.#translateMissing(error, contentHash);
    }
  }

  async getFile(contentHash: string): Promise<string> {
    const path = this.#blobPath(contentHash);
    if (!existsSync(path)) throw this.#notFound(contentHash);
    return path;
  }

  async exists(contentHash: string): Promise<boolean> {
    return existsSync(this.#blobPath(contentHash));
  }

  /** In-memory content is hashed up front, so content already stored costs no write at all. */
  async #putBytes(bytes: Uint8Array): Promise<StoredBlob> {
    const hex = createHash('sha256').update(bytes).digest('hex');
    const blob = this.#describe(hex, bytes.byteLength);
    if (existsSync(this.#pathOf(hex))) return blob;
    if (bytes.byteLength <= SYNC_WRITE_LIMIT) {
      this.#writeSmallBlob(hex, bytes);
      return blob;
    }
    return this.#writeBlob(async (target) => {
      await writeFully(target, bytes, 0);
      return { hex, size: bytes.byteLength };
    });
  }

  /**
   * Writes a small blob with synchronous calls. Creating, writing and renaming a small file takes
   * tens of microseconds; each thread-pool round trip of the async API costs as much again, and
   * far more on a busy machine, so going through it would multiply the cost of every small put
   * (JSON metrics, parameters) for no benefit.
   */
  #writeSmallBlob(hex: string, bytes: Uint8Array): void {
    const tmpPath = this.#newTmpPath();
    try {
      writeFileSync(tmpPath, bytes, { flag: 'wx', mode: BLOB_MODE });
      this.#commit(tmpPath, hex);
    } catch (error) {
      try {
        unlinkSync(tmpPath);
      } catch {
        // Already renamed into place, or never created.
      }
      throw error;
    }
  }

  async #putChunks(source: AsyncIterable<Uint8Array | string>): Promise<StoredBlob> {
    return this.#writeBlob(async (target, hash) => {
      const writer = new CoalescingWriter(target);
      try {
        for await (const item of source) {
          const chunk = typeof item === 'string' ? Buffer.from(item, 'utf8') : item;
          // Hashed while the thread pool writes the previous batch (or this chunk, if large).
          const writing = writer.write(chunk);
          hash.update(chunk);
          await writing;
        }
        await writer.flush();
      } catch (error) {
        await writer.settle();
        throw error;
      }
      return { hex: hash.digest('hex'), size: writer.size };
    });
  }

  /**
   * Writes a blob of unknown or large size: `write` fills a fresh temp file (hashing as it goes),
   * then the temp file is committed. On any failure the temp file is removed.
   */
  async #writeBlob(
    write: (target: FileHandle, hash: Hash) => Promise<{ hex: string; size: number }>,
  ): Promise<StoredBlob> {
    const tmpPath = this.#newTmpPath();
    // Created read-only: the mode applies to later opens, this handle can still write.
    const target = await open(tmpPath, 'wx', BLOB_MODE);
    let written: { hex: string; size: number };
    try {
      try {
        written = await write(target, createHash('sha256'));
      } finally {
        await target.close();
      }
      this.#commit(tmpPath, written.hex);
    } catch (error) {
      await unlink(tmpPath).catch(() => {});
      throw error;
    }
    return this.#describe(written.hex, written.size);
  }

  #newTmpPath(): string {
    this.#ensureDir(this.#tmpDir);
    return join(this.#tmpDir, `${randomUUID()}.tmp`);
  }

  /**
   * Moves a complete temp file onto its content path with an atomic rename, or drops it if that
   * blob already exists (identical content is stored once; concurrent writers of the same content
   * both succeed, the later rename replacing the blob with identical bytes). These are
   * metadata-only calls of microseconds, done synchronously for the reason given in `#writeSmallBlob`.
   */
  #commit(tmpPath: string, hex: string): void {
    const blobPath = this.#pathOf(hex);
    if (existsSync(blobPath)) {
      unlinkSync(tmpPath);
      return;
    }
    const shardDir = join(this.#blobsDir, hex.slice(0, 2));
    this.#ensureDir(shardDir);
    try {
      renameSync(tmpPath, blobPath);
    } catch (error) {
      // The shard directory was removed behind our back (for example by a cleanup job).
      if (!isErrorCode(error, 'ENOENT') || !existsSync(tmpPath)) throw error;
      this.#madeDirs.delete(shardDir);
      this.#ensureDir(shardDir);
      renameSync(tmpPath, blobPath);
    }
  }

  #ensureDir(dir: string): void {
    if (this.#madeDirs.has(dir)) return;
    mkdirSync(dir, { recursive: true });
    this.#madeDirs.add(dir);
  }

  #describe(hex: string, size: number): StoredBlob {
    return { contentHash: `sha256:${hex}`, size, uri: pathToFileURL(this.#pathOf(hex)).href };
  }

  #pathOf(hex: string): string {
    return join(this.#blobsDir, hex.slice(0, 2), hex);
  }

  #blobPath(contentHash: string): string {
    const hex = CONTENT_HASH.exec(contentHash)?.[1];
    if (hex === undefined) {
      throw new ValidationError(
        `Invalid content hash ${JSON.stringify(contentHash)}: expected "sha256:" followed by 64 lowercase hex digits.`,
        { context: { contentHash } },
      );
    }
    return this.#pathOf(hex);
  }

  #translateMissing(error: unknown, contentHash: string): unknown {
    return isErrorCode(error, 'ENOENT') ? this.#notFound(contentHash, error) : error;
  }

  #notFound(contentHash: string, cause?: unknown): NotFoundError {
    return new NotFoundError(
      `Artifact blob ${contentHash} is not in the local artifact store at ${this.root}. ` +
        'Check that the run used this store (stack), or re-run the step that produced the artifact.',
      { cause, context: { contentHash, root: this.root } },
    );
  }
}

/**
 * Copies `source` to `target` while hashing, overlapping the three costs: while chunk N is being
 * written (thread pool) it is also hashed (this thread), and chunk N+1 is read (thread pool) into
 * the second buffer. Hashing and writing only read the buffer, so sharing it is safe.
 */
async function copyHashing(source: FileHandle, target: FileHandle, hash: Hash): Promise<{ hex: string; size: number }> {
  let filled = Buffer.allocUnsafeSlow(CHUNK_SIZE);
  let spare = Buffer.allocUnsafeSlow(CHUNK_SIZE);
  let size = 0;
  let { bytesRead } = await source.read(filled, 0, CHUNK_SIZE, 0);
  while (bytesRead > 0) {
    const chunk = filled.subarray(0, bytesRead);
    const writing = writeFully(target, chunk, size);
    const reading = source.read(spare, 0, CHUNK_SIZE, size + bytesRead);
    hash.update(chunk);
    // Settle both before acting on a failure, so no operation is left running on a closing handle.
    const [wrote, read] = await Promise.allSettled([writing, reading]);
    if (wrote.status === 'rejected') throw wrote.reason;
    if (read.status === 'rejected') throw read.reason;
    size += bytesRead;
    bytesRead = read.value.bytesRead;
    [filled, spare] = [spare, filled];
  }
  return { hex: hash.digest('hex'), size };
}

/** Chunks at least this large are written as they are; smaller ones are batched. */
const DIRECT_WRITE_MIN = 256 * 1024;

/**
 * Writes a stream of chunks to a file in large batches. Streams commonly deliver 16–64 KiB chunks,
 * and one thread-pool write per chunk costs more than the copy into a 1 MiB batch: batching makes
 * a 64 KiB-chunk stream nearly as fast as a file copy. Small chunks are copied, so a source may
 * reuse its buffer once `write` resolves; a batch is written while the next one fills.
 */
class CoalescingWriter {
  readonly #target: FileHandle;
  /** File offset of the next byte handed to `write`. */
  size = 0;
  #batch: Buffer | undefined;
  #spare: Buffer | undefined;
  #batched = 0;
  /** The write of the previous batch, still in flight. */
  #inFlight: Promise<void> | undefined;

  constructor(target: FileHandle) {
    this.#target = target;
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (chunk.byteLength >= DIRECT_WRITE_MIN) {
      await this.flush();
      await writeFully(this.#target, chunk, this.size);
      this.size += chunk.byteLength;
      return;
    }
    if (this.#batched + chunk.byteLength > CHUNK_SIZE) await this.#dispatchBatch();
    this.#batch ??= Buffer.allocUnsafeSlow(CHUNK_SIZE);
    this.#batch.set(chunk, this.#batched);
    this.#batched += chunk.byteLength;
    this.size += chunk.byteLength;
  }

  /** Writes whatever is batched and waits for every write to finish. */
  async flush(): Promise<void> {
    if (this.#batched > 0) await this.#dispatchBatch();
    await this.#inFlight;
    this.#inFlight = undefined;
  }

  /** Waits for the write in flight, ignoring its outcome — before closing the file after a failure. */
  async settle(): Promise<void> {
    await this.#inFlight?.catch(() => {});
  }

  async #dispatchBatch(): Promise<void> {
    await this.#inFlight;
    const batch = this.#batch as Buffer;
    const position = this.size - this.#batched;
    this.#inFlight = writeFully(this.#target, batch.subarray(0, this.#batched), position);
    // Observed when awaited; until then, keep a failure from counting as an unhandled rejection.
    this.#inFlight.catch(() => {});
    this.#batch = this.#spare;
    this.#spare = batch;
    this.#batched = 0;
  }
}

async function writeFully(target: FileHandle, chunk: Uint8Array, position: number): Promise<void> {
  let offset = 0;
  while (offset < chunk.byteLength) {
    const { bytesWritten } = await target.write(chunk, offset, chunk.byteLength - offset, position + offset);
    offset += bytesWritten;
  }
}

function isErrorCode(error: unknown, code: string): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === code;
}
