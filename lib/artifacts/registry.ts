import { createCollectionMaterializer } from './collection.ts';
import { registeredMaterializers } from './custom-materializers.ts';
import { MaterializerRegistry } from './materializers.ts';

/** The registry every stack uses: built-ins, fan-out collections, then user-registered ones. */
export function createMaterializerRegistry(options: { cacheDir: string }): MaterializerRegistry {
  const registry = MaterializerRegistry.withBuiltins(options);
  registry.register(createCollectionMaterializer(registry));
  for (const custom of registeredMaterializers()) registry.register(custom);
  return registry;
}
