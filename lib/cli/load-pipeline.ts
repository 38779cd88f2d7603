import { readFileSync, statSync } from 'node:fs';
import nodeModule from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { isPipelineDefinition, type PipelineDefinition } from '../dsl/pipeline.ts';
import { StacklineError, ValidationError } from '../errors.ts';
import { COMMONJS_TYPESCRIPT, TYPESCRIPT_FILE } from './transpile.ts';

let typescriptLoader: Promise<void> | undefined;

/**
 * Lets Node import TypeScript files: registers Stackline's TypeScript hooks (`typescript-hooks.ts`:
 * esbuild, with a transpile cache on disk), once, the first time a `.ts` pipeline is loaded
 * (commands that load none start without them). Not needed when this module is itself running as
 * TypeScript source: a loader that can (tsx, vitest) is then already in place.
 *
 * Node 20 runs module hooks on a separate thread, and once any are registered it sends every later
 * import there and back, so Stackline's public API (what a pipeline file imports as 'stackline') is
 * loaded first: the pipeline file then reuses these very modules (one materializer registry, one
 * zod). Starting that thread is the one cost a cached run pays: the hooks module loads only Node's
 * built-ins and two small modules, and esbuild only for a file it has not transpiled before. Where
 * Node runs hooks in-thread (`module.registerHooks`, Node 22.15+), tsx's own `register()` is used,
 * as before (not tested here: only Node 20 is available).
 */
export function loadTypeScript(): Promise<void> {
  if (import.meta.url.endsWith('.ts')) return Promise.resolve();
  typescriptLoader ??= import('../index.ts').then(async () => {
    if ('registerHooks' in nodeModule) {
      (await import('tsx/esm/api')).register();
      return;
    }
    // Stack traces point into the .ts files (esbuild writes inline source maps).
    process.setSourceMapsEnabled(true);
    nodeModule.register('./typescript-hooks.js', import.meta.url);
  });
  return typescriptLoader;
}

/**
 * The pipeline file compiled ahead into a plain ES module (see precompile.ts), so that Node 20 needs
 * no loader thread; `undefined` when it needs the loader after all, one is already in place, or
 * STACKLINE_PRECOMPILE=0 asks for the loader.
 */
async function compiledAhead(path: string): Promise<string | undefined> {
  if (import.meta.url.endsWith('.ts') || !/\.m?ts$/.test(path)) return undefined;
  // The way back to the loader alone, should a compiled copy ever behave differently.
  if (process.env.STACKLINE_PRECOMPILE === '0') return undefined;
  // The package's entry first: the pipeline's `import … from 'stackline'` is this very module.
  const ownIndexUrl = new URL('../index.js', import.meta.url).href; // compiled: dist/lib/index.js
  await import(ownIndexUrl);
  const { precompilePipeline } = await import('./precompile.ts');
  const url = await precompilePipeline(path, {
    ownPackageRoot: resolve(dirname(fileURLToPath(import.meta.url)), '../../..'),
    ownIndexUrl,
  });
  // Stack traces of the compiled modules point at the .ts lines.
  if (url) process.setSourceMapsEnabled(true);
  return url;
}

/**
 * Imports a pipeline file (TypeScript runs directly: see {@link loadTypeScript}) and picks the pipeline
 * to run: the one named by `--pipeline`, or the only one the file exports.
 */
export async function loadPipeline(file: string, cwd: string, name?: string): Promise<PipelineDefinition> {
  const pipelines = await loadPipelineModule(file, cwd);
  if (name) {
    const found = pipelines.get(name);
    if (!found)
      throw new ValidationError(
        `${file} has no pipeline named "${name}" (it exports: ${[...pipelines.keys()].join(', ')}).`,
      );
    return found;
  }
  if (pipelines.size > 1) {
    throw new ValidationError(
      `${file} exports several pipelines (${[...pipelines.keys()].join(', ')}): choose one with --pipeline NAME.`,
    );
  }
  return [...pipelines.values()][0]!;
}

