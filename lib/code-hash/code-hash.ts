/**
 * The code hash of a step: its function's source plus everything local it depends on — the
 * module-level declarations of its file it uses (transitively), the project modules those
 * bindings import (transitively, whole files), and the versions of the packages imported along
 * the way. Editing a helper re-runs the steps that use it and no others.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { canonicalJson, sha256Hex } from '../util/canonical-json.ts';
import { sourceFileOf } from './compiled-sources.ts';
import { projectCacheDir, projectRoot } from './project-cache.ts';
import type { FileAnalysis } from './source-analysis.ts';
import * as sourceAnalysis from './source-analysis.ts';

/** Where a step was defined: the file calling `step(...)` and the step's name. */
export interface CallSite {
  file: string;
  stepName: string;
}

/**
 * A step's code hash and what went into it, part name → digest. Part names: `function`,
 * `codeVersion`, `declaration:<name>` (in the step's file), `module:<path from the project root>`,
 * `package:<name>` (its version), and `scope` when the function could not be told apart from the
 * rest of its file (then every module-level binding of the file counts).
 */
export interface CodeFingerprint {
  hash: string;
  parts: Record<string, string>;
}

/** Hashes a step function and what it depends on. Never throws: what cannot be read is named in `parts`. */
export function stepCodeFingerprint(
  fn: (...args: never[]) => unknown,
  codeVersion: string | undefined,
  site: CallSite | undefined,
): CodeFingerprint {
  let parts: Record<string, string> = {};
  if (site && existsSync(site.file)) {
    try {
      addDependencies(site, parts);
    } catch (error) {
      // A file the parser cannot read (or `typescript` missing) must not stop a run; the hash then
      // says so, and differs from one that covers the dependencies.
      parts = { analysis: `unavailable: ${(error as Error).message.split('\n')[0]}` };
    }
  } else {
    parts.analysis = 'unavailable: the step was not defined in a source file';
  }
  // The printed function when its source text could not be found (it depends on the loader).
  parts.function ??= sha256Hex(fn.toString());
  if (codeVersion !== undefined) parts.codeVersion = codeVersion;
  return { hash: sha256Hex(canonicalJson({ v: 2, parts })), parts };
}

function addDependencies(site: CallSite, parts: Record<string, string>): void {
  const root = projectRoot(site.file);
  const cache = analysisCache(root);
  const file = fileState(site.file, cache);
  const at = site.stepName;
  if (!(at in file.analysis.calls)) {
    file.analysis.calls[at] = analysis().analyzeCall(site.file, file.text, site.stepName);
    cache.dirty = true;
  }
  const call = file.analysis.calls[at] ?? null;
  let refs: string[];
  if (call === null) {
    parts.scope = 'file';
    refs = Object.keys(file.analysis.bindings);
  } else {
    parts.function = call.source;
    refs = call.refs;
  }
  const seen = new Set<string>();
  const modules = new Set<string>();
  const queue = [...refs];
  while (queue.length > 0) {
    const name = queue.shift()!;
    if (seen.has(name)) continue;
    seen.add(name);
    const binding = file.analysis.bindings[name];
    if (!binding) continue;
    if (binding.kind === 'declaration') {
      parts[`declaration:${name}`] = binding.hash;
      queue.push(...binding.refs);
    } else {
      addImport(site.file, binding.specifier, file, cache, root, parts, modules);
    }
  }
  saveCache(cache);
}

function addImport(
  from: string,
  specifier: string,
  file: FileState,
  cache: AnalysisCache,
  root: string,
  parts: Record<string, string>,
  modules: Set<string>,
): void {
  if (isBuiltin(specifier)) return;
  const target = resolveImport(from, specifier, file, cache);
  if (target.kind === 'package') {
    parts[`package:${target.name}`] = packageVersion(from, target.name, root);
    return;
  }
  if (modules.has(target.path)) return;
  modules.add(target.path);
  const imported = fileState(target.path, cache);
  const label = relative(root, target.path).split(sep).join('/');
  parts[`module:${label}`] = imported.hash;
  for (const next of imported.analysis.imports) addImport(target.path, next, imported, cache, root, parts, modules);
}

type Target = { kind: 'package'; name: string } | { kind: 'file'; path: string };

function resolveImport(from: string, specifier: string, file: FileState, cache: AnalysisCache): Target {
  // Bare specifiers are packages, the project's own name included (its version stands for it).
  if (!specifier.startsWith('.') && !isAbsolute(specifier) && !specifier.startsWith('file:')) {
    const segments = specifier.split('/');
    return { kind: 'package', name: specifier.startsWith('@') ? segments.slice(0, 2).join('/') : segments[0]! };
  }
  const direct = specifier.startsWith('file:') ? fileURLToPath(specifier) : resolve(dirname(from), specifier);
  if (isFile(direct)) return { kind: 'file', path: direct };
  const known = file.resolved[specifier];
  if (known && isFile(known)) return { kind: 'file', path: known };
  // Extensionless or `.js`-for-`.ts` specifiers: TypeScript's own resolution, as tsx and bundlers do.
  const resolved = analysis().resolveModule(specifier, from);
  if (!resolved) throw new Error(`cannot resolve "${specifier}" from ${from}`);
  file.resolved[specifier] = resolved;
  cache.dirty = true;
  return { kind: 'file', path: resolved };
}

