import { IntegrityError, NotFoundError, StackConfigError } from '../errors.ts';
import type { MetadataStore } from '../metadata/metadata-store.ts';
import { stepSnapshotReference } from '../metadata/step-snapshot.ts';
import type { ArtifactVersion, PipelineRun } from '../metadata/types.ts';
import type { ArtifactStore, GarbageCollection } from './artifact-store.ts';
import type { BlobCheck } from './integrity.ts';
import { blobsOfArtifact } from './load-artifact.ts';

/** What a stack's maintenance needs: its records and its bytes. */
export interface StoredArtifacts {
  metadata: MetadataStore;
  artifacts: ArtifactStore;
}

/** One artifact version whose bytes are not all there and intact. */
export interface DamagedVersion {
  artifact: string;
  version: number;
  /** The first of its blobs found wanting (the version's own, or one its manifest lists). */
  contentHash: string;
  problem: Exclude<BlobCheck, 'ok'>;
}

export interface VerifyReport {
  versionsChecked: number;
  blobsChecked: number;
  damaged: DamagedVersion[];
}

const PAGE = 500;

/** Every version of `name`, or of every artifact when `name` is omitted, page by page. */
export async function* allArtifactVersions(metadata: MetadataStore, name?: string): AsyncGenerator<ArtifactVersion> {
  const names: string[] = [];
  if (name !== undefined) names.push(name);
  else {
    let cursor: string | undefined;
    do {
      const page = await metadata.artifacts.list({ limit: PAGE, ...(cursor && { cursor }) });
      names.push(...page.items.map((a) => a.name));
      cursor = page.nextCursor;
    } while (cursor);
  }
  for (const artifact of names) {
    let cursor: string | undefined;
    do {
      const page = await metadata.artifacts.listVersions(artifact, { limit: PAGE, ...(cursor && { cursor }) });
      yield* page.items;
      cursor = page.nextCursor;
    } while (cursor);
  }
}

async function* allRuns(metadata: MetadataStore): AsyncGenerator<PipelineRun> {
  let cursor: string | undefined;
  do {
    const page = await metadata.runs.list({ limit: PAGE, ...(cursor && { cursor }) });
    yield* page.items;
    cursor = page.nextCursor;
  } while (cursor);
}

/**
 * Re-hashes every blob the chosen artifact versions need (all versions, one artifact's, or one
 * version) and lists the versions whose bytes are missing or damaged. Each blob is read once,
 * streamed, however many versions share it.
 */
export async function verifyArtifacts(
  stack: StoredArtifacts,
  select: { name?: string; version?: number | 'latest' } = {},
): Promise<VerifyReport> {
  const checked = new Map<string, BlobCheck>();
  const check = async (contentHash: string): Promise<BlobCheck> => {
    let result = checked.get(contentHash);
    if (result === undefined) {
      result = await stack.artifacts.check(contentHash);
      checked.set(contentHash, result);
    }
    return result;
  };
  const versions =
    select.version !== undefined && select.name !== undefined
      ? [await stack.metadata.artifacts.getVersion(select.name, select.version)]
      : allArtifactVersions(stack.metadata, select.name);
  const report: VerifyReport = { versionsChecked: 0, blobsChecked: 0, damaged: [] };
  for await (const version of versions) {
    report.versionsChecked++;
    const own = await check(version.contentHash);
    let problem: DamagedVersion | undefined =
      own === 'ok'
        ? undefined
        : { artifact: version.name, version: version.version, contentHash: version.contentHash, problem: own };
    if (problem === undefined) {
      for (const blob of (await blobsOfArtifact(version, stack.artifacts)).slice(1)) {
        const result = await check(blob);
        if (result !== 'ok') {
          problem = { artifact: version.name, version: version.version, contentHash: blob, problem: result };
          break;
        }
      }
    }
    if (problem) report.damaged.push(problem);
  }
  report.blobsChecked = checked.size;
  return report;
}

/**
 * Removes blobs no artifact version or run's step snapshot needs, once older than `graceMs` (see the store's
 * `collectGarbage` for why this is safe beside running pipelines). Refuses when a manifest cannot
 * be read, since the blobs it lists would then look unreferenced.
 */
export async function collectArtifactGarbage(
  stack: StoredArtifacts,
  options: { graceMs: number; dryRun?: boolean },
): Promise<GarbageCollection> {
  const { artifacts } = stack;
  if (!artifacts.collectGarbage) {
    throw new StackConfigError(
      `The ${artifacts.kind} artifact store does not support "artifacts gc"; use the bucket's lifecycle rules for ${artifacts.kind}.`,
      { context: { artifactStore: artifacts.kind } },
    );
  }
  // Taken before the references are read: a record committed after that read points at a blob
  // some writer refreshed within `graceMs` before the commit, so later than this cutoff.
  const olderThan = Date.now() - options.graceMs;
  const referenced = new Set<string>();
  for await (const version of allArtifactVersions(stack.metadata)) {
    try {
      for (const blob of await blobsOfArtifact(version, artifacts)) referenced.add(blob);
    } catch (error) {
      if (error instanceof NotFoundError) {
        referenced.add(version.contentHash);
        continue; // A missing manifest protects nothing more.
      }
      if (error instanceof IntegrityError) {
        throw new IntegrityError(
          `Artifact ${version.name} v${version.version} has a damaged manifest, so gc cannot tell which blobs it needs. ` +
            'Run "stackline artifacts verify", repair it (re-run its step), then gc again.',
          { cause: error, context: { artifact: version.name, version: version.version } },
        );
      }
      throw error;
    }
  }
  // Runs' per-step snapshots are blobs too, referenced from run records rather than versions.
  for await (const run of allRuns(stack.metadata)) {
    const snapshot = stepSnapshotReference(run);
    if (snapshot) referenced.add(snapshot.contentHash);
  }
  return artifacts.collectGarbage((contentHash) => referenced.has(contentHash), {
    olderThan,
    ...(options.dryRun && { dryRun: true }),
  });
}
