/**
 * Local artifact store throughput on one large binary, against plain file-system baselines on the
 * same bytes: store writes (`putFile`, and `put(stream)` as the `stream` materializer does) vs a
 * streamed copy and `copyFile`; store reads (`get`) vs a streamed read of the source.
 */
import assert from 'node:assert/strict';
import { createHash, randomFillSync } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { copyFile, type FileHandle, mkdir, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { LocalArtifactStore } from '../lib/artifacts/local-artifact-store.ts';
import { MaterializerRegistry } from '../lib/artifacts/materializers.ts';
import {
  type Benchmark,
  collectGarbage,
  formatBytes,
  GiB,
  type Metric,
  MiB,
  median,
  metric,
  sampleRss,
  timeMs,
} from './stats.ts';

/** The read/copy chunk size `LocalArtifactStore` uses (`CHUNK_SIZE` in local-artifact-store.ts). */
const STORE_CHUNK = 1 * MiB;
/** The source file is written in chunks of this size. */
const SOURCE_CHUNK = 8 * MiB;
/** Store write and read throughput, as a fraction of the plain streamed equivalent. */
const RATIO_TARGET = 0.7;
/** Peak RSS growth during the measurements: streaming must not hold the file in memory. */
const RSS_TARGET_MIB = 64;
const MB = 1e6;

/**
 * Writes `size` bytes of pseudo-random content (`randomFillSync`: cheap, incompressible, no
 * repeated blocks) in {@link SOURCE_CHUNK} chunks, filling the next chunk while the previous one is
 * being written. Returns the SHA-256 of the content.
 */
async function createSource(path: string, size: number): Promise<string> {
  let filling = Buffer.allocUnsafeSlow(SOURCE_CHUNK);
  let writing = Buffer.allocUnsafeSlow(SOURCE_CHUNK);
  const hash = createHash('sha256');
  const file = await open(path, 'wx');
  try {
    let pending: Promise<void> = Promise.resolve();
    for (let position = 0; position < size; position += SOURCE_CHUNK) {
      const chunk = randomFillSync(filling.subarray(0, Math.min(SOURCE_CHUNK, size - position)));
      hash.update(chunk);
      await pending;
      pending = writeAll(file, chunk, position);
      [filling, writing] = [writing, filling];
    }
    await pending;
  } finally {
    await file.close();
  }
  return `sha256:${hash.digest('hex')}`;
}

async function writeAll(file: FileHandle, chunk: Buffer, position: number): Promise<void> {
  let offset = 0;
  while (offset < chunk.length) {
    const { bytesWritten } = await file.write(chunk, offset, chunk.length - offset, position + offset);
    offset += bytesWritten;
  }
}

async function drain(stream: Readable | AsyncIterable<Uint8Array>, hash?: ReturnType<typeof createHash>) {
  let bytes = 0;
  for await (const chunk of stream as AsyncIterable<Uint8Array>) {
    bytes += chunk.byteLength;
    hash?.update(chunk);
  }
  return bytes;
}

/** SHA-256 throughput over `bytes` of in-memory data, in MB/s (best of 3). */
function sha256InMemory(bytes: number): number {
  const chunk = Buffer.alloc(STORE_CHUNK, 0x5a);
  let best = 0;
  for (let r = 0; r < 3; r++) {
    const hash = createHash('sha256');
    const t0 = performance.now();
    for (let done = 0; done < bytes; done += STORE_CHUNK) hash.update(chunk);
    hash.digest();
    best = Math.max(best, bytes / MB / ((performance.now() - t0) / 1000));
  }
  return best;
}

/** One measured operation: `prepare` and `cleanup` are not timed; `run` returns the bytes processed. */
interface Operation {
  key: string;
  label: string;
  prepare?: () => Promise<void>;
  run: () => Promise<number>;
  cleanup?: () => Promise<void>;
}

export const artifactsBenchmark: Benchmark = {
  name: 'artifacts',
  description: 'LocalArtifactStore throughput on a large binary vs plain file copies',
  async run(options) {
    const size = options.quick ? 128 * MiB : 1 * GiB;
    const repetitions = options.quick ? 2 : 3;
    const dir = join(options.tmpDir, 'artifacts');
    await mkdir(dir, { recursive: true });
    const src = join(dir, 'source.bin');
    const dst = join(dir, 'copy.bin');
    const store = new LocalArtifactStore(join(dir, 'store'));
    const materializers = MaterializerRegistry.withBuiltins({ cacheDir: join(dir, 'materialized') });
    const streamMaterializer = materializers.get('stream');

    try {
      options.log(`artifacts: writing a ${formatBytes(size)} source file`);
      const generated = await timeMs(() => createSource(src, size));
      const expectedHash = generated.value;

      /** A put must do the real work: the blob is removed first, so it cannot be deduplicated. */
      const removeBlob = async () => {
        if (await store.exists(expectedHash)) await rm(await store.getFile(expectedHash), { force: true });
        assert.equal(await store.exists(expectedHash), false);
      };
      const checkStored = (blob: { contentHash: string; size: number }) => {
        assert.equal(blob.contentHash, expectedHash, 'the store computed a different hash than the source has');
        assert.equal(blob.size, size);
        return blob.size;
      };
      const removeCopy = () => rm(dst, { force: true });

      const plainStreamCopy: Operation = {
        key: 'plainStreamCopy',
        label: 'plain streamed copy (createReadStream → createWriteStream)',
        run: async () => {
          await pipeline(
            createReadStream(src, { highWaterMark: STORE_CHUNK }),
            createWriteStream(dst, { highWaterMark: STORE_CHUNK }),
          );
          return size;
        },
        cleanup: removeCopy,
      };
      const copyFileOp: Operation = {
        key: 'copyFile',
        label: 'fs.promises.copyFile',
        run: async () => {
          await copyFile(src, dst);
          return size;
        },
        cleanup: removeCopy,
      };
      const putFile: Operation = {
        key: 'putFile',
        label: 'store.putFile(path)',
        prepare: removeBlob,
        run: async () => checkStored(await store.putFile(src)),
      };
      const putStream: Operation = {
        key: 'putStream',
        label: 'stream materializer: store.put(createReadStream)',
        prepare: removeBlob,
        run: async () =>
          checkStored(await streamMaterializer.save(createReadStream(src, { highWaterMark: STORE_CHUNK }), { store })),
      };
      const plainRead: Operation = {
        key: 'plainRead',
        label: 'plain streamed read of the source',
        run: () => drain(createReadStream(src, { highWaterMark: STORE_CHUNK })),
      };
      const storeRead: Operation = {
        key: 'storeRead',
        label: 'store.get(hash), consumed fully',
        prepare: async () => assert.ok(await store.exists(expectedHash), 'the blob to read is missing'),
        run: async () => drain(await store.get(expectedHash)),
      };
      const hashRead: Operation = {
        key: 'hashRead',
        label: 'streamed read + SHA-256 (no write)',
        run: async () => {
          const hash = createHash('sha256');
          const bytes = await drain(createReadStream(src, { highWaterMark: STORE_CHUNK }), hash);
          assert.equal(`sha256:${hash.digest('hex')}`, expectedHash);
          return bytes;
        },
      };

      // Pairs of (baseline, store) alternate which goes first on each repetition, so neither side
      // systematically benefits from page cache state or pays for the other's dirty-page writeback.
      // Reads come after the writes: the blob the last put left is what `store.get` reads, and both
      // it and the source are then in the page cache (a warm read on both sides).
      const pairs: Array<[Operation, Operation]> = [
        [plainStreamCopy, putFile],
        [copyFileOp, putStream],
        [plainRead, storeRead],
      ];
      const samples = new Map<string, number[]>();
      const rssByOp = new Map<string, number>();
      collectGarbage();
      const rss = sampleRss(10);
      for (let r = 0; r < repetitions; r++) {
        const order = pairs.flatMap(([baseline, candidate]) =>
          r % 2 === 0 ? [baseline, candidate] : [candidate, baseline],
        );
        order.push(hashRead);
        for (const op of order) {
          await op.prepare?.();
          options.log(`artifacts: ${op.label}, run ${r + 1}/${repetitions}`);
          const opRss = sampleRss(10);
          const { ms, value: bytes } = await timeMs(op.run);
          rssByOp.set(op.key, Math.max(rssByOp.get(op.key) ?? 0, opRss.stop().growth));
          assert.equal(bytes, size, `${op.label} processed ${bytes} bytes instead of ${size}`);
          const list = samples.get(op.key) ?? [];
          list.push(bytes / MB / (ms / 1000));
          samples.set(op.key, list);
          await op.cleanup?.();
        }
      }
      const memory = rss.stop();

      const hashOnly = sha256InMemory(Math.min(size, 256 * MiB));
      const mbps = (key: string) => median(samples.get(key)!);
      const ops = [putFile, putStream, plainStreamCopy, copyFileOp, storeRead, plainRead, hashRead];
      const notes = new Map<Operation, string>([
        [putFile, `median of ${repetitions} runs each; MB = 10^6 bytes; page cache warm for both sides`],
        [copyFileOp, 'may use copy_file_range/reflink (no bytes through user space, no hashing): not like-for-like'],
        [hashRead, 'read, then hash each chunk, not overlapped (for reference)'],
        [storeRead, 'hashes as it reads, with up to 2 reads of 1 MiB in flight (the plain read has 1)'],
      ]);
      const metrics: Metric[] = [
        metric('source file size', size / MiB, 'MiB'),
        metric('source generation (randomFillSync, 8 MiB chunks)', (size / MB) * (1000 / generated.ms), 'MB/s'),
        ...ops.map((op) => metric(op.label, mbps(op.key), 'MB/s', undefined, notes.get(op))),
        metric(
          'SHA-256 in memory, 1 MiB updates',
          hashOnly,
          'MB/s',
          undefined,
          'the ceiling for any store write: every byte is hashed, on one core',
        ),
        metric('ratio store.putFile / plain streamed copy', mbps('putFile') / mbps('plainStreamCopy'), '×', {
          op: '>=',
          value: RATIO_TARGET,
        }),
        metric('ratio store.put(stream) / plain streamed copy', mbps('putStream') / mbps('plainStreamCopy'), '×', {
          op: '>=',
          value: RATIO_TARGET,
        }),
        metric('ratio store.putFile / copyFile', mbps('putFile') / mbps('copyFile'), '×'),
        metric('ratio store.get / plain streamed read', mbps('storeRead') / mbps('plainRead'), '×', {
          op: '>=',
          value: RATIO_TARGET,
        }),
        metric(
          'peak RSS growth during all measurements',
          memory.growth / MiB,
          'MiB',
          { op: '<', value: RSS_TARGET_MIB },
          `sampled every 10 ms; baseline RSS ${formatBytes(memory.baseline)}, peak ${formatBytes(memory.peak)}`,
        ),
      ];
      return {
        metrics,
        details: {
          sizeBytes: size,
          repetitions,
          contentHash: expectedHash,
          mbPerSecond: Object.fromEntries(samples),
          peakRssGrowthBytesByOperation: Object.fromEntries(rssByOp),
          rss: memory,
        },
      };
    } finally {
      options.log('artifacts: removing the test files');
      await rm(dir, { recursive: true, force: true });
    }
  },
};
