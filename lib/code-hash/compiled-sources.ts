/**
 * Which source file a compiled module stands for. The CLI may run a TypeScript pipeline from a
 * compiled copy (lib/cli/precompile.ts); code hashing, which finds a step's file from the call
 * stack, must still read and hash the file the user wrote. Kept on `globalThis`, as the step
 * registry is (lib/dsl/step.ts), so that every copy of this module in a thread shares it: a
 * pipeline importing Stackline's sources gets copies of its own.
 */
const globals = globalThis as Record<symbol, unknown>;
const COMPILED_SOURCES = Symbol.for('stackline.compiledSources');
globals[COMPILED_SOURCES] ??= new Map<string, string>();
const sources = globals[COMPILED_SOURCES] as Map<string, string>;

/** Records that `compiled` (a path) was compiled from `source` (a path). */
export function registerCompiledSource(compiled: string, source: string): void {
  sources.set(compiled, source);
}

/** The source file `file` was compiled from, or `file` itself. */
export function sourceFileOf(file: string): string {
  return sources.get(file) ?? file;
}

/** The compiled copy of `source` this thread runs, if any. */
export function compiledFileOf(source: string): string | undefined {
  for (const [compiled, from] of sources) if (from === source) return compiled;
  return undefined;
}

/** Every compiled copy → source pair of this thread (for a worker thread to register). */
export function compiledSources(): Array<[string, string]> {
  return [...sources];
}
