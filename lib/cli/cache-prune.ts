/**
 * Keeps the CLI's content-addressed caches (compiled copies, transpiled files, import lists) from
 * growing with every edit of a project's files: each edit adds an entry and nothing else removes
 * one. Imports only Node's built-ins (transpile.ts runs on the TypeScript hooks' thread).
 */
import { readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';

export interface PruneOptions {
  /** Entries a directory may hold before it is pruned. */
  max?: number;
  /** Entries left after pruning (the most recently written). */
  keep?: number;
  /** An entry written more recently than this is never removed. */
  minAgeMs?: number;
}

/**
 * After a write to `dir`: when it holds more than `max` files, removes the oldest-written until
 * `keep` are left, but never one written within the last `minAgeMs` (a day), which a run still going
 * may yet import (an isolated attempt's worker loads the compiled copies when it starts). A removed
 * entry is made again when needed, at the cost of one compile. Never throws: a cache that cannot be
 * listed or pruned is left as it is.
 */
export function pruneCacheDir(dir: string, options: PruneOptions = {}, now = Date.now()): void {
  const { max = 500, keep = 400, minAgeMs = 24 * 60 * 60 * 1000 } = options;
  try {
    const names = readdirSync(dir);
    if (names.length <= max) return;
    const files = names.flatMap((name) => {
      try {
        const stat = statSync(join(dir, name));
        return stat.isFile() ? [{ name, writtenMs: stat.mtimeMs }] : [];
      } catch {
        return []; // removed meanwhile
      }
    });
    if (files.length <= max) return;
    files.sort((a, b) => a.writtenMs - b.writtenMs);
    for (const { name, writtenMs } of files.slice(0, files.length - keep)) {
      if (now - writtenMs < minAgeMs) break;
      rmSync(join(dir, name), { force: true });
    }
  } catch {
    // Left as it is.
  }
}
