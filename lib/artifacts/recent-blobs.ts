import type { Readable } from 'node:stream';
import type { ArtifactStore, BlobSource, StoredBlob } from './artifact-store.ts';

/** Options of {@link withRecentBlobs}. */
export interface RecentBlobsOptions {
  /** Larger values are never kept (default 256 KiB): only what steps pass each other as JSON or text. */
  maxBlobBytes?: number;
  /** What all kept blobs may take together (default 8 MiB); the least recently used go first. */
  maxTotalBytes?: number;
}

/**
 * An artifact store that remembers the small blobs it has just written or read, so that a step
 * reading its upstream step's output in the same process does not download what was uploaded a
 * moment ago (on S3, one GET per step of a linear pipeline).
 *
 * Sound because blobs are content-addressed and immutable: the bytes kept are the ones the store
 * hashed on `put`, or verified against their hash on `getBytes`, so a hit returns exactly the
 * bytes of that hash. What it does not do is notice damage done to the stored copy after that
 * moment (a read from the backend would); hold one per run or per warm container, not forever.
 *
 * @example
 * const artifacts = withRecentBlobs(new S3ArtifactStore({ ... }));
 * const { contentHash } = await artifacts.put('{"rows":3}');
 * await artifacts.getBytes(contentHash); // from memory, no GetObject
 */
export function withRecentBlobs(store: ArtifactStore, options: RecentBlobsOptions = {}): ArtifactStore {
  const maxBlob = options.maxBlobBytes ?? 256 * 1024;
  const maxTotal = options.maxTotalBytes ?? 8 * 1024 * 1024;
  // Insertion order is recency order: a hit is deleted and re-inserted.
  const kept = new Map<string, Buffer>();
  let total = 0;

  const keep = (contentHash: string, bytes: Uint8Array) => {
    if (bytes.byteLength > maxBlob || kept.has(contentHash)) return;
    kept.set(contentHash, Buffer.from(bytes));
    total += bytes.byteLength;
    for (const [hash, blob] of kept) {
      if (total <= maxTotal) break;
      kept.delete(hash);
      total -= blob.byteLength;
    }
  };

  const recent: ArtifactStore = {
    kind: store.kind,
    async put(source: BlobSource): Promise<StoredBlob> {
      const stored = await store.put(source);
      if (typeof source === 'string') keep(stored.contentHash, Buffer.from(source, 'utf8'));
      else if (source instanceof Uint8Array) keep(stored.contentHash, source);
      return stored;
    },
    putFile: (path) => store.putFile(path),
    get: (contentHash): Promise<Readable> => store.get(contentHash),
    async getBytes(contentHash) {
      const hit = kept.get(contentHash);
      if (hit !== undefined) {
        kept.delete(contentHash);
        kept.set(contentHash, hit);
        // A copy: callers may write into the buffer they get.
        return Buffer.from(hit);
      }
      const bytes = await store.getBytes(contentHash);
      keep(contentHash, bytes);
      return bytes;
    },
    getFile: (contentHash) => store.getFile(contentHash),
    exists: (contentHash) => store.exists(contentHash),
    check: (contentHash) => store.check(contentHash),
  };
  if (store.collectGarbage) {
    recent.collectGarbage = (isReferenced, gcOptions) => {
      kept.clear();
      total = 0;
      return store.collectGarbage!(isReferenced, gcOptions);
    };
  }
  return recent;
}
