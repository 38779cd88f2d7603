import type { ArtifactStore } from '../artifacts/artifact-store.ts';
import type { MetadataStore, StackRepository } from '../metadata/metadata-store.ts';
import type { ArtifactVersion } from '../metadata/types.ts';
import type { Caller } from './caller.ts';

/** Hands out short-lived links to an artifact version's bytes. */
export interface DownloadLinkIssuer {
  issue(version: ArtifactVersion): Promise<{ url: string; expiresAt: string }>;
}

/**
 * What every handler gets: the stores of the stack the API serves, the stack registry, how to make
 * download links, and the authenticated caller. Nothing of HTTP or Lambda.
 */
export interface ApiContext {
  metadata: MetadataStore;
  artifacts: ArtifactStore;
  /** The stack registry: the project's locally, the deployment's stacks table on AWS. */
  stacks: StackRepository;
  downloads: DownloadLinkIssuer;
  /** Aliases only release managers may set or remove. */
  protectedAliases: readonly string[];
  caller: Caller;
}

/** Stores' `nextCursor` is absent on the last page; the wire says `null`. */
export function toWirePage<T>(page: { items: T[]; nextCursor?: string }): { items: T[]; nextCursor: string | null } {
  return { items: page.items, nextCursor: page.nextCursor ?? null };
}