/** Imports a pipeline file and returns every pipeline it exports, by name (at least one). */
export async function loadPipelineModule(file: string, cwd: string): Promise<Map<string, PipelineDefinition>> {
  const path = resolve(cwd, file);
  const info = statSync(path, { throwIfNoEntry: false });
  if (!info) throw new ValidationError(`Pipeline file not found: ${path}`, { context: { file: path } });
  if (info.isDirectory()) {
    throw new ValidationError(
      `${path} is a directory: give the pipeline file itself (for example ${join(file, 'pipeline.ts')}).`,
      {
        context: { file: path },
      },
    );
  }
  let url = pathToFileURL(path).href;
  if (TYPESCRIPT_FILE.test(path)) {
    const compiled = await compiledAhead(path);
    if (compiled) url = compiled;
    else await loadTypeScript();
  }
  let module: Record<string, unknown>;
  try {
    module = (await import(url)) as Record<string, unknown>;
  } catch (error) {
    throw importFailure(error, path);
  }
  const pipelines = new Map<string, PipelineDefinition>();
  for (const value of Object.values(module)) if (isPipelineDefinition(value)) pipelines.set(value.name, value);
  if (pipelines.size === 0) {
    throw new ValidationError(
      `${file} exports no pipeline. Export one: \`export const training = pipeline({ name: 'training' }, () => { ... })\`.`,
    );
  }
  return pipelines;
}

/**
 * Why a pipeline file could not be imported, in one line naming the file: a syntax error (with
 * its line), a file loaded as CommonJS (with the package.json to change), or the error it threw.
 */
function importFailure(error: unknown, path: string): StacklineError {
  const e = error as {
    message?: string;
    code?: string;
    errors?: Array<{ text: string; location?: { file?: string; line: number; column: number } }>;
  };
  const message = String(e?.message ?? error);
  // esbuild reports syntax errors with their location.
  const first = e?.errors?.[0];
  if (first) {
    // The file esbuild was reading: the pipeline file or one of its local imports.
    const file = first.location?.file || path;
    const at = first.location ? `:${first.location.line}:${first.location.column + 1}` : '';
    return new ValidationError(`${file}${at}: syntax error: ${first.text}`, { cause: error, context: { file } });
  }
  const located = /^(?:.*?):(\d+):(\d+): ERROR: (.*)$/m.exec(message);
  if (located) {
    return new ValidationError(`${path}:${located[1]}:${located[2]}: syntax error: ${located[3]}`, {
      cause: error,
      context: { file: path },
    });
  }
  // Stackline's hooks name the file and the fix (on Node 22, tsx's errors are read below).
  if (e?.code === COMMONJS_TYPESCRIPT)
    return new ValidationError(message.split('\n')[0]!, { cause: error, context: { file: path } });
  const commonJs =
    ['ERR_REQUIRE_ESM', 'ERR_REQUIRE_ASYNC_MODULE'].includes(e?.code ?? '') ||
    /outside a module|require\(\) (?:of )?ES Module|Top-level await is currently not supported|exports is not defined/.test(
      message,
    );
  if (commonJs && path.endsWith('.ts')) {
    const pkg = nearestPackageJson(path);
    return new ValidationError(
      `${path} is loaded as CommonJS${pkg ? ` because ${pkg} has no "type": "module"` : ''}: add "type": "module" to ${pkg ?? 'package.json'}, or rename the file to .mts.`,
      { cause: error, context: { file: path } },
    );
  }
  if (error instanceof SyntaxError) {
    return new ValidationError(`${path}: syntax error: ${message.split('\n')[0]}`, {
      cause: error,
      context: { file: path },
    });
  }
  if (error instanceof StacklineError) return error;
  return new ValidationError(`Importing ${path} failed: ${message.split('\n')[0]}`, {
    cause: error,
    context: { file: path },
  });
}

function nearestPackageJson(path: string): string | undefined {
  for (let dir = dirname(path); ; dir = dirname(dir)) {
    const candidate = join(dir, 'package.json');
    try {
      JSON.parse(readFileSync(candidate, 'utf8'));
      return candidate;
    } catch {
      // none here, or unreadable: look further up
    }
    if (dirname(dir) === dir) return undefined;
  }
}
