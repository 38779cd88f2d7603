/**
 * Runs a TypeScript pipeline without a module loader. On Node 20 a loader (module hooks) runs on a
 * thread of its own that takes ~75 ms to start, before the loader itself loads; that is most of a
 * small run's start-up. Instead the pipeline file and the project's TypeScript modules it imports
 * are compiled ahead, with esbuild, into plain ES modules under the project's
 * `node_modules/.cache/stackline/esm/`, and Node imports those natively.
 *
 * What a module sees does not change: `import.meta.url` (and `filename`, `dirname`) are the source
 * file's; relative imports point at the other compiled modules or at the original files; package
 * imports resolve from the same `node_modules` (the compiled copies sit inside the nearest one, and a
 * module is only compiled when no `node_modules` lies between it and that one); stack traces are
 * mapped back to the `.ts` lines (inline source maps); code hashing reads the source file
 * (compiled-sources.ts). Anything this cannot promise (a `.ts` file Node would treat as CommonJS,
 * `import.meta.resolve`, computed dynamic imports, `#imports`, tsconfig `paths`, a package that is
 * not installed, a syntax error) is left to the loader, which reports it as before.
 *
 * A warm start reads each source file and its cached translation; esbuild loads only when a file
 * changed.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { registerCompiledSource } from '../code-hash/compiled-sources.ts';
import { projectCacheDir } from '../code-hash/project-cache.ts';
import { sha256Hex } from '../util/canonical-json.ts';
import { pruneCacheDir } from './cache-prune.ts';
import { nearestFile, packageManifest, packageType, transpile } from './transpile.ts';

export interface PrecompileOptions {
  /** This package's root and the URL its own name (`stackline`) resolves to in this process. */
  ownPackageRoot: string;
  ownIndexUrl: string;
  /** TypeScript → JavaScript for one file; transpile.ts's esbuild by default (tests replace it). */
  transpile?: (path: string, source: string) => Promise<string>;
}

/** Why a file is left to the loader (internal; never reaches the user). */
class NeedsLoader extends Error {}

interface Context extends PrecompileOptions {
  root: string;
  cacheDir: string;
  compiled: Map<string, string>;
  pending: Promise<void>[];
}

/**
 * Compiles `entry` (an absolute path to a `.ts`/`.mts` file) and the TypeScript modules it imports,
 * and returns the file URL to import instead; `undefined` when the file needs a loader.
 */
export async function precompilePipeline(entry: string, options: PrecompileOptions): Promise<string | undefined> {
  const root = nodeModulesRoot(dirname(entry));
  if (!root) return undefined;
  const tsconfig = nearestFile(dirname(entry), 'tsconfig.json');
  // Path aliases need the loader's resolver.
  if (tsconfig && /"paths"\s*:/.test(readFileSync(tsconfig, 'utf8'))) return undefined;
  const context: Context = {
    ...options,
    root,
    cacheDir: join(projectCacheDir(root), 'esm'),
    compiled: new Map(),
    pending: [],
  };
  let failure: unknown;
  let out: string | undefined;
  try {
    out = compileModule(entry, context);
  } catch (error) {
    failure = error;
  }
  // Modules compile concurrently, and each adds its imports' work before its own ends: wait for all
  // of it, failed or not, so nothing is left running (or rejecting) behind the loader's attempt.
  for (let settled = 0; settled < context.pending.length; ) {
    const batch = context.pending.slice(settled);
    settled = context.pending.length;
    for (const result of await Promise.allSettled(batch)) {
      if (result.status === 'rejected') failure ??= result.reason;
    }
  }
  if (failure instanceof NeedsLoader) return undefined;
  if (failure !== undefined) throw failure;
  for (const [source, compiled] of context.compiled) registerCompiledSource(compiled, source);
  return pathToFileURL(out!).href;
}

