import { createHash, randomUUID } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3ArtifactStore, type S3ArtifactStoreOptions } from '../../lib/artifacts/s3-artifact-store.ts';
import { IntegrityError, NotFoundError, ValidationError } from '../../lib/errors.ts';
import { describeArtifactStoreConformance } from '../conformance/artifact-store.conformance.ts';
import { awsTestClientConfig, type MotoServer, startMoto } from '../support/moto.ts';

const MiB = 1024 * 1024;
const BUCKET = `stackline-test-${randomUUID().slice(0, 8)}`;

let moto: MotoServer;
let client: S3Client;
let scratch: string;

beforeAll(async () => {
  moto = await startMoto();
  client = new S3Client(awsTestClientConfig(moto.endpoint));
  await client.send(new CreateBucketCommand({ Bucket: BUCKET }));
  scratch = await mkdtemp(join(tmpdir(), 'stackline-s3-test-'));
});

afterAll(async () => {
  client?.destroy();
  await moto?.stop();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

/** A store with its own prefix and cache directory, so tests do not see each other's blobs. */
function newStore(options: Partial<S3ArtifactStoreOptions> = {}): S3ArtifactStore {
  const id = randomUUID();
  return new S3ArtifactStore({ client, bucket: BUCKET, prefix: `t/${id}`, cacheDir: join(scratch, id), ...options });
}

function sha256(bytes: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** Deterministic pseudo-random bytes (incompressible, unlike zeros). */
function bytesOf(size: number, seed: number): Buffer {
  const out = Buffer.alloc(Math.ceil(size / 4) * 4);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < out.length; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out.writeUInt32LE(x >>> 0, i);
  }
  return out.subarray(0, size);
}

async function* chunksOf(bytes: Buffer, chunkSize: number): AsyncGenerator<Uint8Array> {
  for (let offset = 0; offset < bytes.length; offset += chunkSize) yield bytes.subarray(offset, offset + chunkSize);
}

async function keysUnder(prefix: string): Promise<string[]> {
  const listed = await client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix }));
  return (listed.Contents ?? []).map((object) => object.Key!);
}

/** Multipart uploads started and neither completed nor aborted. */
async function openUploadsUnder(prefix: string): Promise<string[]> {
  const listed = await client.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: prefix }));
  return (listed.Uploads ?? []).map((upload) => upload.Key!);
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describeArtifactStoreConformance('S3ArtifactStore on moto', async () => {
  const store = newStore();
  return {
    store,
    cleanup: async () => {
      for (const key of await keysUnder(`${store.prefix}/`)) {
        await client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: key }));
      }
      await rm(store.cacheDir, { recursive: true, force: true });
    },
    // A plain PutObject over the content key, as a stray upload or a bucket edit would.
    damage: async (contentHash, bytes) => {
      await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: store.keyOf(contentHash), Body: bytes }));
      await rm(store.cacheDir, { recursive: true, force: true });
    },
  };
});

