import type { Readable } from 'node:stream';
import type { BlobCheck } from './integrity.ts';

/** What an artifact store returns for stored content. */
export interface StoredBlob {
  /** `sha256:<hex>` of the bytes. */
  contentHash: string;
  size: number;
  /** Backend-specific location (`file:///…/blobs/ab/cd…`, `s3://bucket/prefix/blobs/…`). */
  uri: string;
}

export type BlobSource = Readable | AsyncIterable<Uint8Array> | Uint8Array | string;

/** What `collectGarbage` removed (or, in a dry run, would remove). */
export interface GarbageCollection {
  removed: string[];
  removedBytes: number;
  kept: number;
  tempFilesRemoved: number;
}

/**
 * Content-addressed storage for artifact bytes. Identical content is stored once; writes are
 * streamed (never buffered whole) and atomic (readers never see a partial blob); a blob, once
 * written, never changes. Reads re-hash what they return and fail with an `IntegrityError` when
 * the bytes are not the content hash's; a write finding damaged bytes under its hash replaces them. One adapter per backend: `LocalArtifactStore` (disk), `S3ArtifactStore`.
 * Every adapter must pass `test/conformance/artifact-store.conformance.ts` unchanged.
 */
export interface ArtifactStore {
  readonly kind: string;
  /** Streams `source` into the store, hashing as it goes. */
  put(source: BlobSource): Promise<StoredBlob>;
  /** Streams a local file into the store. */
  putFile(path: string): Promise<StoredBlob>;
  /** A stream of the blob's bytes. @throws NotFoundError */
  get(contentHash: string): Promise<Readable>;
  /** The whole blob in memory — for small values (JSON, strings) only. @throws NotFoundError */
  getBytes(contentHash: string): Promise<Buffer>;
  /**
   * A local, read-only file path holding the blob's bytes: the blob itself on disk stores,
   * a cached download on remote stores. @throws NotFoundError
   */
  getFile(contentHash: string): Promise<string>;
  exists(contentHash: string): Promise<boolean>;
  /** Re-reads and re-hashes one blob (streamed). */
  check(contentHash: string): Promise<BlobCheck>;
  /**
   * Removes blobs `isReferenced` does not hold, last written before `olderThan` (epoch ms), safely
   * beside running writers. Stores that cannot do this safely leave it undefined.
   */
  collectGarbage?(
    isReferenced: (contentHash: string) => boolean,
    options: { olderThan: number; dryRun?: boolean },
  ): Promise<GarbageCollection>;
}
