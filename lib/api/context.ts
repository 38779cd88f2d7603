import type { ArtifactStore } from '../artifacts/artifact-store.ts';
import type { MetadataStore, StackRepository } from '../metadata/metadata-store.ts';
import type { ArtifactVersion } from '../metadata/types.ts';
import type { Caller } from './caller.ts';

/** Hands out short-lived links to an artifact version's bytes. */
export interface DownloadLinkIssuer {
  issue(version: ArtifactVersion): Promise<{ url: string; expiresAt: string }>;
}

/** What `POST /runs` asks for, validated. */
export interface StartRunRequest {
  pipeline: string;
  stack?: string;
  params?: Record<string, unknown>;
  tags?: string[];
  cache?: boolean;
  definitionSha256?: string;
}

/**
 * Starts pipeline runs for the API: the local orchestrator on the pipelines `stackline serve` loaded,
 * or StartExecution on the deployed state machines' `live` alias on AWS. Returns once the run is
 * recorded (locally) or the execution started (AWS); the run goes on in the background.
 *
 * @throws NotFoundError for a pipeline it does not know; ConflictError when `definitionSha256` differs
 */
export interface RunStarter {
  start(
    request: StartRunRequest,
    trigger: { actor: string; tags: string[] },
  ): Promise<{ runId: string; executionArn?: string }>;
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
  /** Starts runs (`POST /runs`); absent when the server knows no pipelines. */
  runs?: RunStarter;
  /** Pipelines whose steps may promote to production here (the stack's or environment's `promoters`). */
  promoters?: readonly string[];
  /** Aliases only release managers may set or remove. */
  protectedAliases: readonly string[];
  caller: Caller;
}

/** Stores' `nextCursor` is absent on the last page; the wire says `null`. */
export function toWirePage<T>(page: { items: T[]; nextCursor?: string }): { items: T[]; nextCursor: string | null } {
  return { items: page.items, nextCursor: page.nextCursor ?? null };
}
