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
      const values = [];
      for (const item of manifest.items) values.push(await registry.load(item, context));
      return values as unknown as CollectionManifest;
    },
  };
}
