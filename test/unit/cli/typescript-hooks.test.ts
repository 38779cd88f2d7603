import type { ResolveHookContext } from 'node:module';
import { describe, expect, it, vi } from 'vitest';
import { resolve, typescriptCandidates } from '../../../lib/cli/typescript-hooks.ts';

const notFound = (specifier: string) =>
  Object.assign(new Error(`Cannot find module '${specifier}'`), { code: 'ERR_MODULE_NOT_FOUND' });

/** A `nextResolve` that finds only `existing` (relative specifiers, as given). */
function nextResolveFinding(...existing: string[]) {
  return vi.fn(async (specifier: string) => {
    if (existing.includes(specifier)) return { url: `file:///project/${specifier.replace(/^\.\//, '')}` };
    throw notFound(specifier);
  });
}

const context: ResolveHookContext = {
  conditions: [],
  importAttributes: {},
  importAssertions: {},
  parentURL: 'file:///project/pipeline.ts',
};

describe('the TypeScript hooks resolve', () => {
  it('maps .js, .jsx, .mjs and .cjs specifiers to their TypeScript files', () => {
    expect(typescriptCandidates('./x.js')).toEqual(['./x.ts', './x.tsx']);
    expect(typescriptCandidates('./x.jsx')).toEqual(['./x.tsx']);
    expect(typescriptCandidates('../x.mjs')).toEqual(['../x.mts']);
    expect(typescriptCandidates('/abs/x.cjs?v=1')).toEqual(['/abs/x.cts?v=1']);
  });

  it('tries an extensionless specifier as a file, then as a directory with an index', () => {
    expect(typescriptCandidates('./lib/helper')).toEqual([
      './lib/helper.ts',
      './lib/helper.tsx',
      './lib/helper.js',
      './lib/helper/index.ts',
      './lib/helper/index.tsx',
      './lib/helper/index.js',
    ]);
    expect(typescriptCandidates('./lib/')).toEqual(['./lib/index.ts', './lib/index.tsx', './lib/index.js']);
    expect(typescriptCandidates('./data.json')).toEqual([]);
  });

  it('returns what Node found without trying anything else', async () => {
    const next = nextResolveFinding('./x.js');
    expect(await resolve('./x.js', context, next as never)).toEqual({ url: 'file:///project/x.js' });
    expect(next).toHaveBeenCalledTimes(1);
  });

  it("resolves `./x.js` to `./x.ts` after Node's own resolution fails", async () => {
    const next = nextResolveFinding('./x.ts');
    expect(await resolve('./x.js', context, next as never)).toEqual({ url: 'file:///project/x.ts' });
  });

  it('resolves a directory import to its index.ts', async () => {
    const next = vi.fn(async (specifier: string) => {
      if (specifier === './lib/index.ts') return { url: 'file:///project/lib/index.ts' };
      throw Object.assign(new Error('Directory import is not supported'), {
        code: specifier === './lib' ? 'ERR_UNSUPPORTED_DIR_IMPORT' : 'ERR_MODULE_NOT_FOUND',
      });
    });
    expect(await resolve('./lib', context, next as never)).toEqual({ url: 'file:///project/lib/index.ts' });
  });

  it("leaves a bare specifier to Node and rethrows Node's error when no TypeScript file exists", async () => {
    const bare = nextResolveFinding();
    await expect(resolve('some-package', context, bare as never)).rejects.toThrow("Cannot find module 'some-package'");
    expect(bare).toHaveBeenCalledTimes(1);

    const missing = nextResolveFinding();
    await expect(resolve('./missing.js', context, missing as never)).rejects.toThrow(
      "Cannot find module './missing.js'",
    );
  });
});
