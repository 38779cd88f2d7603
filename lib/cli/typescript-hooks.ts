/**
 * Node module hooks that let the CLI import TypeScript pipeline files (registered by
 * `loadTypeScript` in `load-pipeline.ts`; on Node 20 they run on a thread of their own).
 *
 * `resolve` maps TypeScript's import conventions onto files that exist (`./x.js` → `./x.ts`,
 * extensionless `./x` → `./x.ts` or `./x/index.ts`, tsconfig `paths` aliases) only after Node's
 * own resolution failed, so a package import costs nothing extra. `load` transpiles `.ts`, `.mts`
 * and `.tsx` files with esbuild into a cache on disk, keyed by the source, the esbuild version and
 * every option that changes the output: a run whose files are unchanged reads the cache and never
 * loads esbuild (or get-tsconfig).
 *
 * Kept small on purpose: every CLI start that runs a TypeScript pipeline loads this module and its
 * imports on the hooks thread, and the main thread waits for it; so it imports Node's built-ins and
 * one small module of Stackline's, nothing else.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire, type LoadHook, type ResolveHook } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { threadId } from 'node:worker_threads';
import { projectCacheDir, projectRoot } from '../code-hash/project-cache.ts';

/** The `code` of the error thrown for a TypeScript file Node would load as CommonJS (see `importFailure`). */
export const COMMONJS_TYPESCRIPT = 'ERR_STACKLINE_COMMONJS_TYPESCRIPT';

/** Bumped when the way files are transpiled changes in a way the key does not show. */
const TRANSPILE_CACHE_VERSION = 1;
const TYPESCRIPT_FILE = /\.(ts|mts|cts|tsx)$/;
const PATH_SPECIFIER = /^(?:\.{1,2}(?:\/|$)|\/|file:)/;
const KNOWN_EXTENSION = /\.(?:[cm]?[jt]sx?|json|node|wasm)$/;
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

export const resolve: ResolveHook = async (specifier, context, nextResolve) => {
  try {
    return await nextResolve(specifier, context);
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code !== 'ERR_MODULE_NOT_FOUND' && code !== 'ERR_UNSUPPORTED_DIR_IMPORT') throw error;
    const candidates = PATH_SPECIFIER.test(specifier)
      ? typescriptCandidates(specifier)
      : await aliasCandidates(specifier, context.parentURL);
    for (const candidate of candidates) {
      try {
        return await nextResolve(candidate, context);
      } catch {
        // not this one either
      }
    }
    throw error;
  }
};

/**
 * Where a bare specifier Node could not find points through the `paths` (or `baseUrl`) of the
 * importing file's tsconfig.json, as TypeScript resolves it; tried only after Node failed, so
 * get-tsconfig loads only for projects that use such aliases.
 */
async function aliasCandidates(specifier: string, parentURL: string | undefined): Promise<string[]> {
  if (!parentURL?.startsWith('file:') || parentURL.includes('/node_modules/')) return [];
  const config = nearest(dirname(fileURLToPath(parentURL)), 'tsconfig.json', tsconfigs);
  if (!config) return [];
  let matcher = pathsMatchers.get(config);
  if (!matcher) {
    matcher = import('get-tsconfig').then(({ createPathsMatcher, parseTsconfig }) =>
      createPathsMatcher({ path: config, config: parseTsconfig(config) }),
    );
    pathsMatchers.set(config, matcher);
  }
  return ((await matcher)?.(specifier) ?? []).flatMap((path) => {
    const url = pathToFileURL(path).href;
    return [url, ...typescriptCandidates(url)];
  });
}

const pathsMatchers = new Map<string, Promise<((specifier: string) => string[]) | null>>();

