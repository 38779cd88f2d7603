/**
 * esbuild plugins that let tree-shaking drop what a Lambda bundle never runs, without changing
 * what the code does: zod's namespace made shakable, and Stackline's own modules declared free of
 * import-time side effects.
 */
import { readFile } from 'node:fs/promises';
import { dirname, extname, join, sep } from 'node:path';
import type { Loader, Plugin } from 'esbuild';

type TS = typeof import('typescript');

const LOADERS: Record<string, Loader> = {
  '.ts': 'ts',
  '.mts': 'ts',
  '.cts': 'ts',
  '.tsx': 'tsx',
  '.js': 'js',
  '.mjs': 'js',
  '.cjs': 'js',
  '.jsx': 'jsx',
};

/** zod 4's `index.js`: `z` (and the default export) is the namespace of `v4/classic/external.js`. */
const ZOD_INDEX_NAMESPACE = 'import * as z from "./v4/classic/external.js";';
const ZOD_NAMESPACE_FILE = 'v4/classic/external.js';
const MAY_IMPORT_ZOD = /\bfrom\s*['"]zod['"]/;

function isInside(file: string, dir: string): boolean {
  return file.startsWith(dir.endsWith(sep) ? dir : dir + sep);
}

function inNodeModules(file: string): boolean {
  return file.split(/[\\/]/).includes('node_modules');
}

/** Whether `file` is a project file: outside `node_modules`, or a file of a package root itself (not of its dependencies). */
function isOwnFile(file: string, packageRoots: readonly string[]): boolean {
  if (!inNodeModules(file)) return true;
  return packageRoots.some((root) => isInside(file, root) && !inNodeModules(file.slice(root.length)));
}

/**
 * `import { z } from 'zod'` brings in all of zod (~210 KB minified): esbuild tree-shakes property
 * accesses on a namespace only when the importing file itself writes `import * as z`, and zod's
 * `z` is a namespace re-exported by `zod/index.js`. This plugin rewrites, in project files (not
 * `node_modules`), `import { z } from 'zod'` and `import z from 'zod'` into `import * as z from
 * '<zod>/v4/classic/external.js'` — the very module `z` is, so behaviour is unchanged — and leaves
 * every other name in the statement imported from `'zod'`. `z.object`, `z.number`, ... then keep
 * only what the code calls. Statements are found with the TypeScript parser; a zod whose
 * `index.js` is laid out differently (another major) is left as it is.
 */
export function withTreeShakableZod(
  options: {
    /** Folders whose files are rewritten even inside `node_modules`: Stackline's own, when installed. */
    packageRoots?: readonly string[];
  } = {},
): Plugin {
  const packageRoots = options.packageRoots ?? [];
  return {
    name: 'stackline-tree-shakable-zod',
    setup(build) {
      let ts: Promise<TS> | undefined;
      const namespaceFiles = new Map<string, Promise<string | undefined>>();
      /** The `external.js` of the zod `dir` resolves to, when that zod has the expected layout. */
      const zodNamespaceFile = (dir: string) => {
        let found = namespaceFiles.get(dir);
        if (!found) {
          found = (async () => {
            const index = await build.resolve('zod', { kind: 'import-statement', resolveDir: dir });
            if (index.errors.length > 0 || !index.path) return undefined;
            const source = await readFile(index.path, 'utf8').catch(() => '');
            return source.includes(ZOD_INDEX_NAMESPACE) ? join(dirname(index.path), ZOD_NAMESPACE_FILE) : undefined;
          })();
          namespaceFiles.set(dir, found);
        }
        return found;
      };
      build.onLoad({ filter: /\.[cm]?[jt]sx?$/ }, async (args) => {
        if (args.namespace !== 'file') return undefined;
        if (!isOwnFile(args.path, packageRoots)) return undefined;
        const source = await readFile(args.path, 'utf8');
        if (!MAY_IMPORT_ZOD.test(source)) return undefined;
        const namespaceFile = await zodNamespaceFile(dirname(args.path));
        if (!namespaceFile) return undefined;
        ts ??= import('typescript').then((m) => (m.default ?? m) as TS);
        const contents = rewriteZodImports(await ts, args.path, source, namespaceFile);
        const loader = LOADERS[extname(args.path)];
        return contents === undefined || !loader ? undefined : { contents, loader, resolveDir: dirname(args.path) };
      });
    },
  };
}

/** `source` with its `z` imports from 'zod' rewritten (see {@link withTreeShakableZod}); undefined if none. */
function rewriteZodImports(ts: TS, path: string, source: string, namespaceFile: string): string | undefined {
  const file = ts.createSourceFile(path, source, ts.ScriptTarget.Latest, false);
  const edits: Array<{ start: number; end: number; text: string }> = [];
  for (const statement of file.statements) {
    if (!ts.isImportDeclaration(statement) || !ts.isStringLiteral(statement.moduleSpecifier)) continue;
    const clause = statement.importClause;
    if (statement.moduleSpecifier.text !== 'zod' || !clause || clause.isTypeOnly) continue;
    const named = clause.namedBindings && ts.isNamedImports(clause.namedBindings) ? clause.namedBindings : undefined;
    const zElement = named?.elements.find((e) => !e.isTypeOnly && (e.propertyName ?? e.name).text === 'z');
    const locals = [clause.name?.text, zElement?.name.text].filter((name): name is string => name !== undefined);
    if (locals.length === 0) continue;
    const rest = (named?.elements ?? []).filter((e) => e !== zElement).map((e) => e.getText(file));
    const text = [
      ...locals.map((local) => `import * as ${local} from ${JSON.stringify(namespaceFile)};`),
      ...(rest.length > 0 ? [`import { ${rest.join(', ')} } from 'zod';`] : []),
    ].join(' ');
    edits.push({ start: statement.getStart(file), end: statement.getEnd(), text });
  }
  if (edits.length === 0) return undefined;
  let result = source;
  for (const { start, end, text } of edits.reverse()) result = result.slice(0, start) + text + result.slice(end);
  return result;
}

/**
 * Stackline's modules under `libDir` read configuration lazily and register nothing when
 * imported (STYLE.md, guideline 6), so a module none of whose exports the bundle uses can be
 * dropped whole: without this, esbuild keeps every module-level `z.object(...)` (a call it cannot
 * prove pure) of modules the runner never reaches, such as the SQLite store's migrations, pulled
 * in through `stackline`'s index by the `Stackline` client.
 */
export function withSideEffectFreeModules(libDir: string): Plugin {
  const packageRoot = dirname(libDir);
  const NESTED = Symbol('stackline-side-effect-free');
  return {
    name: 'stackline-side-effect-free-modules',
    setup(build) {
      build.onResolve({ filter: /.*/ }, async (args) => {
        if (args.pluginData === NESTED || args.kind === 'entry-point') return undefined;
        // Other packages never import Stackline's modules: leave their imports to esbuild alone.
        if (!isOwnFile(args.importer, [packageRoot])) return undefined;
        const resolved = await build.resolve(args.path, {
          kind: args.kind,
          importer: args.importer,
          resolveDir: args.resolveDir,
          namespace: args.namespace,
          pluginData: NESTED,
        });
        if (resolved.errors.length > 0 || resolved.external || !isInside(resolved.path, libDir)) return undefined;
        return { path: resolved.path, namespace: resolved.namespace, suffix: resolved.suffix, sideEffects: false };
      });
    },
  };
}
