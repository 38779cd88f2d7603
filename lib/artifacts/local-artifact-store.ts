import { createHash, type Hash, randomUUID } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  type Stats,
  statSync,
  unlinkSync,
  utimesSync,
  writeSync,
} from 'node:fs';
import { type FileHandle, open, readFile, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { NotFoundError } from '../errors.ts';
import type { ArtifactStore, BlobSource, GarbageCollection, StoredBlob } from './artifact-store.ts';
import { CoalescingWriter, writeFully } from './coalescing-writer.ts';
import { type BlobCheck, checkedBytes, damagedBlobError, hashFile, hexOfContentHash } from './integrity.ts';
import { VerifiedFileStream } from './verified-file-stream.ts';

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

/**
 * An {@link ArtifactStore} on local disk, content-addressed by SHA-256.
 *
 * Layout under `root`: `blobs/<first two hex digits>/<hex>` holds each blob (read-only);
 * `tmp/` holds writes in progress. Content is streamed into a temp file while being hashed, then
 * renamed onto its content path, so readers never see a partial blob and a failed write leaves
 * nothing behind. If the blob already exists the temp file is dropped: identical content is stored
 * once, and concurrent writes of the same content both succeed.
 *
 * Integrity: every read re-hashes what it returns (streams as they flow, so large blobs cost no
 * memory) and a mismatch is an `IntegrityError`; a write that finds a damaged blob under its hash
 * replaces it; a blob and its directory entry are fsynced before `put` returns, so the metadata
 * record committed after it never points at bytes a power cut could lose. A write of content that
 * is already stored refreshes the blob's modification time, which `collectGarbage` relies on.
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
  /** Blobs `getFile` has re-hashed, with the file identity (size, inode, mtime) they had then. */
  readonly #verifiedFiles = new Map<string, string>();

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

  /**
   * A stream of the blob, verified in the same pass that reads it (see {@link VerifiedFileStream}).
   * Blobs up to 1 MiB are read whole, synchronously (see `getBytes`), and checked before any byte
   * is passed on.
   */
  async get(contentHash: string): Promise<Readable> {
    const path = this.#blobPath(contentHash);
    let info: Stats;
    try {
      info = statSync(path);
    } catch (error) {
      throw this.#translateMissing(error, contentHash);
    }
    if (info.size <= SYNC_READ_LIMIT) {
      let bytes: Buffer;
      try {
        bytes = readFileSync(path);
      } catch (error) {
        throw this.#translateMissing(error, contentHash);
      }
      // Checked as the stream is read, so damage fails the stream, as it does for large blobs.
      return Readable.from(checkedChunks(bytes, contentHash, path), { objectMode: false });
    }
    const handle = await open(path, 'r').catch((error: unknown) => {
      throw this.#translateMissing(error, contentHash);
    });
    // Reads `info.size` bytes: had the file been replaced since the stat, they are still verified.
    return new VerifiedFileStream(handle, info.size, contentHash, path, CHUNK_SIZE);
  }

  async getBytes(contentHash: string): Promise<Buffer> {
    const path = this.#blobPath(contentHash);
    let bytes: Buffer;
    try {
      // Small values (the common case: JSON step outputs) are read synchronously: promise-based
      // readFile makes four thread-pool round trips (~170 µs vs ~40 µs), paid on every step input.
      bytes = statSync(path).size <= SYNC_READ_LIMIT ? readFileSync(path) : await readFile(path);
    } catch (error) {
      throw this.#translateMissing(error, contentHash);
    }
    return checkedBytes(bytes, contentHash, path);
  }

  /**
   * The blob's own path, after re-hashing the file (streamed). A file seen intact is not re-hashed
   * while its size, inode and modification time stay the same: any write through the file system
   * changes the modification time.
   */
  async getFile(contentHash: string): Promise<string> {
    const path = this.#blobPath(contentHash);
    let info: Stats;
    try {
      info = statSync(path);
    } catch (error) {
      throw this.#translateMissing(error, contentHash);
    }
    const identity = fileIdentity(info);
    if (this.#verifiedFiles.get(contentHash) === identity) return path;
    const { hex } = await hashFile(path);
    if (`sha256:${hex}` !== contentHash) throw damagedBlobError(contentHash, path, hex);
    this.#verifiedFiles.set(contentHash, identity);
    return path;
  }

  async exists(contentHash: string): Promise<boolean> {
    return existsSync(this.#blobPath(contentHash));
  }

  async check(contentHash: string): Promise<BlobCheck> {
    const path = this.#blobPath(contentHash);
    if (!existsSync(path)) return 'missing';
    return (await this.#isIntact(hexOfContentHash(contentHash))) ? 'ok' : 'damaged';
  }

  /**
   * Removes blobs no record points at, and temp files of writes that never finished, last written
   * before `olderThan` (now minus a grace period). Safe beside running writers:
   *
   * - every `put` refreshes the modification time of the blob it stores or finds, and a writer
   *   commits the record pointing at a blob moments after its `put`; so a blob that a record
   *   committed after `isReferenced` was computed points at was written after `olderThan`, when
   *   the caller takes `olderThan` before computing `isReferenced` (as long as no writer takes
   *   longer than the grace period between its put and its commit);
   * - a candidate is first renamed into `trash/` and only then judged by its modification time: a
   *   writer that refreshed it before the rename left it young, and it is moved back; a writer
   *   that comes after the rename finds no blob and writes it again.
   *
   * `isReferenced` must hold every blob a record points at, directly or through a manifest.
   */
  async collectGarbage(
    isReferenced: (contentHash: string) => boolean,
    options: { olderThan: number; dryRun?: boolean },
  ): Promise<GarbageCollection> {
    const cutoff = options.olderThan;
    const result: GarbageCollection = { removed: [], removedBytes: 0, kept: 0, tempFilesRemoved: 0 };
    const trashDir = join(this.root, 'trash');
    for (const shard of listDir(this.#blobsDir)) {
      for (const hex of listDir(join(this.#blobsDir, shard))) {
        const contentHash = `sha256:${hex}`;
        const path = join(this.#blobsDir, shard, hex);
        const before = statOrUndefined(path);
        if (before === undefined) continue;
        if (isReferenced(contentHash) || before.mtimeMs > cutoff) {
          result.kept++;
          continue;
        }
        if (options.dryRun) {
          result.removed.push(contentHash);
          result.removedBytes += before.size;
          continue;
        }
        this.#ensureDir(trashDir);
        const trashPath = join(trashDir, `${hex}.${randomUUID()}`);
        try {
          renameSync(path, trashPath);
        } catch {
          continue; // Removed or replaced meanwhile.
        }
        const after = statSync(trashPath);
        if (after.mtimeMs > cutoff && !existsSync(path)) {
          renameSync(trashPath, path); // A writer refreshed it just before the rename: keep it.
          result.kept++;
          continue;
        }
        unlinkSync(trashPath);
        this.#verifiedFiles.delete(contentHash);
        result.removed.push(contentHash);
        result.removedBytes += after.size;
      }
    }
    for (const name of listDir(this.#tmpDir)) {
      const path = join(this.#tmpDir, name);
      const info = statOrUndefined(path);
      if (info === undefined || info.mtimeMs > cutoff) continue;
      if (!options.dryRun) unlinkSync(path);
      result.tempFilesRemoved++;
    }
    return result;
  }

  /** In-memory content is hashed up front, so content already stored costs no write at all. */
  async #putBytes(bytes: Uint8Array): Promise<StoredBlob> {
    const hex = createHash('sha256').update(bytes).digest('hex');
    const blob = this.#describe(hex, bytes.byteLength);
    if ((await this.#isIntact(hex, bytes.byteLength)) && this.#touch(hex)) return blob;
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
      const fd = openSync(tmpPath, 'wx', BLOB_MODE);
      try {
        for (let offset = 0; offset < bytes.byteLength; ) {
          offset += writeSync(fd, bytes, offset, bytes.byteLength - offset);
        }
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      this.#commitSync(tmpPath, hex);
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
        await target.sync();
      } finally {
        await target.close();
      }
      if ((await this.#isIntact(written.hex, written.size)) && this.#touch(written.hex)) {
        unlinkSync(tmpPath);
      } else {
        this.#commitSync(tmpPath, written.hex);
      }
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
   * Moves a complete, fsynced temp file onto its content path with an atomic rename — replacing a
   * damaged blob there, if any; concurrent writers of the same content both succeed, the later
   * rename replacing the blob with identical bytes — then fsyncs the directory so the new entry is
   * durable too. Synchronous for the reason given in `#writeSmallBlob`.
   */
  #commitSync(tmpPath: string, hex: string): void {
    const blobPath = this.#pathOf(hex);
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
    this.#verifiedFiles.delete(`sha256:${hex}`);
    fsyncDir(shardDir);
  }

  /** Whether the blob stored under `hex` has `expectedSize` bytes (when given) hashing to `hex`. */
  async #isIntact(hex: string, expectedSize?: number): Promise<boolean> {
    const path = this.#pathOf(hex);
    const info = statOrUndefined(path);
    if (info === undefined || (expectedSize !== undefined && info.size !== expectedSize)) return false;
    if (info.size <= SYNC_READ_LIMIT) return createHash('sha256').update(readFileSync(path)).digest('hex') === hex;
    return (await hashFile(path)).hex === hex;
  }

  /**
   * Marks a blob as just written, for `collectGarbage`. False if it was removed meanwhile: the
   * caller then writes it again.
   */
  #touch(hex: string): boolean {
    const now = new Date();
    try {
      utimesSync(this.#pathOf(hex), now, now);
      return true;
    } catch (error) {
      if (isErrorCode(error, 'ENOENT')) return false;
      throw error;
    }
  }

  #ensureDir(dir: string): void {
    if (this.#madeDirs.has(dir)) return;
    const parent = join(dir, '..');
    const created = mkdirSync(dir, { recursive: true });
    // A new directory's own entry must be durable too, or a crash could lose the blobs inside it.
    if (created !== undefined) fsyncDir(parent);
    this.#madeDirs.add(dir);
  }

  #describe(hex: string, size: number): StoredBlob {
    return { contentHash: `sha256:${hex}`, size, uri: pathToFileURL(this.#pathOf(hex)).href };
  }

  #pathOf(hex: string): string {
    return join(this.#blobsDir, hex.slice(0, 2), hex);
  }

  #blobPath(contentHash: string): string {
    return this.#pathOf(hexOfContentHash(contentHash));
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

function* checkedChunks(bytes: Buffer, contentHash: string, where: string): Generator<Buffer> {
  checkedBytes(bytes, contentHash, where);
  if (bytes.byteLength > 0) yield bytes;
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function fileIdentity(info: Stats): string {
  return `${info.size}:${info.ino}:${info.mtimeMs}:${info.ctimeMs}`;
}

function statOrUndefined(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function isErrorCode(error: unknown, code: string): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === code;
}