/** What a relative or absolute specifier Node could not find may mean in TypeScript, in tsx's order. */
export function typescriptCandidates(specifier: string): string[] {
  const at = specifier.search(/[?#]/);
  const path = at === -1 ? specifier : specifier.slice(0, at);
  const suffix = at === -1 ? '' : specifier.slice(at);
  const swapped = /\.([cm]?)js(x?)$/.exec(path);
  if (swapped) {
    const stem = path.slice(0, -swapped[0].length);
    const [, module, jsx] = swapped;
    const candidates = module ? [`.${module}ts`] : jsx ? ['.tsx'] : ['.ts', '.tsx'];
    return candidates.map((extension) => `${stem}${extension}${suffix}`);
  }
  if (KNOWN_EXTENSION.test(path)) return [];
  const directory = path.endsWith('/') ? path : `${path}/`;
  return [
    ...(path.endsWith('/') ? [] : ['.ts', '.tsx', '.js'].map((extension) => `${path}${extension}`)),
    ...['index.ts', 'index.tsx', 'index.js'].map((index) => `${directory}${index}`),
  ].map((candidate) => `${candidate}${suffix}`);
}

export const load: LoadHook = async (url, context, nextLoad) => {
  if (!url.startsWith('file:')) return nextLoad(url, context);
  const path = fileURLToPath(url);
  const extension = TYPESCRIPT_FILE.exec(path)?.[1];
  if (!extension) return nextLoad(url, context);
  if (extension === 'cts' || (extension !== 'mts' && packageType(dirname(path)) !== 'module'))
    throw commonJsTypeScript(path, extension);
  // Read through the rest of the chain (as `--import` hooks registered earlier expect), as ESM.
  const { source } = await nextLoad(url, { ...context, format: 'module' });
  const text = typeof source === 'string' ? source : new TextDecoder().decode(source);
  return { format: 'module', source: await transpile(path, text, extension), shortCircuit: true };
};

/**
 * The file's JavaScript, from the transpile cache (next to the code-hash analysis cache) or, on a
 * miss, from esbuild, written to the cache atomically so a concurrent run never reads half a file.
 */
async function transpile(path: string, source: string, extension: string): Promise<string> {
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
  const config = nearest(dirname(path), 'tsconfig.json', tsconfigs);
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

const tsconfigs = new Map<string, string | undefined>();
const packageJsons = new Map<string, string | undefined>();
const packageTypes = new Map<string, string | undefined>();

/** The package.json "type" that decides whether a `.ts` file is ESM, as Node decides for `.js`. */
function packageType(directory: string): string | undefined {
  const manifest = nearest(directory, 'package.json', packageJsons);
  if (!manifest) return undefined;
  if (!packageTypes.has(manifest)) {
    let type: string | undefined;
    try {
      type = (JSON.parse(readFileSync(manifest, 'utf8')) as { type?: string }).type;
    } catch {
      // unreadable: Node's default, CommonJS
    }
    packageTypes.set(manifest, type);
  }
  return packageTypes.get(manifest);
}

/** The nearest file named `name` in `directory` or above, memoized per directory. */
function nearest(directory: string, name: string, memo: Map<string, string | undefined>): string | undefined {
  if (memo.has(directory)) return memo.get(directory);
  const candidate = join(directory, name);
  const parent = dirname(directory);
  const found = existsSync(candidate) ? candidate : parent === directory ? undefined : nearest(parent, name, memo);
  memo.set(directory, found);
  return found;
}

let esbuild: string | undefined;

/** esbuild's version, read from its package.json so that a cache hit never loads esbuild itself. */
function esbuildVersion(): string {
  esbuild ??= (
    JSON.parse(readFileSync(createRequire(import.meta.url).resolve('esbuild/package.json'), 'utf8')) as {
      version: string;
    }
  ).version;
  return esbuild;
}

function commonJsTypeScript(path: string, extension: string): Error {
  const manifest = nearest(dirname(path), 'package.json', packageJsons);
  const message =
    extension === 'cts'
      ? `${path} is CommonJS TypeScript (.cts), which Stackline does not load: rename it to .mts (or .ts in a package with "type": "module").`
      : manifest
        ? `${path} is loaded as CommonJS because ${manifest} has no "type": "module": add "type": "module" to ${manifest}, or rename the file to .mts.`
        : `${path} is loaded as CommonJS because no package.json above it has "type": "module": add a package.json with "type": "module" to the project, or rename the file to .mts.`;
  return Object.assign(new Error(message), { code: COMMONJS_TYPESCRIPT });
}
