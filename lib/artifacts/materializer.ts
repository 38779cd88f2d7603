import type { ArtifactStore, StoredBlob } from './artifact-store.ts';

/** What a materializer wrote: the blob plus a description of the value's type. */
export interface MaterializedValue extends StoredBlob {
  dataType: string;
}

export interface MaterializerContext {
  store: ArtifactStore;
}

/**
 * Turns step output values into stored bytes and back. Built-ins: `json`, `string`, `binary`,
 * `file`, `directory` (see `lib/artifacts/materializers.ts`); register your own with
 * {@link MaterializerRegistry.register}.
 *
 * @example
 * registry.register<Matrix>({
 *   name: 'matrix',
 *   canHandle: (v) => v instanceof Matrix,
 *   save: async (m, { store }) => ({ ...(await store.put(JSON.stringify(m.to2DArray()))), dataType: 'matrix' }),
 *   load: async (ref, { store }) => new Matrix(JSON.parse((await store.getBytes(ref.contentHash)).toString())),
 * });
 */
export interface Materializer<T = unknown> {
  readonly name: string;
  /** Used to pick a materializer when an output does not name one. */
  canHandle(value: unknown): boolean;
  save(value: T, context: MaterializerContext): Promise<MaterializedValue>;
  load(ref: { contentHash: string; dataType: string }, context: MaterializerContext): Promise<T>;
}
