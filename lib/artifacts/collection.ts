import { z } from 'zod';
import type { MaterializedValue, Materializer } from './materializer.ts';
import type { MaterializerRegistry } from './materializers.ts';

/** A fan-out's collected output: the items' stored values, in item order, by content hash. */
export const CollectionManifest = z.object({
  items: z.array(
    z.object({ contentHash: z.string(), materializer: z.string(), dataType: z.string(), size: z.number() }),
  ),
});
export type CollectionManifest = z.infer<typeof CollectionManifest>;

export const COLLECTION = 'collection';
/** Items of a collection read at once when it is loaded. */
export const COLLECTION_LOAD_CONCURRENCY = 16;

/**
 * Stores a fan-out output as a manifest of its items' blobs (never copying item data), and loads it
 * back as an array by loading each item with its own materializer. The manifest's hash depends only
 * on item contents, so identical fan-out results give downstream steps identical cache keys.
 */
export function createCollectionMaterializer(registry: MaterializerRegistry): Materializer<CollectionManifest> {
  return {
    name: COLLECTION,
    canHandle: () => false,
    async save(manifest, { store }): Promise<MaterializedValue> {
      const stored = await store.put(JSON.stringify(CollectionManifest.parse(manifest)));
      return { ...stored, dataType: `collection:${manifest.items.length}` };
    },
    async load(ref, context) {
      const manifest = CollectionManifest.parse(
        JSON.parse((await context.store.getBytes(ref.contentHash)).toString('utf8')),
      );
      // A few reads in flight at once: one at a time, a 1,000-item collection on S3 takes 1,000 round trips in a row.
      const values: unknown[] = new Array(manifest.items.length);
      let next = 0;
      const worker = async () => {
        for (let index = next++; index < manifest.items.length; index = next++) {
          values[index] = await registry.load(manifest.items[index]!, context);
        }
      };
      await Promise.all(Array.from({ length: Math.min(COLLECTION_LOAD_CONCURRENCY, manifest.items.length) }, worker));
      return values as unknown as CollectionManifest;
    },
  };
}
