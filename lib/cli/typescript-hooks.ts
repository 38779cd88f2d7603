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
 * Kept small on purpose: every start that loads a TypeScript file through the hooks loads this
 * module and its imports on the hooks thread, and the main thread waits for it; so it imports Node's
 * built-ins and two small modules of Stackline's (transpile.ts, project-cache.ts), nothing else.
 */
import type { LoadHook, ResolveHook } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { COMMONJS_TYPESCRIPT, nearestFile, packageType, TYPESCRIPT_FILE, transpile } from './transpile.ts';

const PATH_SPECIFIER = /^(?:\.{1,2}(?:\/|$)|\/|file:)/;
const KNOWN_EXTENSION = /\.(?:[cm]?[jt]sx?|json|node|wasm)$/;

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
  const config = nearestFile(dirname(fileURLToPath(parentURL)), 'tsconfig.json');
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

function commonJsTypeScript(path: string, extension: string): Error {
  const manifest = nearestFile(dirname(path), 'package.json');
  const message =
    extension === 'cts'
      ? `${path} is CommonJS TypeScript (.cts), which Stackline does not load: rename it to .mts (or .ts in a package with "type": "module").`
      : manifest
        ? `${path} is loaded as CommonJS because ${manifest} has no "type": "module": add "type": "module" to ${manifest}, or rename the file to .mts.`
        : `${path} is loaded as CommonJS because no package.json above it has "type": "module": add a package.json with "type": "module" to the project, or rename the file to .mts.`;
  return Object.assign(new Error(message), { code: COMMONJS_TYPESCRIPT });
}
