/**
 * The artifact store of a remote client (`Stackline.open({ api })`): read-only, over the short-lived
 * links the API hands out (presigned S3 URLs on AWS), so the client needs API permissions only.
 * Bytes are checked against their content hash as they are read.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { ArtifactStore } from '../artifacts/artifact-store.ts';
import { checkedBytes, hexOfContentHash } from '../artifacts/integrity.ts';
import { NotFoundError, ValidationError } from '../errors.ts';

const READ_ONLY =
  'Remote clients are read and control only: artifacts are written by pipeline runs (POST /runs), not uploaded through the API.';

/**
 * An {@link ArtifactStore} that reads the blobs the API gave links for (`link(contentHash, url)` first).
 * A blob without a link (the members of a directory or collection artifact) is not reachable:
 * the API hands out links per artifact version.
 */
export class DownloadLinkArtifactStore implements ArtifactStore {
  readonly kind = 'api-download-links';
  private readonly links = new Map<string, string>();

  constructor(
    private readonly cacheDir = join(tmpdir(), 'stackline', 'remote-cache'),
    private readonly fetchImpl: typeof fetch = globalThis.fetch,
  ) {}

  /** Remembers the link the API gave for a blob. */
  link(contentHash: string, url: string): void {
    this.links.set(contentHash, url);
  }

  async getBytes(contentHash: string): Promise<Buffer> {
    const url = this.links.get(contentHash);
    if (!url) {
      throw new ValidationError(
        `Blob ${contentHash} has no download link: remote clients load single-blob artifacts (JSON, strings, bytes, models); load directories and collections on a stack you open directly.`,
        { context: { contentHash } },
      );
    }
    // No credentials go with this request: the link carries its own (short-lived) authorization.
    const res = await this.fetchImpl(url);
    if (res.status === 404) throw new NotFoundError(`Blob ${contentHash} is missing from the artifact store.`);
    if (!res.ok)
      throw new ValidationError(
        `Downloading ${contentHash} failed with HTTP ${res.status}: ask the API for a new link.`,
      );
    return checkedBytes(Buffer.from(await res.arrayBuffer()), contentHash, 'download link');
  }

  async get(contentHash: string): Promise<Readable> {
    return Readable.from([await this.getBytes(contentHash)]);
  }

  async getFile(contentHash: string): Promise<string> {
    const bytes = await this.getBytes(contentHash);
    mkdirSync(this.cacheDir, { recursive: true });
    const path = join(this.cacheDir, hexOfContentHash(contentHash));
    writeFileSync(path, bytes);
    return path;
  }

  async exists(contentHash: string): Promise<boolean> {
    return this.links.has(contentHash);
  }

  async check(contentHash: string) {
    try {
      await this.getBytes(contentHash);
      return 'ok' as const;
    } catch (error) {
      if (error instanceof NotFoundError) return 'missing' as const;
      return 'damaged' as const;
    }
  }

  put(): never {
    throw new ValidationError(READ_ONLY);
  }

  putFile(): never {
    throw new ValidationError(READ_ONLY);
  }
}