/** Starts compiling `path` (once) and returns the path its compiled copy will have. */
function compileModule(path: string, context: Context): string {
  const known = context.compiled.get(path);
  if (known) return known;
  if (nodeModulesRoot(dirname(path)) !== context.root) throw new NeedsLoader(`${path}: another node_modules`);
  if (path.endsWith('.ts') && packageType(dirname(path)) !== 'module') {
    throw new NeedsLoader(`${path}: CommonJS`);
  }
  const source = readFileSync(path, 'utf8');
  const sourceHash = sha256Hex(`${path}\0${source}`);
  const out = join(context.cacheDir, `${sourceHash.slice(0, 32)}.mjs`);
  context.compiled.set(path, out);
  context.pending.push(writeCompiled(path, source, out, context));
  return out;
}

async function writeCompiled(path: string, source: string, out: string, context: Context): Promise<void> {
  const javascript = await translated(path, source, context);
  const imports = await importsOf(javascript, context);
  let code = javascript;
  // From the end, so earlier offsets stay valid.
  for (const entry of [...imports].reverse()) {
    if (entry.t === 3) throw new NeedsLoader(`${path}: import.meta beyond url/filename/dirname`);
    if (entry.n === undefined) throw new NeedsLoader(`${path}: computed import()`);
    const target = rewriteSpecifier(entry.n, path, context);
    if (target === entry.n) continue;
    // Static imports span the specifier; import() spans the string literal with its quotes.
    const replacement = entry.d > -1 ? JSON.stringify(target) : target;
    code = code.slice(0, entry.s) + replacement + code.slice(entry.e);
  }
  writeIfChanged(out, code);
}

/** An import or `import.meta` of a module, as es-module-lexer reports it (only the fields used here). */
interface LexedImport {
  /** The specifier; absent for a computed `import()` and for `import.meta`. */
  n?: string;
  s: number;
  e: number;
  /** > -1 for a dynamic `import()`. */
  d: number;
  /** 3 for `import.meta`. */
  t: number;
}

/**
 * Where `javascript` imports what: es-module-lexer's answer, kept on disk by the code's hash, since
 * loading the lexer (a WebAssembly module) costs a warm start about 9 ms.
 */
async function importsOf(javascript: string, context: Context): Promise<LexedImport[]> {
  const cached = join(context.cacheDir, 'imports', `${sha256Hex(javascript).slice(0, 32)}.json`);
  try {
    return JSON.parse(readFileSync(cached, 'utf8')) as LexedImport[];
  } catch {
    // Not lexed yet.
  }
  const { init, parse } = await import('es-module-lexer');
  await init;
  const imports = parse(javascript)[0].map(({ n, s, e, d, t }) => ({ n, s, e, d, t }));
  try {
    writeIfChanged(cached, JSON.stringify(imports));
  } catch {
    // Lexed again next time.
  }
  return imports;
}

/** What `specifier`, imported by `from`, becomes in the compiled copy of `from`. */
function rewriteSpecifier(specifier: string, from: string, context: Context): string {
  if (isBuiltin(specifier)) return specifier;
  if (specifier.startsWith('#') || /^[a-z][a-z0-9+.-]*:/i.test(specifier)) {
    if (!specifier.startsWith('file:')) throw new NeedsLoader(`${from}: ${specifier}`);
  }
  if (/^(?:\.{1,2}\/|\/|file:)/.test(specifier)) {
    const target = localTarget(specifier, from);
    return /\.m?ts$/.test(target) ? pathToFileURL(compileModule(target, context)).href : pathToFileURL(target).href;
  }
  const name = specifier.startsWith('@') ? specifier.split('/', 2).join('/') : specifier.split('/', 1)[0]!;
  const owner = nearestFile(dirname(from), 'package.json');
  if (owner && packageManifest(owner).name === name) {
    // A package importing itself by name: only this package's own entry point is known here.
    if (dirname(owner) === context.ownPackageRoot && specifier === name) return context.ownIndexUrl;
    throw new NeedsLoader(`${from}: self-reference ${specifier}`);
  }
  if (!installed(name, context.root)) throw new NeedsLoader(`${from}: ${name} is not installed`);
  return specifier;
}

