/**
 * Where Stackline keeps a project's on-disk caches (the code-hash analysis, transpiled pipeline
 * files). Kept apart from the code-hash module, and free of project imports, so the TypeScript
 * loader's hooks thread loads nothing more for it.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

const roots = new Map<string, string>();

/** The nearest directory above `file` holding a package.json (the file's own directory if none). */
export function projectRoot(file: string): string {
  const start = dirname(file);
  let root = roots.get(start);
  if (root === undefined) {
    root = start;
    for (let dir = start; ; dir = dirname(dir)) {
      if (existsSync(join(dir, 'package.json'))) {
        root = dir;
        break;
      }
      if (dirname(dir) === dir) break;
    }
    roots.set(start, root);
  }
  return root;
}

/**
 * The cache directory of a project: `node_modules/.cache/stackline/` as other tools keep theirs
 * (or one under the system's temporary directory when the project has no `node_modules`).
 */
export function projectCacheDir(root: string): string {
  return existsSync(join(root, 'node_modules'))
    ? join(root, 'node_modules', '.cache', 'stackline')
    : join(tmpdir(), 'stackline-code-hash', createHash('sha256').update(root).digest('hex').slice(0, 16));
}
