import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';
import { closestName, displayValue } from '../dsl/names.ts';
import { ValidationError } from '../errors.ts';
import { formatZodIssues } from '../util/zod-format.ts';

/** Keys that would reach an object's prototype if assigned. */
const UNSAFE_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * The `--config FILE.yaml` format, built on first use: most runs have no config file, and building
 * zod schemas at import time is part of every run's start-up.
 */
const runConfigSchema = () =>
  z
    .object({
      parameters: z.record(z.string(), z.unknown()).default({}),
      cache: z.boolean().optional(),
      concurrency: z.number().int().min(1).max(256).optional(),
      stack: z.string().optional(),
      tags: z.array(z.string()).default([]),
      steps: z.record(z.string(), z.object({ cache: z.boolean().optional() }).strict()).default({}),
    })
    .strict();

export type RunConfig = z.output<ReturnType<typeof runConfigSchema>>;

/**
 * Reads and validates a `--config` file. The YAML parser loads only here: most runs have no config
 * file, and importing it costs a run's start-up more than parsing any config does.
 */
export async function readRunConfig(file: string, cwd: string): Promise<RunConfig> {
  const path = resolve(cwd, file);
  let raw: unknown;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ValidationError(
      `Cannot read config file ${path}: ${(error as NodeJS.ErrnoException).code ?? 'unreadable'}.`,
      {
        cause: error,
        context: { file: path },
      },
    );
  }
  const { parse: parseYaml } = await import('yaml');
  try {
    raw = parseYaml(text);
  } catch (error) {
    // The yaml library's message spans several lines (with a code frame); keep its first, with the position.
    const line = (error as { linePos?: Array<{ line: number; col: number }> }).linePos?.[0];
    const reason = ((error as Error).message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
    throw new ValidationError(`${path}${line ? `:${line.line}:${line.col}` : ''}: invalid YAML: ${reason}`, {
      cause: error,
      context: { file: path },
    });
  }
  const unsafe = findUnsafeKey(raw);
  if (unsafe !== undefined) {
    throw new ValidationError(`Config file ${path}: "${unsafe}" cannot be a key.`, { context: { file: path } });
  }
  const schema = runConfigSchema();
  const parsed = schema.safeParse(raw ?? {});
  if (!parsed.success) {
    const unknown = parsed.error.issues.find((issue) => issue.code === 'unrecognized_keys');
    if (unknown && unknown.code === 'unrecognized_keys') {
      const key = unknown.keys[0]!;
      const allowed = unknown.path.length === 0 ? Object.keys(schema.shape) : ['cache'];
      const guess = closestName(key, allowed);
      throw new ValidationError(
        `Config file ${path}: unknown key ${displayValue([...unknown.path, key].join('.'))}${guess ? ` (did you mean "${guess}"?)` : ''}. Allowed keys: parameters, cache, concurrency, stack, tags, steps.<id>.cache.`,
        { context: { file: path } },
      );
    }
    throw new ValidationError(
      `Config file ${path} is invalid: ${formatZodIssues(parsed.error)}. Allowed keys: parameters, cache, concurrency, stack, tags, steps.<id>.cache.`,
      { context: { file: path } },
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
    const bad = path.find((part) => part === '' || UNSAFE_KEYS.has(part));
    if (bad !== undefined) {
      throw new ValidationError(
        `--param ${displayValue(key)}: ${bad === '' ? 'empty key segment' : `"${bad}" cannot be a parameter name`}; use the parameter's name (example: --param trees=50).`,
        { context: { option: '--param', key } },
      );
    }
    let target = result;
    for (const part of path.slice(0, -1)) {
      const next = Object.hasOwn(target, part) ? target[part] : undefined;
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
    // An own "__proto__" key (JSON.parse and YAML make those) would set the prototype here.
    if (UNSAFE_KEYS.has(k)) throw new ValidationError(`"${k}" cannot be a parameter name.`, { context: { key: k } });
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

/** The first own key anywhere in `value` that could reach a prototype when merged. */
function findUnsafeKey(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  for (const key of Reflect.ownKeys(value)) {
    if (typeof key === 'string' && UNSAFE_KEYS.has(key)) return key;
    const nested = findUnsafeKey((value as Record<string | symbol, unknown>)[key]);
    if (nested !== undefined) return nested;
  }
  return undefined;
}
