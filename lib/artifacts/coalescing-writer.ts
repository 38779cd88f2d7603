import type { FileHandle } from 'node:fs/promises';

/** Batch size, and the size of the two batch buffers (one filling while the other is written). */
const BATCH_SIZE = 1024 * 1024;

/** Chunks at least this large are written as they are; smaller ones are batched. */
const DIRECT_WRITE_MIN = 256 * 1024;

/**
 * Writes a stream of chunks to a file in large batches. Streams commonly deliver 16–64 KiB chunks,
 * and one thread-pool write per chunk costs more than the copy into a 1 MiB batch: batching makes
 * a 64 KiB-chunk stream nearly as fast as a file copy. Small chunks are copied, so a source may
 * reuse its buffer once `write` resolves; a batch is written while the next one fills.
 */
export class CoalescingWriter {
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
    if (this.#batched + chunk.byteLength > BATCH_SIZE) await this.#dispatchBatch();
    this.#batch ??= Buffer.allocUnsafeSlow(BATCH_SIZE);
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

export async function writeFully(target: FileHandle, chunk: Uint8Array, position: number): Promise<void> {
  let offset = 0;
  while (offset < chunk.byteLength) {
    const { bytesWritten } = await target.write(chunk, offset, chunk.byteLength - offset, position + offset);
    offset += bytesWritten;
  }
}