describe('S3ArtifactStore on moto', () => {
  it('stores a small string under its content key and reads it back every way', async () => {
    const store = newStore();
    const blob = await store.put('{"accuracy":0.97}');
    expect(blob).toEqual({
      contentHash: sha256('{"accuracy":0.97}'),
      size: 17,
      uri: `s3://${BUCKET}/${store.prefix}/blobs/${blob.contentHash.slice(7, 9)}/${blob.contentHash.slice(7)}`,
    });
    expect(await store.exists(blob.contentHash)).toBe(true);
    expect((await store.getBytes(blob.contentHash)).toString()).toBe('{"accuracy":0.97}');
    expect((await readAll(await store.get(blob.contentHash))).toString()).toBe('{"accuracy":0.97}');
    expect(await readFile(await store.getFile(blob.contentHash), 'utf8')).toBe('{"accuracy":0.97}');
  });

  it('streams a 12 MiB source through a multipart upload and leaves no temp object behind', async () => {
    const store = newStore({ transfer: { partSizeBytes: 5 * MiB } });
    const bytes = bytesOf(12 * MiB + 3, 7);
    const blob = await store.put(chunksOf(bytes, 64 * 1024));
    expect(blob.contentHash).toBe(sha256(bytes));
    expect(blob.size).toBe(bytes.length);
    expect((await store.getBytes(blob.contentHash)).equals(bytes)).toBe(true);
    expect(await keysUnder(`${store.prefix}/tmp/`)).toEqual([]);
    expect(await keysUnder(`${store.prefix}/blobs/`)).toEqual([store.keyOf(blob.contentHash)]);
  });

  it('stores a large in-memory buffer and a Readable the same way as chunks', async () => {
    const store = newStore();
    const bytes = bytesOf(6 * MiB, 11);
    const fromBuffer = await store.put(bytes);
    const fromReadable = await store.put(Readable.from([bytes.subarray(0, MiB), bytes.subarray(MiB)]));
    expect(fromBuffer).toEqual(fromReadable);
    expect(fromBuffer.contentHash).toBe(sha256(bytes));
  });

  it('stores identical content once, whichever path wrote it', async () => {
    const store = newStore();
    const results = await Promise.all([
      store.put('same bytes'),
      store.put(Buffer.from('same bytes')),
      store.put(Readable.from([Buffer.from('same '), Buffer.from('bytes')])),
      store.put(chunksOf(Buffer.from('same bytes'), 3)),
    ]);
    expect(new Set(results.map((blob) => blob.contentHash)).size).toBe(1);
    expect(await keysUnder(`${store.prefix}/`)).toEqual([store.keyOf(sha256('same bytes'))]);
  });

  it("stores every blob with S3's own SHA-256 checksum, equal to the content hash", async () => {
    const store = newStore();
    for (const blob of [await store.put('checksummed'), await store.put(chunksOf(bytesOf(MiB, 5), 100_000))]) {
      const head = await client.send(
        new HeadObjectCommand({ Bucket: BUCKET, Key: store.keyOf(blob.contentHash), ChecksumMode: 'ENABLED' }),
      );
      expect(head.ChecksumSHA256).toBe(Buffer.from(blob.contentHash.slice(7), 'hex').toString('base64'));
    }
  });

  it('replaces other bytes planted at a content key, but leaves intact objects alone (small and streamed writes)', async () => {
    const store = newStore();
    const small = 'small content';
    const streamed = bytesOf(MiB, 3);
    for (const content of [small, streamed]) {
      await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: store.keyOf(sha256(content)), Body: 'planted' }));
    }
    await store.put(small);
    await store.put(chunksOf(streamed, 100_000));
    const etags: (string | undefined)[] = [];
    for (const content of [small, streamed]) {
      const object = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: store.keyOf(sha256(content)) }));
      expect(sha256(Buffer.from(await object.Body!.transformToByteArray()))).toBe(sha256(content));
      etags.push(object.ETag);
    }
    await store.put(small);
    await store.put(chunksOf(streamed, 100_000));
    for (const [index, content] of [small, streamed].entries()) {
      const head = await client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: store.keyOf(sha256(content)) }));
      expect(head.ETag).toBe(etags[index]);
    }
    expect(await keysUnder(`${store.prefix}/tmp/`)).toEqual([]);
  });

  it('copies blobs above the CopyObject limit part by part', async () => {
    const store = newStore({
      // spoolMaxBytes 0: the stream goes through a temporary key and a copy.
      transfer: { partSizeBytes: 5 * MiB, copyObjectMaxBytes: 5 * MiB, copyPartSizeBytes: 5 * MiB, spoolMaxBytes: 0 },
    });
    const bytes = bytesOf(11 * MiB, 5);
    const blob = await store.put(chunksOf(bytes, MiB));
    expect(blob.contentHash).toBe(sha256(bytes));
    expect((await store.getBytes(blob.contentHash)).equals(bytes)).toBe(true);
    expect(await keysUnder(`${store.prefix}/tmp/`)).toEqual([]);
  });

  it.each([
    ['AES256', undefined],
    ['aws:kms', 'alias/stackline-artifacts'],
  ] as const)('requests server-side encryption %s on every object it writes', async (sse, kmsKeyId) => {
    const store = newStore({ serverSideEncryption: sse, kmsKeyId, transfer: { partSizeBytes: 5 * MiB } });
    const blobs = [await store.put('encrypted small'), await store.put(chunksOf(bytesOf(6 * MiB, 9), MiB))];
    for (const blob of blobs) {
      const head = await client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: store.keyOf(blob.contentHash) }));
      expect(head.ServerSideEncryption).toBe(sse);
      if (kmsKeyId) expect(head.SSEKMSKeyId).toContain(kmsKeyId);
    }
  });

  it('rejects a KMS key without aws:kms encryption', () => {
    expect(() => newStore({ serverSideEncryption: 'AES256', kmsKeyId: 'alias/x' })).toThrow(ValidationError);
  });

  it('makes presigned download URLs that work with a plain GET', async () => {
    const store = newStore();
    const blob = await store.put('presigned content');
    const url = await store.presignedDownloadUrl(blob.contentHash, 60);
    expect(url).toContain('X-Amz-Expires=60');
    const response = await fetch(url);
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('presigned content');
  });

  it('keeps a downloaded file in the cache directory and reuses it', async () => {
    const store = newStore();
    const blob = await store.put('cached content');
    const [first, concurrent] = await Promise.all([store.getFile(blob.contentHash), store.getFile(blob.contentHash)]);
    expect(first).toBe(join(store.cacheDir, blob.contentHash.slice(7)));
    expect(concurrent).toBe(first);
    expect((await stat(first)).mode & 0o222).toBe(0);
    await client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: store.keyOf(blob.contentHash) }));
    expect(await store.getFile(blob.contentHash)).toBe(first);
    expect(await readFile(first, 'utf8')).toBe('cached content');
  });

  it('refuses to cache a blob whose bytes no longer match its hash', async () => {
    const store = newStore();
    const hash = sha256('original');
    await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: store.keyOf(hash), Body: 'tampered' }));
    await expect(store.getFile(hash)).rejects.toThrow(/is damaged/);
    await expect(stat(join(store.cacheDir, hash.slice(7)))).rejects.toThrow();
  });

  it('throws NotFoundError for a missing blob and says which one', async () => {
    const store = newStore();
    const missing = sha256('never stored');
    expect(await store.exists(missing)).toBe(false);
    await expect(store.get(missing)).rejects.toThrow(NotFoundError);
    await expect(store.getBytes(missing)).rejects.toThrow(missing);
    await expect(store.getFile(missing)).rejects.toThrow(NotFoundError);
    await expect(store.putFile(join(scratch, 'no-such-file'))).rejects.toThrow(NotFoundError);
  });

  it('throws NotFoundError naming the bucket when it does not exist', async () => {
    const store = new S3ArtifactStore({ client, bucket: 'no-such-bucket-here', prefix: 'p', cacheDir: scratch });
    await expect(store.getBytes(sha256('x'))).rejects.toThrow(/bucket no-such-bucket-here does not exist/);
  });

  it('rejects malformed content hashes with ValidationError', async () => {
    const store = newStore();
    await expect(store.get('md5:abc')).rejects.toThrow(ValidationError);
    await expect(store.exists('sha256:XYZ')).rejects.toThrow(ValidationError);
  });

  it('stores a local file with putFile', async () => {
    const store = newStore();
    const path = join(scratch, 'model.bin');
    const bytes = bytesOf(2 * MiB, 13);
    await writeFile(path, bytes);
    const blob = await store.putFile(path);
    expect(blob).toMatchObject({ contentHash: sha256(bytes), size: bytes.length });
  });

  it.each([
    ['while spooling', undefined],
    ['while uploading to a temporary key', 0],
  ])('fails a put whose source stream fails %s, leaving nothing behind', async (_when, spoolMaxBytes) => {
    const store = newStore({ transfer: { partSizeBytes: 5 * MiB, spoolMaxBytes } });
    async function* failing(): AsyncGenerator<Uint8Array> {
      yield bytesOf(6 * MiB, 1);
      throw new Error('source broke');
    }
    await expect(store.put(failing())).rejects.toThrow('source broke');
    expect(await keysUnder(`${store.prefix}/`)).toEqual([]);
    expect(await openUploadsUnder(`${store.prefix}/`)).toEqual([]);
    expect(await readdir(store.cacheDir).catch(() => [])).toEqual([]);
  });

  describe('streams', () => {
    /** A client of its own that records each command's name and key, and may act before sending it. */
    function recordingClient(before?: (command: string) => Promise<void>) {
      const own = new S3Client(awsTestClientConfig(moto.endpoint));
      const calls: { command: string; key?: string }[] = [];
      own.middlewareStack.add(
        (next, context) => async (args) => {
          const command = context.commandName ?? 'unknown';
          calls.push({ command, key: (args.input as { Key?: string }).Key });
          await before?.(command);
          return next(args);
        },
        { step: 'initialize' },
      );
      return { client: own, calls };
    }

    it('writes a stream larger than one request once, straight to its content key: no temporary object, no copy, no spool file left', async () => {
      const { client: own, calls } = recordingClient();
      const store = newStore({ client: own, transfer: { partSizeBytes: 5 * MiB } });
      const bytes = bytesOf(12 * MiB + 5, 21);
      try {
        const blob = await store.put(chunksOf(bytes, 64 * 1024));
        expect(blob).toMatchObject({ contentHash: sha256(bytes), size: bytes.length });
        const writes = calls.filter(({ command }) => !/^(Head|Get)Object/.test(command));
        expect(new Set(writes.map(({ key }) => key))).toEqual(new Set([store.keyOf(blob.contentHash)]));
        expect(writes.map(({ command }) => command)).not.toContain('CopyObjectCommand');
        expect((await store.getBytes(blob.contentHash)).equals(bytes)).toBe(true);
        expect(await readdir(store.cacheDir)).toEqual([]);
      } finally {
        own.destroy();
      }
    });

    it('goes through a temporary key and a server-side copy when the stream outgrows transfer.spoolMaxBytes', async () => {
      const { client: own, calls } = recordingClient();
      const store = newStore({ client: own, transfer: { partSizeBytes: 5 * MiB, spoolMaxBytes: 6 * MiB } });
      const bytes = bytesOf(12 * MiB + 5, 22);
      try {
        const blob = await store.put(chunksOf(bytes, 64 * 1024));
        expect(blob).toMatchObject({ contentHash: sha256(bytes), size: bytes.length });
        expect(calls.map(({ command }) => command)).toContain('CopyObjectCommand');
        expect((await store.getBytes(blob.contentHash)).equals(bytes)).toBe(true);
        expect(await keysUnder(`${store.prefix}/`)).toEqual([store.keyOf(blob.contentHash)]);
        expect(await readdir(store.cacheDir)).toEqual([]);
      } finally {
        own.destroy();
      }
    });

    it.each([
      ['one request', MiB],
      ['a multipart upload', 11 * MiB],
    ])('refuses a putFile (%s) whose file changes after it was hashed, storing nothing', async (_how, size) => {
      const path = join(scratch, `changing-${size}.bin`);
      const original = bytesOf(size, 23);
      await writeFile(path, original);
      // HeadObject is the store's look at the content key, between hashing the file and uploading it.
      const { client: own } = recordingClient(async (command) => {
        if (command === 'HeadObjectCommand') await writeFile(path, bytesOf(size, 24));
      });
      const store = newStore({ client: own, transfer: { partSizeBytes: 5 * MiB } });
      try {
        const attempt = store.putFile(path);
        await expect(attempt).rejects.toThrow(IntegrityError);
        await expect(attempt).rejects.toThrow(`File ${path} changed while it was being stored`);
        expect(await keysUnder(`${store.prefix}/`)).toEqual([]);
        expect(await openUploadsUnder(`${store.prefix}/`)).toEqual([]);
      } finally {
        own.destroy();
      }
    });
  });
});
