import { Readable } from 'node:stream';
import { IntegrityError } from '../errors.ts';
import type { ArtifactStore } from './artifact-store.ts';
import { COLLECTION, CollectionManifest } from './collection.ts';
import type { MaterializerRegistry } from './materializers.ts';
import { directoryManifestSchema } from './materializers.ts';

/** What identifies an artifact version well enough to load it and to name it in an error. */
export interface LoadableArtifactVersion {
  name: string;
  version: number;
  materializer: string;
  contentHash: string;
  dataType: string;
}

/**
 * Loads an artifact version's value with its materializer. A blob whose bytes do not match their
 * hash fails with an {@link IntegrityError} naming the artifact version (also when the damage shows
 * only while a returned stream is read).
 */
export async function loadArtifactVersion<T = unknown>(
  registry: MaterializerRegistry,
  version: LoadableArtifactVersion,
  store: ArtifactStore,
): Promise<T> {
  let value: unknown;
  try {
    value = await registry.get(version.materializer).load(version, { store });
  } catch (error) {
    throw nameArtifactVersion(error, version);
  }
  if (value instanceof Readable) {
    const source = value;
    value = Readable.from(
      (async function* () {
        try {
          for await (const chunk of source) yield chunk;
        } catch (error) {
          throw nameArtifactVersion(error, version);
        }
      })(),
      { objectMode: false },
    );
  }
  return value as T;
}

/** An {@link IntegrityError} about a blob, reworded to name the artifact version it belongs to. */
export function nameArtifactVersion(error: unknown, version: { name: string; version: number }): unknown {
  if (!(error instanceof IntegrityError) || error.context.artifact !== undefined) return error;
  return new IntegrityError(`Artifact ${version.name} v${version.version}: ${error.message}`, {
    cause: error,
    context: { ...error.context, artifact: version.name, version: version.version },
  });
}

/**
 * Every blob an artifact version needs: its own, plus those its manifest lists for `directory`
 * and `collection` artifacts (recursively). Reads (and so verifies) the manifests.
 * A custom materializer that stores more than one blob must record the others the same way.
 */
export async function blobsOfArtifact(
  ref: { materializer: string; contentHash: string },
  store: ArtifactStore,
): Promise<string[]> {
  const blobs = [ref.contentHash];
  if (ref.materializer === 'directory') {
    const manifest = directoryManifestSchema.parse(
      JSON.parse((await store.getBytes(ref.contentHash)).toString('utf8')),
    );
    for (const file of manifest.files) blobs.push(file.contentHash);
  } else if (ref.materializer === COLLECTION) {
    const manifest = CollectionManifest.parse(JSON.parse((await store.getBytes(ref.contentHash)).toString('utf8')));
    for (const item of manifest.items) blobs.push(...(await blobsOfArtifact(item, store)));
  }
  return blobs;
}