function isFile(path: string): boolean {
  return statSync(path, { throwIfNoEntry: false })?.isFile() ?? false;
}

const versions = new Map<string, string>();

/** The version in the package.json Node would find for `name` from `from`'s directory. */
function packageVersion(from: string, name: string, root: string): string {
  for (let dir = dirname(from); ; dir = dirname(dir)) {
    const manifest = join(dir, 'node_modules', name, 'package.json');
    const version = readVersion(manifest);
    if (version !== undefined) return version;
    if (dirname(dir) === dir) break;
  }
  // The project importing itself by name (package.json `exports`).
  const own = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { name?: string; version?: string };
  if (own.name === name) return own.version ?? 'unversioned';
  return 'not installed';
}

function readVersion(manifest: string): string | undefined {
  let version = versions.get(manifest);
  if (version === undefined) {
    const stat = statSync(manifest, { throwIfNoEntry: false });
    if (!stat) return undefined;
    version = String((JSON.parse(readFileSync(manifest, 'utf8')) as { version?: string }).version ?? 'unversioned');
    versions.set(manifest, version);
  }
  return version;
}

// --- File contents and their analyses, memoized in the process and cached on disk ---------------

interface CachedFile {
  hash: string;
  analysis: FileAnalysis;
  /** Specifiers TypeScript had to resolve → the file they resolved to. */
  resolved: Record<string, string>;
}

interface AnalysisCache {
  path: string;
  files: Record<string, CachedFile>;
  dirty: boolean;
}

interface FileState extends CachedFile {
  text: string;
}

const CACHE_VERSION = 3;
const caches = new Map<string, AnalysisCache>();
const states = new Map<string, { size: number; mtimeMs: number; state: FileState }>();

/**
 * The analysis cache of a project, in its cache directory ({@link projectCacheDir}). Entries are keyed
 * by path and checked against the file's content hash, so a stale entry is never used.
 */
function analysisCache(root: string): AnalysisCache {
  let cache = caches.get(root);
  if (!cache) {
    const path = join(projectCacheDir(root), `code-analysis-v${CACHE_VERSION}.json`);
    let files: Record<string, CachedFile> = {};
    try {
      files = (JSON.parse(readFileSync(path, 'utf8')) as { files: Record<string, CachedFile> }).files ?? {};
    } catch {
      // Missing or unreadable: start empty.
    }
    cache = { path, files, dirty: false };
    caches.set(root, cache);
  }
  return cache;
}

function saveCache(cache: AnalysisCache): void {
  if (!cache.dirty) return;
  cache.dirty = false;
  try {
    mkdirSync(dirname(cache.path), { recursive: true });
    const temporary = `${cache.path}.${process.pid}.tmp`;
    writeFileSync(temporary, JSON.stringify({ files: cache.files }));
    renameSync(temporary, cache.path);
  } catch {
    // A read-only project still runs; it analyses again next time.
  }
}

function fileState(path: string, cache: AnalysisCache): FileState {
  const stat = statSync(path);
  const memo = states.get(path);
  if (memo && memo.size === stat.size && memo.mtimeMs === stat.mtimeMs) return memo.state;
  const text = readFileSync(path, 'utf8');
  const hash = sha256Hex(text);
  let cached = cache.files[path];
  if (cached?.hash !== hash) {
    cached = { hash, analysis: analysis().analyzeFile(path, text), resolved: {} };
    cache.files[path] = cached;
    cache.dirty = true;
  }
  const state: FileState = { ...cached, text };
  // Share the analysis and resolution objects with the cache entry, so additions are saved.
  states.set(path, { size: stat.size, mtimeMs: stat.mtimeMs, state });
  return state;
}

// The parser itself (`typescript`) is loaded only when the cache misses (see source-analysis.ts).
const analysis = () => sourceAnalysis;

/**
 * The file of the first caller outside `skipFile` (the DSL), read from V8's structured call sites:
 * no source map is consulted (that costs ~10 ms per file under tsx), and the file name is the same
 * with or without one. A module the CLI compiled ahead (lib/cli/precompile.ts) counts as its source.
 */
export function callerFile(skipFile: string): string | undefined {
  const original = Error.prepareStackTrace;
  const holder: { stack?: unknown } = {};
  try {
    Error.prepareStackTrace = (_error, callSites) => callSites;
    Error.captureStackTrace(holder);
    for (const callSite of holder.stack as NodeJS.CallSite[]) {
      const name = callSite.getFileName();
      if (!name || name.startsWith('node:')) continue;
      const file = sourceFileOf(name.startsWith('file:') ? fileURLToPath(name.split('?')[0]!) : name);
      if (file !== skipFile && file !== THIS_FILE) return file;
    }
    return undefined;
  } finally {
    Error.prepareStackTrace = original;
  }
}

const THIS_FILE = fileURLToPath(import.meta.url);
