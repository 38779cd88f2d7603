/**
 * The CLI's own TypeScript loader (lib/cli/typescript-hooks.ts) as a user meets it: the real binary
 * runs `.ts`, `.mts` and `.tsx` pipeline files from a project of their own (`stackline` and `zod`
 * linked into its node_modules, so its transpile cache is its own too).
 */
import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.ts';
import { packageOf, runRecordingLoads } from '../support/loaded-modules.ts';

let project: string;
let home: string;
let cache: string;

beforeEach(async () => {
  project = await mkdtemp(join(tmpdir(), 'stackline-ts-loader-'));
  home = join(project, '.stackline');
  cache = join(project, 'node_modules', '.cache', 'stackline', 'typescript');
  await mkdir(join(project, 'node_modules'));
  await symlink(resolve('.'), join(project, 'node_modules', 'stackline'));
  await symlink(resolve('node_modules/zod'), join(project, 'node_modules', 'zod'));
  await writeFile(join(project, 'package.json'), JSON.stringify({ type: 'module' }));
});
afterEach(async () => {
  await rm(project, { recursive: true, force: true });
});

async function write(files: Record<string, string>, dir = project): Promise<void> {
  for (const [name, text] of Object.entries(files)) {
    await mkdir(join(dir, name, '..'), { recursive: true });
    await writeFile(join(dir, name), text);
  }
}

// Compiling ahead (precompile.ts, test/e2e/precompile.test.ts) switched off: these runs take the hooks.
const run = (args: string[]) =>
  runRecordingLoads(args, { dir: project, home, cwd: project, env: { STACKLINE_PRECOMPILE: '0' } });

/** The newest version of an artifact, as `stackline artifacts load` returns it. */
async function artifact(name: string): Promise<unknown> {
  const loaded = await runCli(home, 'artifacts', 'load', name, '--json');
  expect(loaded.code, loaded.stderr).toBe(0);
  return loaded.json();
}

/** One line on stderr, starting `error:`, with no stack frame. */
function expectOneLine(stderr: string): void {
  expect(stderr.trim().split('\n'), stderr).toHaveLength(1);
  expect(stderr).toMatch(/^error: /);
  expect(stderr).not.toMatch(/\n\s+at /);
}

/** A pipeline with one step whose output `total` comes from local modules imported TypeScript's ways. */
const PIPELINE = `import { pipeline, step } from 'stackline';
import { z } from 'zod';
import { double } from './lib/helper.js';
import { OFFSET } from './lib/constants';
import { label } from './lib';

const sum = step({ name: 'sum', outputs: { total: z.string() } }, () => ({ total: label(double(20) + OFFSET) }));

export const sums = pipeline({ name: 'sums' }, () => {
  sum();
});
`;
const MODULES = {
  'lib/helper.ts': 'export function double(n: number): number {\n  return n * 2;\n}\n',
  'lib/constants.ts': 'export const OFFSET: number = 2;\n',
  'lib/index.ts': "export const label = (n: number): string => 'total ' + String(n);\n",
};

