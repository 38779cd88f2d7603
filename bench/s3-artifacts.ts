/**
 * S3 artifact store throughput on one large artifact, against the plain SDK on the same bytes and
 * the same endpoint (moto, started here): `S3ArtifactStore.put(stream)` (read to its end while hashed
 * and spooled to local disk, then one multipart upload to its content key) vs a raw
 * `@aws-sdk/lib-storage` Upload of the same kind of stream (no hashing, no spool), and
 * `S3ArtifactStore.get` consumed fully vs a raw GetObject — plus peak RSS during the store's
 * operations, since a streamed artifact must never be held in memory.
 */
import assert from 'node:assert/strict';
import { randomFillSync, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { S3ArtifactStore } from '../lib/artifacts/s3-artifact-store.ts';
import { awsTestClientConfig, startMoto } from '../test/support/moto.ts';
import {
  type Benchmark,
  collectGarbage,
  type Metric,
  MiB,
  median,
  meets,
  metric,
  sampleRss,
  type Target,
} from './stats.ts';

const MB = 1e6;
/** Store throughput (put + get) as a fraction of the raw SDK's on the same bytes. */
const RATIO_TARGET: Target = { op: '>=', value: 0.8 };
/** Peak RSS growth during the store's put + get: streaming must not buffer the artifact. */
const RSS_TARGET: Target = { op: '<', value: 150 };
const CHUNK = MiB;

/** What {@link benchS3Artifacts} returns: one line per metric, targets as text (`">= 0.8"`). */
export interface S3ArtifactsBenchResult {
  name: string;
  metrics: Array<{ label: string; value: number; unit: string; target?: string; ok?: boolean }>;
}

/** One repetition's timings, in milliseconds, and the store's peak RSS growth in bytes. */
interface Sample {
  storePutFileMs: number;
  rawPutFileMs: number;
  storePutMs: number;
  storeGetMs: number;
  rawPutMs: number;
  rawGetMs: number;
  storeRssGrowth: number;
}

/**
 * `size` pseudo-random bytes in 1 MiB chunks, each a new buffer as a real source would produce.
 * The random block is reused but every chunk is stamped with `seed` and its offset, so no two
 * payloads (and no two chunks) are equal and no upload can be skipped as already stored.
 */
function payload(size: number, seed: string, block: Buffer): Readable {
  async function* chunks(): AsyncGenerator<Buffer> {
    for (let offset = 0; offset < size; offset += CHUNK) {
      const chunk = Buffer.from(block.subarray(0, Math.min(CHUNK, size - offset)));
      chunk.write(`${seed}:${offset};`, 0, 'latin1');
      yield chunk;
    }
  }
  return Readable.from(chunks(), { objectMode: false });
}

async function drain(stream: AsyncIterable<Uint8Array>): Promise<number> {
  let bytes = 0;
  for await (const chunk of stream) bytes += chunk.byteLength;
  return bytes;
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  collectGarbage();
  const start = performance.now();
  await fn();
  return performance.now() - start;
}

async function emptyAndDeleteBucket(client: S3Client, bucket: string): Promise<void> {
  const listed = await client.send(new ListObjectsV2Command({ Bucket: bucket }));
  for (const object of listed.Contents ?? []) {
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: object.Key! }));
  }
  await client.send(new DeleteBucketCommand({ Bucket: bucket }));
}

/** One repetition in a fresh bucket with fresh bytes; `storeFirst` alternates which side goes first. */
async function repetition(
  client: S3Client,
  size: number,
  block: Buffer,
  cacheDir: string,
  storeFirst: boolean,
): Promise<Sample> {
  const bucket = `bench-${randomUUID()}`;
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  try {
    const store = new S3ArtifactStore({ client, bucket, prefix: 'bench', cacheDir });
    const runStore = async () => {
      collectGarbage();
      const rss = sampleRss(10);
      let stored = { contentHash: '', size: 0 };
      const storePutMs = await timed(async () => {
        stored = await store.put(payload(size, randomUUID(), block));
      });
      assert.equal(stored.size, size);
      let read = 0;
      const storeGetMs = await timed(async () => {
        read = await drain(await store.get(stored.contentHash));
      });
      assert.equal(read, size, 'store.get returned a different number of bytes');
      return { storePutMs, storeGetMs, storeRssGrowth: rss.stop().growth };
    };
    const runRaw = async () => {
      const key = `raw/${randomUUID()}`;
      const rawPutMs = await timed(() =>
        new Upload({ client, params: { Bucket: bucket, Key: key, Body: payload(size, randomUUID(), block) } }).done(),
      );
      let read = 0;
      const rawGetMs = await timed(async () => {
        const object = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        read = await drain(object.Body as Readable);
      });
      assert.equal(read, size, 'GetObject returned a different number of bytes');
      return { rawPutMs, rawGetMs };
    };
    // The file path: the same bytes already on local disk (the `file` materializer's case).
    const file = join(cacheDir, `payload-${randomUUID()}`);
    await pipeline(payload(size, randomUUID(), block), createWriteStream(file));
    const runFiles = async () => {
      const storePutFileMs = await timed(async () => {
        assert.equal((await store.putFile(file)).size, size);
      });
      const rawPutFileMs = await timed(() =>
        new Upload({
          client,
          params: { Bucket: bucket, Key: `raw/${randomUUID()}`, Body: createReadStream(file) },
        }).done(),
      );
      await rm(file);
      return { storePutFileMs, rawPutFileMs };
    };
    if (storeFirst) return { ...(await runStore()), ...(await runRaw()), ...(await runFiles()) };
    const raw = await runRaw();
    return { ...(await runStore()), ...raw, ...(await runFiles()) };
  } finally {
    await emptyAndDeleteBucket(client, bucket);
  }
}