/** The file a relative import names, with TypeScript's conventions (`./x.js` for `./x.ts`, no extension). */
function localTarget(specifier: string, from: string): string {
  if (/[?#]/.test(specifier.replace(/^file:\/\//, ''))) throw new NeedsLoader(`${from}: ${specifier}`);
  const base = specifier.startsWith('file:') ? fileURLToPath(specifier) : resolve(dirname(from), specifier);
  const candidates = [base];
  if (/\.js$/.test(base)) candidates.push(base.replace(/\.js$/, '.ts'));
  else if (/\.mjs$/.test(base)) candidates.push(base.replace(/\.mjs$/, '.mts'));
  else if (!/\.[a-z]+$/i.test(base)) candidates.push(`${base}.ts`, `${base}.mts`, join(base, 'index.ts'));
  for (const candidate of candidates) {
    if (!isFile(candidate)) continue;
    if (/\.(?:tsx|cts|jsx)$/.test(candidate)) break;
    return candidate;
  }
  throw new NeedsLoader(`${from}: cannot resolve ${specifier}`);
}

/** The file's JavaScript (transpile.ts: cached on disk), its `import.meta` fixed to the source's. */
async function translated(path: string, source: string, context: Context): Promise<string> {
  const url = pathToFileURL(path).href;
  try {
    if (context.transpile) return await context.transpile(path, source);
    return await transpile(path, source, path.endsWith('.mts') ? 'mts' : 'ts', {
      'import.meta.url': JSON.stringify(url),
      'import.meta.filename': JSON.stringify(path),
      'import.meta.dirname': JSON.stringify(dirname(path)),
    });
  } catch (error) {
    // The loader reports syntax errors with their location, as it always has.
    throw new NeedsLoader(`${path}: ${(error as Error).message}`);
  }
}

function touch(path: string): void {
  try {
    const now = new Date();
    utimesSync(path, now, now);
  } catch {
    // A read-only cache: it is not pruned either.
  }
}

/** Writes `content` whole (or not at all); a cache that cannot be written leaves the file to the loader. */
function writeIfChanged(path: string, content: string): void {
  try {
    if (readFileSync(path, 'utf8') === content) {
      // Marked as used: pruning the cache (cache-prune.ts) spares what was used within a day.
      touch(path);
      return;
    }
  } catch {
    // Not written yet.
  }
  try {
    mkdirSync(dirname(path), { recursive: true });
    const temporary = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    writeFileSync(temporary, content);
    renameSync(temporary, path);
  } catch (error) {
    throw new NeedsLoader(`cannot write ${path}: ${(error as Error).message}`);
  }
  pruneCacheDir(dirname(path));
}

/** The nearest directory at or above `dir` holding a `node_modules` directory. */
function nodeModulesRoot(dir: string): string | undefined {
  for (let at = dir; ; at = dirname(at)) {
    if (isDirectory(join(at, 'node_modules'))) return at;
    if (dirname(at) === at) return undefined;
  }
}

const installedPackages = new Map<string, boolean>();

/** Whether package `name` is in a `node_modules` at or above `root` (asked once per package). */
function installed(name: string, root: string): boolean {
  const key = `${root}\0${name}`;
  let found = installedPackages.get(key);
  if (found === undefined) {
    found = false;
    for (let at = root; !found; at = dirname(at)) {
      found = existsSync(join(at, 'node_modules', name, 'package.json'));
      if (dirname(at) === at) break;
    }
    installedPackages.set(key, found);
  }
  return found;
}

function isFile(path: string): boolean {
  return statSync(path, { throwIfNoEntry: false })?.isFile() ?? false;
}

function isDirectory(path: string): boolean {
  return statSync(path, { throwIfNoEntry: false })?.isDirectory() ?? false;
}
