import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalArtifactStore } from '../../lib/artifacts/local-artifact-store.ts';
import { createMaterializerRegistry } from '../../lib/artifacts/registry.ts';
import { SqliteMetadataStore } from '../../lib/metadata/sqlite/sqlite-metadata-store.ts';
import type { StepEnvironment } from '../../lib/runtime/step-executor.ts';

export interface LocalTestEnv extends StepEnvironment {
  metadata: SqliteMetadataStore;
  artifacts: LocalArtifactStore;
  dir: string;
  cleanup(): Promise<void>;
}

/** A throwaway local stack: SQLite file + artifact directory in a temp dir; every pipeline may promote (like the default stack). */
export async function createLocalTestEnv(): Promise<LocalTestEnv> {
  const dir = await mkdtemp(join(tmpdir(), 'stackline-test-'));
  const metadata = SqliteMetadataStore.open(join(dir, 'metadata.db'));
  const artifacts = new LocalArtifactStore(join(dir, 'artifacts'));
  const materializers = createMaterializerRegistry({ cacheDir: join(dir, 'materialized') });
  return {
    metadata,
    artifacts,
    materializers,
    promoters: ['*'],
    dir,
    async cleanup() {
      await metadata.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