/** Runs the measurements and returns the metrics with structured targets (as `bench/stats.ts` has them). */
async function measure(options: { quick?: boolean; log?: (message: string) => void }): Promise<Metric[]> {
  const size = options.quick ? 32 * MiB : 256 * MiB;
  // Even, so that each side goes first equally often: the first slot of a repetition runs while the
  // payload file written just before it is still being flushed to disk, and measured ~1-2 s slower.
  const repetitions = options.quick ? 2 : 4;
  const log = options.log ?? (() => {});
  const moto = await startMoto();
  const client = new S3Client(awsTestClientConfig(moto.endpoint));
  const cacheDir = await mkdtemp(join(tmpdir(), 'stackline-bench-s3-'));
  try {
    const block = randomFillSync(Buffer.allocUnsafeSlow(CHUNK));
    const samples: Sample[] = [];
    for (let r = 0; r < repetitions; r++) {
      log(`s3-artifacts: repetition ${r + 1}/${repetitions}, ${size / MiB} MiB each way`);
      const sample = await repetition(client, size, block, cacheDir, r % 2 === 0);
      samples.push(sample);
      const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
      log(
        `s3-artifacts: ${r % 2 === 0 ? 'store' : 'raw'} first: put ${s(sample.storePutMs)} (raw ${s(sample.rawPutMs)}), ` +
          `get ${s(sample.storeGetMs)} (raw ${s(sample.rawGetMs)})`,
      );
    }
    const mbps = (ms: number) => size / MB / (ms / 1000);
    const med = (pick: (s: Sample) => number) => median(samples.map(pick));
    const storePut = med((s) => mbps(s.storePutMs));
    const storeGet = med((s) => mbps(s.storeGetMs));
    const rawPut = med((s) => mbps(s.rawPutMs));
    const rawGet = med((s) => mbps(s.rawGetMs));
    // Ratios are paired within a repetition (same bucket, same moment), then the median taken.
    const putRatio = med((s) => s.rawPutMs / s.storePutMs);
    const getRatio = med((s) => s.rawGetMs / s.storeGetMs);
    const roundTrip = med((s) => (s.rawPutMs + s.rawGetMs) / (s.storePutMs + s.storeGetMs));
    const rssGrowth = Math.max(...samples.map((s) => s.storeRssGrowth)) / MiB;
    const filePutRatio = med((s) => s.rawPutFileMs / s.storePutFileMs);
    const fileRoundTrip = med((s) => (s.rawPutFileMs + s.rawGetMs) / (s.storePutFileMs + s.storeGetMs));
    const mib = `${size / MiB} MiB`;
    return [
      metric(`store.put(stream) of ${mib}`, storePut, 'MB/s'),
      metric(`store.get(hash) of ${mib}, consumed`, storeGet, 'MB/s'),
      metric('raw lib-storage Upload', rawPut, 'MB/s', undefined, 'lib-storage defaults (5 MiB parts, 4 at once)'),
      metric('raw GetObject, consumed', rawGet, 'MB/s'),
      metric('store/raw, put', putRatio, '×'),
      metric('store/raw, get', getRatio, '×'),
      metric(
        'store/raw, put + get',
        roundTrip,
        '×',
        RATIO_TARGET,
        `median over ${repetitions} repetitions of raw time / store time (same for put and get); a ` +
          "stream's hash is known only at its end, so the store spools it to local disk while hashing it, then " +
          'uploads it once to its content key; its get re-hashes every byte, the raw GetObject does not',
      ),
      metric(
        `store.putFile of ${mib}`,
        med((s) => mbps(s.storePutFileMs)),
        'MB/s',
        undefined,
        'hashes the file, then uploads once to its content key',
      ),
      metric(
        'raw lib-storage Upload of the same file',
        med((s) => mbps(s.rawPutFileMs)),
        'MB/s',
      ),
      metric('store/raw, putFile', filePutRatio, '×'),
      metric('store/raw, putFile + get', fileRoundTrip, '×', RATIO_TARGET),
      metric('peak RSS growth, store put + get', rssGrowth, 'MiB', RSS_TARGET, 'largest over the repetitions'),
    ];
  } finally {
    client.destroy();
    await moto.stop();
    await rm(cacheDir, { recursive: true, force: true });
  }
}

/**
 * Measures {@link S3ArtifactStore} against raw SDK transfers on a moto it starts and stops itself:
 * 256 MiB (32 MiB with `quick`) each way, median of 4 (2) repetitions, each in a fresh bucket with
 * fresh bytes.
 *
 * @example
 * const { metrics } = await benchS3Artifacts({ quick: true });
 * console.table(metrics);
 */
export async function benchS3Artifacts(options: { quick?: boolean } = {}): Promise<S3ArtifactsBenchResult> {
  const metrics = await measure(options);
  return {
    name: 's3-artifacts',
    metrics: metrics.map(({ label, value, unit, target }) => ({
      label,
      value,
      unit,
      ...(target && { target: `${target.op} ${target.value}`, ok: meets(value, target) }),
    })),
  };
}

/** The same measurements as a {@link Benchmark}, for `bench/run.ts`. */
export const s3ArtifactsBenchmark: Benchmark = {
  name: 's3-artifacts',
  description: 'S3ArtifactStore put/get on moto vs raw lib-storage Upload / GetObject',
  async run(options) {
    return { metrics: await measure(options) };
  },
};
