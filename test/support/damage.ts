import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { LocalArtifactStore } from '../../lib/artifacts/local-artifact-store.ts';

/** The path of a blob in a local artifact store. */
export function localBlobPath(storeRoot: string, contentHash: string): string {
  const hex = contentHash.slice('sha256:'.length);
  return join(storeRoot, 'blobs', hex.slice(0, 2), hex);
}

/** Overwrites a blob file in place (it is read-only, as the store creates it), as a disk fault would. */
export function damageLocalBlob(store: LocalArtifactStore) {
  return async (contentHash: string, bytes: Buffer): Promise<void> => {
    const path = localBlobPath(store.root, contentHash);
    await chmod(path, 0o644);
    await writeFile(path, bytes);
    await chmod(path, 0o444);
  };
}
