import { createHmac, timingSafeEqual } from 'node:crypto';
import type { S3ArtifactStore } from '../artifacts/s3-artifact-store.ts';
import { AuthenticationError } from '../errors.ts';
import type { ArtifactVersion } from '../metadata/types.ts';
import type { DownloadLinkIssuer } from './context.ts';

/** Links live this long: long enough to start a download, short enough not to be worth sharing. */
export const DOWNLOAD_LINK_SECONDS = 900;

/** Presigned S3 GET URLs, for AWS stacks: the bytes never pass through the API. */
export class S3DownloadLinks implements DownloadLinkIssuer {
  constructor(
    private readonly store: Pick<S3ArtifactStore, 'presignedDownloadUrl'>,
    private readonly seconds = DOWNLOAD_LINK_SECONDS,
  ) {}

  async issue(version: ArtifactVersion) {
    const url = await this.store.presignedDownloadUrl(version.contentHash, this.seconds);
    return { url, expiresAt: new Date(Date.now() + this.seconds * 1000).toISOString() };
  }
}

/**
 * Links served by `stackline serve` itself at `GET /downloads/{contentHash}`: an HMAC-SHA256 over the
 * content hash and expiry with a per-server secret, so the link works without the bearer token (a
 * notebook can hand it to any HTTP client) and only until it expires.
 */
export class SignedLocalDownloadLinks implements DownloadLinkIssuer {
  constructor(
    private readonly baseUrl: () => string,
    private readonly secret: Buffer,
    private readonly seconds = DOWNLOAD_LINK_SECONDS,
  ) {}

  private sign(contentHash: string, expires: number): string {
    return createHmac('sha256', this.secret).update(`${contentHash}\n${expires}`).digest('hex');
  }

  async issue(version: ArtifactVersion) {
    const expires = Math.floor(Date.now() / 1000) + this.seconds;
    const query = new URLSearchParams({ expires: String(expires), signature: this.sign(version.contentHash, expires) });
    return {
      url: `${this.baseUrl()}/downloads/${encodeURIComponent(version.contentHash)}?${query}`,
      expiresAt: new Date(expires * 1000).toISOString(),
    };
  }

  /** @throws AuthenticationError when the signature is wrong or the link has expired. */
  verify(contentHash: string, expires: number, signature: string): void {
    const expected = Buffer.from(this.sign(contentHash, expires), 'hex');
    const given = Buffer.from(signature, 'hex');
    if (given.length !== expected.length || !timingSafeEqual(given, expected))
      throw new AuthenticationError('The download link is not valid: ask the API for a new one.');
    if (expires * 1000 < Date.now())
      throw new AuthenticationError('The download link has expired: ask the API for a new one.');
  }
}
