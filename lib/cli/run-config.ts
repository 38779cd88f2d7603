import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ValidationError } from '../errors.ts';
import { formatZodIssues } from '../util/zod-format.ts';

/** The `--config FILE.yaml` format. */
export const RunConfigSchema = z
  .object({
    parameters: z.record(z.string(), z.unknown()).default({}),
    cache: z.boolean().optional(),
    concurrency: z.number().int().min(1).max(256).optional(),
    stack: z.string().optional(),
    tags: z.array(z.string()).default([]),
    steps: z.record(z.string(), z.object({ cache: z.boolean().optional() }).strict()).default({}),
  })
  .strict();

export type RunConfig = z.output<typeof RunConfigSchema>;

export function readRunConfig(file: string, cwd: string): RunConfig {
  const path = resolve(cwd, file);
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new ValidationError(`Cannot read config file ${path}: ${(error as Error).message}`, { cause: error });
  }
  const parsed = RunConfigSchema.safeParse(raw ?? {});
  if (!parsed.success) {
    throw new ValidationError(
      `Config file ${path} is invalid: ${formatZodIssues(parsed.error)}. Allowed keys: parameters, cache, concurrency, stack, tags, steps.<id>.cache.`,
    );
  }
  return parsed.data;
}

/**
 * Parses `--param key=value` pairs. Values are JSON when they parse as JSON (`3`, `true`, `[1,2]`)
 * and strings otherwise; dotted keys (`model.depth=3`) build nested objects.
 */
export function parseParamPairs(pairs: string[]): Record<string, unknown> {
  const result: Record<string, unknown> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0)
      throw new ValidationError(`--param ${JSON.stringify(pair)} is not key=value (example: --param trees=50).`);
    const key = pair.slice(0, eq);
    const text = pair.slice(eq + 1);
    let value: unknown = text;
    try {
      value = JSON.parse(text);
    } catch {
      // not JSON: keep the string
    }
    const path = key.split('.');
    let target = result;
    for (const part of path.slice(0, -1)) {
      const next = target[part];
      if (typeof next !== 'object' || next === null || Array.isArray(next)) target[part] = {};
      target = target[part] as Record<string, unknown>;
    }
    target[path.at(-1)!] = value;
  }
  return result;
}

/** Deep-merges `override` into `base` (objects merge, everything else replaces). */
export function mergeParams(base: Record<string, unknown>, override: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(override)) {
    const b = out[k];
    out[k] =
      typeof v === 'object' &&
      v !== null &&
      !Array.isArray(v) &&
      typeof b === 'object' &&
      b !== null &&
      !Array.isArray(b)
        ? mergeParams(b as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  }
  return out;
}