describe('the CLI TypeScript loader', () => {
  it('maps `./x.js` to `./x.ts` and an extensionless `./x` to `./x.ts` or `./x/index.ts` across local modules', async () => {
    await write({ 'pipeline.ts': PIPELINE, ...MODULES });
    const result = await run(['run', 'pipeline.ts', '--json']);
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout).status).toBe('completed');
    expect(await artifact('sum.total')).toBe('total 42');
  }, 60_000);

  it("resolves an alias from tsconfig.json's paths to a local .ts module", async () => {
    await write({
      ...MODULES,
      'tsconfig.json': JSON.stringify({ compilerOptions: { baseUrl: '.', paths: { '@lib/*': ['lib/*'] } } }),
      'pipeline.ts': PIPELINE.replace("from './lib/helper.js'", "from '@lib/helper'"),
    });
    const result = await run(['run', 'pipeline.ts', '--json']);
    expect(result.code, result.stderr).toBe(0);
    expect(await artifact('sum.total')).toBe('total 42');
  }, 60_000);

  it('transpiles each file once: a second run reads the cache and never loads esbuild', async () => {
    await write({ 'pipeline.ts': PIPELINE, ...MODULES });
    const first = await run(['run', 'pipeline.ts', '--json']);
    expect(first.code, first.stderr).toBe(0);
    expect(first.urls.filter((u) => packageOf(u) === 'esbuild')).toHaveLength(1);
    expect(await readdir(cache)).toHaveLength(4);

    const second = await run(['run', 'pipeline.ts', '--no-cache', '--json']);
    expect(second.code, second.stderr).toBe(0);
    expect(JSON.parse(second.stdout).steps.map((s: { status: string }) => s.status)).toEqual(['completed']);
    expect(second.urls.filter((u) => ['esbuild', 'get-tsconfig'].includes(packageOf(u) ?? ''))).toEqual([]);
    // The files themselves still went through the hooks.
    expect(second.urls.filter((u) => u.startsWith(`file://${project}/`) && u.endsWith('.ts'))).toHaveLength(4);
    expect(await readdir(cache)).toHaveLength(4);
  }, 60_000);

  it('transpiles an edited file again instead of serving the cached one', async () => {
    await write({ 'pipeline.ts': PIPELINE, ...MODULES });
    expect((await run(['run', 'pipeline.ts', '--no-cache', '--json'])).code).toBe(0);
    expect(await artifact('sum.total')).toBe('total 42');

    await write({ 'lib/helper.ts': 'export function double(n: number): number {\n  return n * 3;\n}\n' });
    const edited = await run(['run', 'pipeline.ts', '--no-cache', '--json']);
    expect(edited.code, edited.stderr).toBe(0);
    expect(edited.urls.filter((u) => packageOf(u) === 'esbuild')).toHaveLength(1);
    expect(await artifact('sum.total')).toBe('total 62');
    expect(await readdir(cache)).toHaveLength(5);
  }, 60_000);

  it('reports a syntax error as one line with the file, line and column, in the pipeline or a module it imports', async () => {
    await write({
      'broken.ts': "export const p = { name: 'p',\n  body: () => {\n",
      'imports-broken.ts': "import { x } from './lib/bad';\nexport const y = x;\n",
      'lib/bad.ts': 'export const x = (;\n',
    });
    const own = await run(['run', 'broken.ts']);
    expect(own.code).toBe(2);
    expectOneLine(own.stderr);
    expect(own.stderr).toContain(`${join(project, 'broken.ts')}:3:1: syntax error: Unexpected end of file`);

    const imported = await run(['run', 'imports-broken.ts']);
    expect(imported.code).toBe(2);
    expectOneLine(imported.stderr);
    expect(imported.stderr).toContain(`${join(project, 'lib/bad.ts')}:1:19: syntax error: Unexpected ";"`);
    // Nothing cached for files that did not compile; the one that did is.
    expect(await readdir(cache)).toHaveLength(1);
  }, 60_000);

  it('keeps stack traces of a throwing step on the lines of its .ts files', async () => {
    await write({
      'throws.ts': `import { pipeline, step } from 'stackline';
import { z } from 'zod';
import { explode } from './explode.js';

type Out = { n: number };
const boom = step({ name: 'boom', outputs: { n: z.number() } }, (): Out => ({ n: explode(5) }));
export const throwing = pipeline({ name: 'throwing' }, () => {
  boom();
});
`,
      'explode.ts': `interface Options {
  limit: number;
}
export function explode(n: number, options: Options = { limit: 0 }): number {
  if (n > options.limit) {
    throw new Error(\`boom \${n}\`);
  }
  return n;
}
`,
    });
    const result = await run(['run', 'throws.ts', '--json']);
    expect(result.code).toBe(1);
    const shown = await runCli(home, 'runs', 'show', JSON.parse(result.stdout).runId, '--json');
    const stack = String(shown.json().steps[0].error.stack);
    expect(stack).toContain(`at explode (${join(project, 'explode.ts')}:6:11)`);
    expect(stack).toMatch(new RegExp(`${join(project, 'throws.ts').replaceAll('.', '\\.')}:6:\\d+\\)`));
  }, 60_000);

  it('runs a .tsx module with the nearest tsconfig.json JSX settings, and transpiles again when they change', async () => {
    await write({
      'tsconfig.json':
        '{\n  // a comment, as tsconfig files have\n  "compilerOptions": { "jsx": "react", "jsxFactory": "h" },\n}\n',
      'view.tsx': `export const h = (tag: string, _props: unknown, ...children: unknown[]) => \`<\${tag}>\${children.join('')}</\${tag}>\`;
export const tag = (tag: string, _props: unknown, ...children: unknown[]) => \`[\${tag}]\${children.join('')}\`;
export const view = (n: number) => <b>{n}</b>;
`,
      'page.mts': `import { pipeline, step } from 'stackline';
import { z } from 'zod';
import { view } from './view.jsx';

const render = step({ name: 'render', outputs: { html: z.string() } }, () => ({ html: view(7) }));
export const page = pipeline({ name: 'page' }, () => {
  render();
});
`,
    });
    expect((await run(['run', 'page.mts', '--no-cache', '--json'])).code).toBe(0);
    expect(await artifact('render.html')).toBe('<b>7</b>');

    await write({ 'tsconfig.json': '{ "compilerOptions": { "jsx": "react", "jsxFactory": "tag" } }\n' });
    expect((await run(['run', 'page.mts', '--no-cache', '--json'])).code).toBe(0);
    expect(await artifact('render.html')).toBe('[b]7');
  }, 60_000);

  it('follows a tsconfig.json that extends another for the settings that change emit', async () => {
    await write({
      'tsconfig.base.json': '{ "compilerOptions": { "jsx": "react", "jsxFactory": "h" } }\n',
      'tsconfig.json': '{ "extends": "./tsconfig.base.json" }\n',
      'view.tsx': `export const h = (tag: string) => \`<\${tag}/>\`;
export const tag = (tag: string) => \`[\${tag}]\`;
export const view = () => <hr />;
`,
      'page.ts': `import { pipeline, step } from 'stackline';
import { z } from 'zod';
import { view } from './view.jsx';

const render = step({ name: 'render', outputs: { html: z.string() } }, () => ({ html: view() }));
export const page = pipeline({ name: 'page' }, () => {
  render();
});
`,
    });
    expect((await run(['run', 'page.ts', '--no-cache', '--json'])).code).toBe(0);
    expect(await artifact('render.html')).toBe('<hr/>');

    // Only the base changes: the cache must not serve the old output.
    await write({ 'tsconfig.base.json': '{ "compilerOptions": { "jsx": "react", "jsxFactory": "tag" } }\n' });
    expect((await run(['run', 'page.ts', '--no-cache', '--json'])).code).toBe(0);
    expect(await artifact('render.html')).toBe('[hr]');
  }, 60_000);

  it('honours experimentalDecorators, useDefineForClassFields and verbatimModuleSyntax from tsconfig.json', async () => {
    const settings = (on: boolean) =>
      JSON.stringify({
        compilerOptions: { experimentalDecorators: on, useDefineForClassFields: !on, verbatimModuleSyntax: on },
      });
    await write({
      'tsconfig.json': settings(true),
      'side-effect.ts': '(globalThis as { sideEffect?: boolean }).sideEffect = true;\nexport const unused = 1;\n',
      'semantics.ts': `import { unused } from './side-effect.js';

let decoratorArguments = 0;
const count = (...args: unknown[]): void => {
  decoratorArguments = args.length;
};
class Decorated {
  @count
  method(): void {}
}
let setterCalled = false;
class Base {
  set field(_value: number) {
    setterCalled = true;
  }
}
class Child extends Base {
  field = 1;
}
export function semantics(): string {
  void Decorated;
  new Child();
  const sideEffect = (globalThis as { sideEffect?: boolean }).sideEffect === true;
  return [decoratorArguments, setterCalled, sideEffect].join(',');
}
`,
      'pipeline.ts': `import { pipeline, step } from 'stackline';
import { z } from 'zod';
import { semantics } from './semantics.js';

const probe = step({ name: 'probe', outputs: { seen: z.string() } }, () => ({ seen: semantics() }));
export const probing = pipeline({ name: 'probing' }, () => {
  probe();
});
`,
    });
    const legacy = await run(['run', 'pipeline.ts', '--no-cache', '--json']);
    expect(legacy.code, legacy.stderr).toBe(0);
    // Legacy decorators get (target, key, descriptor); assigned fields call the base setter; the
    // import kept verbatim runs its module.
    expect(await artifact('probe.seen')).toBe('3,true,true');

    await write({ 'tsconfig.json': settings(false) });
    expect((await run(['run', 'pipeline.ts', '--no-cache', '--json'])).code).toBe(0);
    expect(await artifact('probe.seen')).toBe('2,false,false');
  }, 60_000);

  it('runs an .mts pipeline in a CommonJS package, and refuses a .ts or .cts one there in one line naming the fix', async () => {
    const cjs = join(project, 'cjs');
    await write(
      {
        'package.json': JSON.stringify({ name: 'cjs-project' }),
        'pipeline.mts': PIPELINE.replaceAll("from './lib", "from '../lib"),
        'pipeline.ts': 'export const x = 1;\n',
        'pipeline.cts': 'export const x = 1;\n',
      },
      cjs,
    );
    await write(MODULES);
    const mts = await run(['run', 'cjs/pipeline.mts', '--json']);
    expect(mts.code, mts.stderr).toBe(0);

    const ts = await run(['run', 'cjs/pipeline.ts']);
    expect(ts.code).toBe(2);
    expectOneLine(ts.stderr);
    expect(ts.stderr).toContain(
      `${join(cjs, 'pipeline.ts')} is loaded as CommonJS because ${join(cjs, 'package.json')} has no "type": "module"`,
    );
    const cts = await run(['run', 'cjs/pipeline.cts']);
    expect(cts.code).toBe(2);
    expectOneLine(cts.stderr);
    expect(cts.stderr).toContain('rename it to .mts');
  }, 60_000);
});
