import { createHash, type Hash, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { chmod, mkdir, open, rename, stat, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  type GetObjectCommandOutput,
  HeadObjectCommand,
  type HeadObjectCommandOutput,
  PutObjectCommand,
  type S3Client,
  type ServerSideEncryption,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { IntegrityError, NotFoundError, StacklineError, ValidationError } from '../errors.ts';
import type { ArtifactStore, BlobSource, StoredBlob } from './artifact-store.ts';
import {
  type BlobCheck,
  checkedBytes,
  damagedBlobError,
  hashFile,
  hashStream,
  hexOfContentHash,
  verifyingStream,
} from './integrity.ts';
import { spoolStream } from './stream-spool.ts';
import { VerifiedFileStream } from './verified-file-stream.ts';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
/** In-memory sources below this size are hashed first and written with one PutObject. */
const SINGLE_PUT_MAX_BYTES = 5 * MiB;
/** S3's limit for a single CopyObject; larger blobs are copied part by part (UploadPartCopy). */
const COPY_OBJECT_MAX_BYTES = 5 * GiB;
/** S3's minimum part size (except the last part) for multipart uploads and copies. */
const MIN_PART_BYTES = 5 * MiB;
const MAX_PARTS = 10_000;

export interface S3ArtifactStoreOptions {
  client: S3Client;
  bucket: string;
  /** Key prefix under which the store keeps `blobs/` and `tmp/` (no leading or trailing slash needed). */
  prefix: string;
  /** Encryption requested on every object written; `aws:kms` uses `kmsKeyId` or the bucket's default key. */
  serverSideEncryption?: 'AES256' | 'aws:kms';
  kmsKeyId?: string;
  /** Local directory for `getFile` downloads (created on demand). */
  cacheDir: string;
  /** Tuning for streamed uploads and large copies; the defaults suit production. */
  transfer?: {
    /** Multipart upload part size (default 8 MiB). */
    partSizeBytes?: number;
    /** Parts uploaded concurrently per put (default 2: each costs one part of memory). */
    queueSize?: number;
    /** Blobs larger than this are copied with UploadPartCopy instead of CopyObject (default 5 GiB, S3's limit). */
    copyObjectMaxBytes?: number;
    /** Part size of such multipart copies (default 512 MiB). */
    copyPartSizeBytes?: number;
    /**
     * At most this many bytes of a stream are spooled to `cacheDir` to learn its hash before the
     * upload; a longer stream goes through a temporary key and a server-side copy instead.
     * Default: half the space free in `cacheDir` when the put starts.
     */
    spoolMaxBytes?: number;
  };
}

/**
 * An {@link ArtifactStore} in an S3 bucket, content-addressed by SHA-256.
 *
 * Keys: `<prefix>/blobs/<first two hex digits>/<hex>` holds each blob. Every blob is written once,
 * straight to its content key, which needs its hash first: in-memory values and files are hashed
 * in place; a stream is read to its end while being hashed, kept in memory while under 5 MiB and
 * spooled to an unlinked file in `cacheDir` beyond that (one PutObject when small, a multipart
 * upload otherwise). Only a stream larger than the spool may hold (`transfer.spoolMaxBytes`,
 * default half the free space in `cacheDir`) goes to `<prefix>/tmp/<uuid>` first and is then
 * copied onto its content key. Every write to a content key is conditional (`If-None-Match: *`): a
 * blob, once written, is never overwritten, and a lost race means identical content is already there.
 *
 * Integrity: uploads carry SHA-256 checksums that S3 checks on receipt (`ChecksumSHA256` when the
 * hash is known up front, `ChecksumAlgorithm: SHA256` per part otherwise); every download is
 * re-hashed against the content hash (streamed) and a mismatch is an `IntegrityError`; a write
 * whose conditional put finds the key taken re-checks the object there and overwrites it if it is
 * not these bytes (someone replaced it outside Stackline).
 *
 * Give the bucket a lifecycle rule that expires `<prefix>/tmp/` objects and aborts incomplete
 * multipart uploads after a day: a process killed mid-put leaves its temp object behind.
 *
 * @example
 * const store = new S3ArtifactStore({ client: new S3Client({}), bucket: 'ml-artifacts', prefix: 'stackline',
 *   serverSideEncryption: 'aws:kms', cacheDir: '.stackline/cache' });
 * const { contentHash } = await store.put(createReadStream('model.onnx'));
 * const url = await store.presignedDownloadUrl(contentHash, 900);
 */
export class S3ArtifactStore implements ArtifactStore {
  readonly kind = 's3';
  readonly bucket: string;
  readonly prefix: string;
  readonly cacheDir: string;
  readonly #client: S3Client;
  readonly #encryption: { ServerSideEncryption?: ServerSideEncryption; SSEKMSKeyId?: string };
  readonly #partSize: number;
  readonly #queueSize: number;
  readonly #copyObjectMax: number;
  readonly #copyPartSize: number;
  readonly #spoolMax: number | undefined;
  /** Downloads in progress by `getFile`, so concurrent calls for one blob share one download. */
  readonly #downloads = new Map<string, Promise<string>>();

  constructor(options: S3ArtifactStoreOptions) {
    if (options.kmsKeyId !== undefined && options.serverSideEncryption !== 'aws:kms') {
      throw new ValidationError('S3ArtifactStore: kmsKeyId requires serverSideEncryption "aws:kms".', {
        context: { bucket: options.bucket },
      });
    }
    this.#client = options.client;
    this.bucket = options.bucket;
    this.prefix = options.prefix.replace(/^\/+|\/+$/g, '');
    this.cacheDir = resolve(options.cacheDir);
    this.#encryption = {
      ...(options.serverSideEncryption && { ServerSideEncryption: options.serverSideEncryption }),
      ...(options.kmsKeyId && { SSEKMSKeyId: options.kmsKeyId }),
    };
    this.#partSize = Math.max(options.transfer?.partSizeBytes ?? 8 * MiB, MIN_PART_BYTES);
    this.#queueSize = options.transfer?.queueSize ?? 2;
    this.#copyObjectMax = options.transfer?.copyObjectMaxBytes ?? COPY_OBJECT_MAX_BYTES;
    this.#copyPartSize = Math.max(options.transfer?.copyPartSizeBytes ?? 512 * MiB, MIN_PART_BYTES);
    this.#spoolMax = options.transfer?.spoolMaxBytes;
  }

  async put(source: BlobSource): Promise<StoredBlob> {
    if (typeof source !== 'string' && !(source instanceof Uint8Array)) return this.#putStream(source);
    const bytes = typeof source === 'string' ? Buffer.from(source, 'utf8') : source;
    if (bytes.byteLength < SINGLE_PUT_MAX_BYTES) return this.#putSmall(bytes);
    // Large but in memory: its hash is known before the upload, so it goes straight to its content
    // key (parts in parallel), with no temporary object and no server-side copy.
    return this.#uploadKnown(() => bytes, sha256Hex(bytes), bytes.byteLength);
  }

  async putFile(path: string): Promise<StoredBlob> {
    try {
      await stat(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new NotFoundError(`Cannot store file ${path}: it does not exist.`, { cause: error, context: { path } });
      }
      throw error;
    }
    return this.#putHashedFile(path);
  }

  async get(contentHash: string): Promise<Readable> {
    const object = await this.#getObject(contentHash);
    return verifyingStream(object.Body as Readable, contentHash, this.#where(contentHash));
  }

  async getBytes(contentHash: string): Promise<Buffer> {
    const object = await this.#getObject(contentHash);
    return checkedBytes(Buffer.from(await object.Body!.transformToByteArray()), contentHash, this.#where(contentHash));
  }

  async check(contentHash: string): Promise<BlobCheck> {
    const key = this.#blobKey(this.#hexOf(contentHash));
    let object: GetObjectCommandOutput;
    try {
      object = await this.#client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
    } catch (error) {
      if (isNotFound(error)) return 'missing';
      throw this.#translate(error, `checking blob ${contentHash}`);
    }
    try {
      const { hex } = await hashStream(object.Body as Readable);
      return `sha256:${hex}` === contentHash ? 'ok' : 'damaged';
    } catch (error) {
      // The SDK validates S3's own checksum of the response and fails the read on a mismatch.
      if ((error as Error).message?.includes('Checksum mismatch')) return 'damaged';
      throw error;
    }
  }

  async getFile(contentHash: string): Promise<string> {
    const hex = this.#hexOf(contentHash);
    const path = join(this.cacheDir, hex);
    if (await fileExists(path)) return path;
    let download = this.#downloads.get(hex);
    if (!download) {
      download = this.#download(contentHash, hex, path).finally(() => this.#downloads.delete(hex));
      this.#downloads.set(hex, download);
    }
    return download;
  }

  async exists(contentHash: string): Promise<boolean> {
    return this.#existsKey(this.#blobKey(this.#hexOf(contentHash)));
  }

  /**
   * A URL that lets anyone holding it download the blob with a plain HTTP GET until it expires
   * (at most 7 days for SigV4). Does not check that the blob exists.
   */
  async presignedDownloadUrl(contentHash: string, expiresInSeconds = 3600): Promise<string> {
    const command = new GetObjectCommand({ Bucket: this.bucket, Key: this.#blobKey(this.#hexOf(contentHash)) });
    return getSignedUrl(this.#client, command, { expiresIn: expiresInSeconds });
  }

  /** The S3 key of a blob, for tooling and tests. */
  keyOf(contentHash: string): string {
    return this.#blobKey(this.#hexOf(contentHash));
  }

  async #putSmall(bytes: Uint8Array): Promise<StoredBlob> {
    const hex = sha256Hex(bytes);
    const put = (conditional: boolean) =>
      this.#client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: this.#blobKey(hex),
          Body: bytes,
          ContentLength: bytes.byteLength,
          // S3 refuses the upload if the bytes it received do not have this SHA-256.
          ChecksumAlgorithm: 'SHA256',
          ChecksumSHA256: Buffer.from(hex, 'hex').toString('base64'),
          ...(conditional && { IfNoneMatch: '*' }),
          ...this.#encryption,
        }),
      );
    try {
      await put(true);
    } catch (error) {
      if (!isPreconditionFailed(error)) throw this.#translate(error, `storing blob sha256:${hex}`);
      // The key is taken: normally by these very bytes, but repair it if it was replaced.
      if ((await this.#quickCheck(hex)) === 'damaged') {
        await put(false).catch((e: unknown) => {
          throw this.#translate(e, `repairing blob sha256:${hex}`);
        });
      }
    }
    return this.#describe(hex, bytes.byteLength);
  }

  /**
   * A file can be read twice, so hash it first and upload it once, straight to its content key —
   * no temporary object and no server-side copy (which costs a second full write: measured ~0.6× a
   * raw upload on moto). The upload re-hashes what it reads and fails, before the upload completes,
   * if the file changed in between: the content key never receives other bytes.
   */
  async #putHashedFile(path: string): Promise<StoredBlob> {
    const { hex, size } = await hashFile(path);
    const handle = await open(path, 'r');
    try {
      return await this.#uploadKnown(() => new VerifiedFileStream(handle, size, `sha256:${hex}`, path, MiB), hex, size);
    } catch (error) {
      if (!(error instanceof IntegrityError)) throw error;
      throw new IntegrityError(
        `File ${path} changed while it was being stored (it no longer hashes to sha256:${hex}); nothing was stored. ` +
          'Store it again once nothing is writing to it.',
        { cause: error, context: { path } },
      );
    } finally {
      await handle.close();
    }
  }

  /** Uploads bytes whose hash is known (a file, a buffer) to their content key, unless that key holds them. */
  async #uploadKnown(body: () => Readable | Uint8Array, hex: string, size: number): Promise<StoredBlob> {
    const blobKey = this.#blobKey(hex);
    const existing = await this.#quickCheck(hex);
    if (existing === 'ok') return this.#describe(hex, size);
    const source = body();
    try {
      // lib-storage passes If-None-Match to PutObject (one part) or CompleteMultipartUpload, so an
      // object, once written, is never overwritten; parts go up in parallel, straight from the file.
      const upload = new Upload({
        client: this.#client,
        params: {
          Bucket: this.bucket,
          Key: blobKey,
          Body: source,
          ContentLength: size,
          ChecksumAlgorithm: 'SHA256',
          // A damaged object under this key is replaced; otherwise never overwrite.
          ...(existing === 'missing' && { IfNoneMatch: '*' }),
          ...this.#encryption,
        },
        partSize: this.#partSize,
        queueSize: this.#queueSize,
      });
      await upload.done();
    } catch (error) {
      if (!isPreconditionFailed(error)) throw this.#translate(error, `storing blob sha256:${hex}`);
    } finally {
      if (source instanceof Readable) source.destroy();
    }
    return this.#describe(hex, size);
  }

  /**
   * A stream's hash is known only at its end, and its content key only then. So it is first read
   * to its end while being hashed — in memory if small, else into a local spool file (see
   * {@link spoolStream}) — and then written once, straight to its content key: no temporary
   * object and no server-side copy (which on moto cost as much as the upload itself). A stream too
   * large for the local disk (`transfer.spoolMaxBytes`) goes the long way instead: uploaded,
   * hashed on the way, to a temporary key, then copied onto its content key.
   */
  async #putStream(source: AsyncIterable<Uint8Array | string>): Promise<StoredBlob> {
    const spooled = await spoolStream(source, {
      dir: this.cacheDir,
      memoryMaxBytes: SINGLE_PUT_MAX_BYTES,
      ...(this.#spoolMax !== undefined && { diskMaxBytes: this.#spoolMax }),
    });
    try {
      if (spooled.kind === 'memory') return await this.#putSmall(spooled.bytes);
      const { handle, size } = spooled;
      // The spool is this process's own unlinked file, read back as written: hashed once, while spooling.
      const spoolContents = () =>
        size === 0
          ? Readable.from([])
          : handle.createReadStream({ start: 0, end: size - 1, highWaterMark: MiB, autoClose: false });
      if (spooled.kind === 'file') return await this.#uploadKnown(spoolContents, spooled.hex, size);
      return await this.#putViaTempKey(spoolContents(), spooled.rest, spooled.hash, size);
    } finally {
      await spooled.discard();
    }
  }

  /**
   * Uploads `head` (already hashed into `hash`, `headSize` bytes), then `rest` (hashed on the way)
   * to a temporary key, then copies the object onto its content key and deletes the temporary one.
   */
  async #putViaTempKey(
    head: Readable,
    rest: AsyncIterable<Uint8Array>,
    hash: Hash,
    headSize: number,
  ): Promise<StoredBlob> {
    let size = headSize;
    async function* body(): AsyncGenerator<Buffer> {
      yield* head as AsyncIterable<Buffer>;
      for await (const item of rest) {
        // A copy: lib-storage holds chunks until a part is full, and a source may reuse its buffer.
        const chunk = Buffer.from(item);
        hash.update(chunk);
        size += chunk.byteLength;
        yield chunk;
      }
    }
    const tmpKey = this.#key(`tmp/${randomUUID()}`);
    try {
      const upload = new Upload({
        client: this.#client,
        params: {
          Bucket: this.bucket,
          Key: tmpKey,
          Body: Readable.from(body()),
          ChecksumAlgorithm: 'SHA256',
          ...this.#encryption,
        },
        partSize: this.#partSize,
        queueSize: this.#queueSize,
      });
      await upload.done();
      const hex = hash.digest('hex');
      const blobKey = this.#blobKey(hex);
      // moto 5.2.1 ignores If-None-Match on CopyObject (real S3 honours it), so look first: this also
      // skips the copy entirely when the content is already stored. The conditional copy below is what
      // guarantees no overwrite on S3 when two writers race between this check and the copy.
      const existing = await this.#quickCheck(hex);
      if (existing !== 'ok') {
        if (size > this.#copyObjectMax) await this.#copyInParts(tmpKey, blobKey, size, existing === 'missing');
        else await this.#copy(tmpKey, blobKey, existing === 'missing');
      }
      return this.#describe(hex, size);
    } catch (error) {
      throw this.#translate(error, 'streaming a blob');
    } finally {
      head.destroy();
      await this.#client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: tmpKey })).catch(() => {});
    }
  }

  /**
   * Copies with `If-None-Match: *` when `conditional` (a 412 means the content key already holds
   * these bytes); unconditionally when replacing a damaged object.
   */
  async #copy(fromKey: string, toKey: string, conditional: boolean): Promise<void> {
    try {
      await this.#client.send(
        new CopyObjectCommand({
          Bucket: this.bucket,
          Key: toKey,
          CopySource: this.#copySource(fromKey),
          ...(conditional && { IfNoneMatch: '*' }),
          // Have S3 compute a whole-object checksum for the copy. Otherwise the temp object's
          // multipart (composite) checksum may be carried over, and moto 5.2.1 then serves it as a
          // whole-object checksum that fails the SDK's response checksum validation.
          ChecksumAlgorithm: 'SHA256',
          ...this.#encryption,
        }),
      );
    } catch (error) {
      if (!isPreconditionFailed(error)) throw error;
    }
  }

  /** CopyObject stops at 5 GB; beyond that, a multipart upload of ranged UploadPartCopy parts. */
  async #copyInParts(fromKey: string, toKey: string, size: number, conditional: boolean): Promise<void> {
    const partSize = Math.max(this.#copyPartSize, Math.ceil(size / MAX_PARTS));
    const { UploadId } = await this.#client.send(
      new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: toKey, ...this.#encryption }),
    );
    try {
      const parts: { ETag: string; PartNumber: number }[] = [];
      for (let start = 0, partNumber = 1; start < size; start += partSize, partNumber++) {
        const end = Math.min(start + partSize, size) - 1;
        const { CopyPartResult } = await this.#client.send(
          new UploadPartCopyCommand({
            Bucket: this.bucket,
            Key: toKey,
            UploadId,
            PartNumber: partNumber,
            CopySource: this.#copySource(fromKey),
            CopySourceRange: `bytes=${start}-${end}`,
          }),
        );
        parts.push({ ETag: CopyPartResult!.ETag!, PartNumber: partNumber });
      }
      await this.#client.send(
        new CompleteMultipartUploadCommand({
          Bucket: this.bucket,
          Key: toKey,
          UploadId,
          MultipartUpload: { Parts: parts },
          ...(conditional && { IfNoneMatch: '*' }),
        }),
      );
    } catch (error) {
      await this.#client
        .send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: toKey, UploadId }))
        .catch(() => {});
      if (!isPreconditionFailed(error)) throw error;
    }
  }

  async #download(contentHash: string, hex: string, path: string): Promise<string> {
    await mkdir(this.cacheDir, { recursive: true });
    const object = await this.#getObject(contentHash);
    const tmpPath = join(this.cacheDir, `.${hex}.${randomUUID()}.tmp`);
    const hash = createHash('sha256');
    try {
      await pipeline(
        object.Body as Readable,
        async function* (chunks: AsyncIterable<Buffer>) {
          for await (const chunk of chunks) {
            hash.update(chunk);
            yield chunk;
          }
        },
        createWriteStream(tmpPath, { flags: 'wx' }),
      );
      // A cached file is trusted from then on, so make sure it really is this blob.
      const actual = hash.digest('hex');
      if (actual !== hex) throw damagedBlobError(contentHash, this.#where(contentHash), actual);
      await chmod(tmpPath, 0o444);
      await rename(tmpPath, path);
      return path;
    } catch (error) {
      await unlink(tmpPath).catch(() => {});
      throw error;
    }
  }

  async #getObject(contentHash: string): Promise<GetObjectCommandOutput> {
    const key = this.#blobKey(this.#hexOf(contentHash));
    try {
      return await this.#client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
    } catch (error) {
      throw this.#translate(error, `reading blob ${contentHash}`, contentHash);
    }
  }

  /**
   * Whether the object under a content key holds those bytes, without downloading it when S3 has
   * a whole-object SHA-256 for it (every single-request upload and every copy this store makes);
   * otherwise (a multipart upload's composite checksum, or none) by re-hashing a download.
   */
  async #quickCheck(hex: string): Promise<BlobCheck> {
    const key = this.#blobKey(hex);
    let head: HeadObjectCommandOutput;
    try {
      head = await this.#client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key, ChecksumMode: 'ENABLED' }));
    } catch (error) {
      if (isNotFound(error)) return 'missing';
      throw this.#translate(error, `checking s3://${this.bucket}/${key}`);
    }
    const sha = head.ChecksumSHA256;
    if (sha !== undefined && !sha.includes('-') && head.ChecksumType !== 'COMPOSITE') {
      return sha === Buffer.from(hex, 'hex').toString('base64') ? 'ok' : 'damaged';
    }
    return this.check(`sha256:${hex}`);
  }

  async #existsKey(key: string): Promise<boolean> {
    try {
      await this.#client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return true;
    } catch (error) {
      if (isNotFound(error)) return false;
      throw this.#translate(error, `checking s3://${this.bucket}/${key}`);
    }
  }

  #translate(error: unknown, doing: string, contentHash?: string): unknown {
    if (error instanceof StacklineError) return error;
    const name = (error as { name?: string } | undefined)?.name;
    if (name === 'NoSuchBucket') {
      return new NotFoundError(
        `S3 bucket ${this.bucket} does not exist (while ${doing}). Check the stack's artifact store bucket.`,
        { cause: error, context: { bucket: this.bucket } },
      );
    }
    if (contentHash !== undefined && isNotFound(error)) {
      return new NotFoundError(
        `Artifact blob ${contentHash} is not in the S3 artifact store s3://${this.bucket}/${this.prefix}. ` +
          'Check that the run used this store (stack), or re-run the step that produced the artifact.',
        { cause: error, context: { contentHash, bucket: this.bucket, prefix: this.prefix } },
      );
    }
    return error;
  }

  #describe(hex: string, size: number): StoredBlob {
    return { contentHash: `sha256:${hex}`, size, uri: `s3://${this.bucket}/${this.#blobKey(hex)}` };
  }

  #key(suffix: string): string {
    return this.prefix ? `${this.prefix}/${suffix}` : suffix;
  }

  #blobKey(hex: string): string {
    return this.#key(`blobs/${hex.slice(0, 2)}/${hex}`);
  }

  #copySource(key: string): string {
    return `${this.bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;
  }

  #hexOf(contentHash: string): string {
    return hexOfContentHash(contentHash);
  }

  #where(contentHash: string): string {
    return `s3://${this.bucket}/${this.#blobKey(this.#hexOf(contentHash))}`;
  }
}

function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function isPreconditionFailed(error: unknown): boolean {
  const e = error as { name?: string; $metadata?: { httpStatusCode?: number } } | undefined;
  return e?.name === 'PreconditionFailed' || e?.$metadata?.httpStatusCode === 412;
}

function isNotFound(error: unknown): boolean {
  const e = error as { name?: string; $metadata?: { httpStatusCode?: number } } | undefined;
  return e?.name === 'NoSuchKey' || e?.name === 'NotFound' || e?.$metadata?.httpStatusCode === 404;
}

async function fileExists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
