/**
 * Which source file a compiled module stands for. The CLI may run a TypeScript pipeline from a
 * compiled copy (lib/cli/precompile.ts); code hashing, which finds a step's file from the call
 * stack, must still read and hash the file the user wrote.
 */
const sources = new Map<string, string>();

/** Records that `compiled` (a path) was compiled from `source` (a path). */
export function registerCompiledSource(compiled: string, source: string): void {
  sources.set(compiled, source);
}

/** The source file `file` was compiled from, or `file` itself. */
export function sourceFileOf(file: string): string {
  return sources.get(file) ?? file;
}
