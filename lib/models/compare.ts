import type { JsonValue, Metadata, ModelVersion } from '../metadata/types.ts';

export interface VersionComparison {
  model: string;
  versions: Array<{ number: number; name?: string; stage?: string; aliases: string[] }>;
  /** One row per metadata key (nested keys flattened with dots), values in `versions` order. */
  rows: Array<{ key: string; values: Array<JsonValue | undefined>; differs: boolean }>;
}

function flatten(metadata: Metadata, prefix = '', out: Record<string, JsonValue> = {}): Record<string, JsonValue> {
  for (const [key, value] of Object.entries(metadata)) {
    const path = prefix ? `${prefix}.${key}` : key;
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) flatten(value, path, out);
    else out[path] = value;
  }
  return out;
}

/** Lines up two or more versions' metadata side by side, key by key. */
export function compareModelVersions(versions: ModelVersion[]): VersionComparison {
  const flat = versions.map((v) => flatten(v.metadata));
  const keys = [...new Set(flat.flatMap((f) => Object.keys(f)))].sort();
  return {
    model: versions[0]?.model ?? '',
    versions: versions.map((v) => ({
      number: v.number,
      ...(v.name === undefined ? {} : { name: v.name }),
      ...(v.stage === undefined ? {} : { stage: v.stage }),
      aliases: v.aliases,
    })),
    rows: keys.map((key) => {
      const values = flat.map((f) => f[key]);
      const texts = values.map((v) => JSON.stringify(v));
      return { key, values, differs: new Set(texts).size > 1 };
    }),
  };
}
