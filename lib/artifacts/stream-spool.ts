import { createHash, type Hash, randomUUID } from 'node:crypto';
import { type FileHandle, mkdir, open, statfs, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { CoalescingWriter } from './coalescing-writer.ts';

/**
 * A stream read to its end (or to the spool's limit) and hashed on the way, so that a store can
 * choose its content key before writing anything under a key.
 *
 * - `memory`: the whole stream, small enough to keep in memory.
 * - `file`: the whole stream, in an anonymous local file (`handle`, read it by position).
 * - `overflow`: the stream outgrew the space the spool may use. `handle` holds its first `size`
 *   bytes, already fed to `hash`; `rest` yields the remaining chunks (not yet hashed).
 *
 * Call `discard()` when done, whatever happened: it closes the file.
 */
export type SpooledStream =
  | { kind: 'memory'; bytes: Buffer; hex: string; discard(): Promise<void> }
  | { kind: 'file'; handle: FileHandle; size: number; hex: string; discard(): Promise<void> }
  | {
      kind: 'overflow';
      handle: FileHandle;
      size: number;
      hash: Hash;
      rest: AsyncIterable<Uint8Array>;
      discard(): Promise<void>;
    };

export interface SpoolOptions {
  /** Where the spool file goes (created if missing). */
  dir: string;
  /** Streams shorter than this stay in memory. */
  memoryMaxBytes: number;
  /**
   * At most this many bytes go to disk; beyond it the result is an `overflow`. Default: half the
   * space free in `dir` when the spool starts (room for downloads and other writers).
   */
  diskMaxBytes?: number;
}

/**
 * Reads `source` while hashing it (SHA-256): into memory while it stays under
 * `options.memoryMaxBytes`, then into a local file. The file is unlinked as soon as it is created
 * (where the platform allows), so a process killed mid-put leaves nothing on disk; it lives until
 * `discard()` closes it. Chunks are copied or written before the next one is read, so a source
 * may reuse its buffer. On a failure of the source or the disk, nothing is left behind and the
 * source's error is rethrown.
 *
 * @example
 * const spooled = await spoolStream(source, { dir: cacheDir, memoryMaxBytes: 5 * 1024 * 1024 });
 * try { if (spooled.kind !== 'overflow') console.log(spooled.hex); } finally { await spooled.discard(); }
 */
export async function spoolStream(
  source: AsyncIterable<Uint8Array | string>,
  options: SpoolOptions,
): Promise<SpooledStream> {
  const iterator = source[Symbol.asyncIterator]();
  const hash = createHash('sha256');
  const held: Buffer[] = [];
  let heldBytes = 0;
  let spool: Spool | undefined;
  try {
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) {
      const chunk = typeof next.value === 'string' ? Buffer.from(next.value, 'utf8') : next.value;
      if (spool === undefined && heldBytes + chunk.byteLength < options.memoryMaxBytes) {
        held.push(Buffer.from(chunk)); // A copy: the source may reuse its buffer.
        heldBytes += chunk.byteLength;
        hash.update(chunk);
        continue;
      }
      if (spool === undefined) {
        spool = await Spool.create(options);
        for (const bytes of held.splice(0)) await spool.writer.write(bytes);
      }
      if (spool.writer.size + chunk.byteLength > spool.maxBytes) {
        await spool.writer.flush();
        const { handle, writer } = spool;
        const rest = resume(chunk, iterator);
        return { kind: 'overflow', handle, size: writer.size, hash, rest, discard: spool.close };
      }
      // Hashed while the thread pool writes the previous batch (or this chunk, if large).
      const writing = spool.writer.write(chunk);
      hash.update(chunk);
      await writing;
    }
    if (spool === undefined) {
      const bytes = Buffer.concat(held, heldBytes);
      return { kind: 'memory', bytes, hex: hash.digest('hex'), discard: async () => {} };
    }
    await spool.writer.flush();
    const { handle, writer } = spool;
    return { kind: 'file', handle, size: writer.size, hex: hash.digest('hex'), discard: spool.close };
  } catch (error) {
    await spool?.writer.settle();
    await spool?.close();
    // Releases a source this function stopped reading because of its own failure (a disk error).
    await iterator.return?.().catch(() => {});
    throw error;
  }
}

/** The chunk that did not fit, then whatever the source still has. */
async function* resume(first: Uint8Array, iterator: AsyncIterator<Uint8Array | string>): AsyncGenerator<Uint8Array> {
  yield first;
  try {
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) {
      yield typeof next.value === 'string' ? Buffer.from(next.value, 'utf8') : next.value;
    }
  } finally {
    // A consumer that stops early (a failed upload) releases the source too.
    await iterator.return?.().catch(() => {});
  }
}

/** An anonymous spool file and how much of the disk it may use. */
class Spool {
  readonly writer: CoalescingWriter;

  constructor(
    readonly handle: FileHandle,
    readonly maxBytes: number,
    /** The file's path while it still has one (where it could not be unlinked while open). */
    readonly path: string | undefined,
  ) {
    this.writer = new CoalescingWriter(handle);
  }

  /** Closes the file (which frees its space) and removes it where that could not be done sooner. */
  readonly close = async (): Promise<void> => {
    await this.handle.close();
    if (this.path !== undefined) await unlink(this.path).catch(() => {});
  };

  static async create(options: SpoolOptions): Promise<Spool> {
    await mkdir(options.dir, { recursive: true });
    const maxBytes = options.diskMaxBytes ?? (await halfTheFreeSpace(options.dir));
    const path = join(options.dir, `.spool-${randomUUID()}.tmp`);
    const handle = await open(path, 'wx+', 0o600);
    // Unlinked now, the file has no name anyone could open or that a crash could leave behind.
    // Windows refuses to unlink an open file; there it is removed when closed.
    const unlinked = await unlink(path).then(
      () => true,
      () => false,
    );
    return new Spool(handle, maxBytes, unlinked ? undefined : path);
  }
}

async function halfTheFreeSpace(dir: string): Promise<number> {
  const { bavail, bsize } = await statfs(dir);
  return Math.floor((bavail * bsize) / 2);
}
