/**
 * TypeScript files to JavaScript with esbuild, through a cache on disk keyed by the source, the
 * esbuild version and every option that changes the output (the nearest tsconfig.json's emit
 * settings included): a start whose files are unchanged reads the cache and never loads esbuild.
 * Shared by the TypeScript hooks (typescript-hooks.ts, on Node 20's hooks thread) and the
 * compiler that runs pipelines ahead of time (precompile.ts), so it imports only Node's built-ins
 * and project-cache.ts (and cache-prune.ts after a miss).
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { threadId } from 'node:worker_threads';
import { projectCacheDir, projectRoot } from '../code-hash/project-cache.ts';

/** Bumped when the way files are transpiled changes in a way the key does not show. */
const TRANSPILE_CACHE_VERSION = 1;
/** A TypeScript file, its extension captured. */
export const TYPESCRIPT_FILE = /\.(ts|mts|cts|tsx)$/;
/** The `code` of the hooks' error for a TypeScript file Node would load as CommonJS (read by load-pipeline.ts). */
export const COMMONJS_TYPESCRIPT = 'ERR_STACKLINE_COMMONJS_TYPESCRIPT';
/** The compiler options that change what esbuild emits for a file (`target` only through `useDefineForClassFields`). */
const EMIT_OPTIONS = [
  'experimentalDecorators',
  'jsx',
  'jsxFactory',
  'jsxFragmentFactory',
  'jsxImportSource',
  'target',
  'useDefineForClassFields',
  'verbatimModuleSyntax',
] as const;

/**
 * The file's JavaScript, from the transpile cache (next to the code-hash analysis cache) or, on a
 * miss, from esbuild, written to the cache atomically so a concurrent run never reads half a file.
 * `define` replaces expressions (the compiled copies of precompile.ts keep their source's
 * `import.meta.url`).
 */
export async function transpile(
  path: string,
  source: string,
  extension: string,
  define?: Record<string, string>,
): Promise<string> {
  const tsconfig = await emitSettings(path);
  const options = {
    loader: extension === 'tsx' ? 'tsx' : 'ts',
    format: 'esm',
    target: 'node20',
    // Inline, for Node's source-mapped stack traces (`process.setSourceMapsEnabled`), which need
    // the mappings only, not the sources' text.
    sourcemap: 'inline',
    sourcesContent: false,
    sourcefile: path,
    ...(define ? { define } : {}),
  } as const;
  const key = createHash('sha256')
    .update(JSON.stringify([TRANSPILE_CACHE_VERSION, esbuildVersion(), options, tsconfig.key, source]))
    .digest('hex');
  const cached = join(projectCacheDir(projectRoot(path)), 'typescript', `${key}.js`);
  try {
    return readFileSync(cached, 'utf8');
  } catch {
    // a miss: transpile below
  }
  const { transform } = await import('esbuild');
  const { code } = await transform(source, {
    ...options,
    tsconfigRaw: { compilerOptions: await tsconfig.compilerOptions() },
  });
  try {
    mkdirSync(dirname(cached), { recursive: true });
    const temporary = `${cached}.${process.pid}-${threadId}.tmp`;
    writeFileSync(temporary, code);
    renameSync(temporary, cached);
    // Loaded on a miss only: a warm start sends no more modules through the hooks thread.
    (await import('./cache-prune.ts')).pruneCacheDir(dirname(cached));
  } catch {
    // A read-only project still runs; it transpiles again next time.
  }
  return code;
}

interface EmitSettings {
  /** What of the tsconfig goes into the cache key. */
  key: string;
  compilerOptions(): Promise<Record<string, unknown>>;
}

const settingsByConfig = new Map<string, Promise<EmitSettings>>();

/**
 * The nearest tsconfig.json's options that change emit. A warm run reads the file's text only (its
 * text is the key); a tsconfig that `extends` another is resolved with get-tsconfig every time, as
 * the text of the base it names is not in the key otherwise.
 */
function emitSettings(path: string): Promise<EmitSettings> {
  const config = nearestFile(dirname(path), 'tsconfig.json');
  if (!config) return Promise.resolve({ key: '', compilerOptions: async () => ({}) });
  let settings = settingsByConfig.get(config);
  if (!settings) {
    const text = readFileSync(config, 'utf8');
    settings = text.includes('"extends"')
      ? emitOptions(config).then((options) => ({ key: JSON.stringify(options), compilerOptions: async () => options }))
      : Promise.resolve({ key: `${config}\n${text}`, compilerOptions: () => emitOptions(config) });
    settingsByConfig.set(config, settings);
  }
  return settings;
}

async function emitOptions(config: string): Promise<Record<string, unknown>> {
  const { parseTsconfig } = await import('get-tsconfig');
  const all = (parseTsconfig(config).compilerOptions ?? {}) as Record<string, unknown>;
  return Object.fromEntries(EMIT_OPTIONS.filter((name) => all[name] !== undefined).map((name) => [name, all[name]]));
}

const nearestByName = new Map<string, Map<string, string | undefined>>();
const manifests = new Map<string, { name?: string; type?: string }>();

/** The `name` and `type` of a package.json, read once per process (`{}` when unreadable). */
export function packageManifest(path: string): { name?: string; type?: string } {
  let manifest = manifests.get(path);
  if (!manifest) {
    try {
      manifest = JSON.parse(readFileSync(path, 'utf8')) as { name?: string; type?: string };
    } catch {
      // unreadable: Node's default, CommonJS
      manifest = {};
    }
    manifests.set(path, manifest);
  }
  return manifest;
}

/** The package.json "type" that decides whether a `.ts` file is ESM, as Node decides for `.js`. */
export function packageType(directory: string): string | undefined {
  const manifest = nearestFile(directory, 'package.json');
  return manifest ? packageManifest(manifest).type : undefined;
}

/** The nearest file named `name` in `directory` or above, memoized per directory. */
export function nearestFile(directory: string, name: string): string | undefined {
  let memo = nearestByName.get(name);
  if (!memo) {
    memo = new Map();
    nearestByName.set(name, memo);
  }
  if (memo.has(directory)) return memo.get(directory);
  const candidate = join(directory, name);
  const parent = dirname(directory);
  const found = existsSync(candidate) ? candidate : parent === directory ? undefined : nearestFile(parent, name);
  memo.set(directory, found);
  return found;
}

let esbuild: string | undefined;

/** esbuild's version, read from its package.json so that a cache hit never loads esbuild itself. */
export function esbuildVersion(): string {
  esbuild ??= (
    JSON.parse(readFileSync(createRequire(import.meta.url).resolve('esbuild/package.json'), 'utf8')) as {
      version: string;
    }
  ).version;
  return esbuild;
}
