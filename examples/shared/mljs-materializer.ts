/**
 * A custom materializer for mljs models. `toJSON()` of an ml-random-forest model contains
 * ±Infinity (unbounded depth, leaf gains), which JSON cannot hold; this materializer encodes
 * non-finite numbers as tagged strings, so the model round-trips exactly.
 */
import { registerMaterializer } from 'stackline';

const TAG = '__nonFinite:';

function encode(_key: string, value: unknown): unknown {
  if (typeof value === 'number' && !Number.isFinite(value)) return `${TAG}${value}`;
  return value;
}

function decode(_key: string, value: unknown): unknown {
  if (typeof value === 'string' && value.startsWith(TAG)) return Number(value.slice(TAG.length));
  return value;
}

export const MLJS_MODEL = 'mljs-model';

registerMaterializer<object>({
  name: MLJS_MODEL,
  // Only chosen when an output names it: it is not meant for arbitrary objects.
  canHandle: () => false,
  async save(model, { store }) {
    const stored = await store.put(JSON.stringify(model, encode));
    return { ...stored, dataType: `mljs:${(model as { name?: string }).name ?? 'model'}` };
  },
  async load(ref, { store }) {
    return JSON.parse((await store.getBytes(ref.contentHash)).toString('utf8'), decode) as object;
  },
});
