import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { PipelineDefinitionError, ValidationError } from '../../lib/errors.ts';
import { pipeline, Stackline, step } from '../../lib/index.ts';
import { loadStepSnapshot } from '../../lib/metadata/step-snapshot.ts';
import { runCli } from '../support/cli.ts';

const SIMPLE = 'test/fixtures/pipelines/simple.ts';
const run = promisify(execFile);

/** One line on stderr, starting `error:`, with no stack frame. */
function expectOneLine(stderr: string): void {
  const lines = stderr.trim().split('\n');
  expect(lines.length, stderr).toBeLessThanOrEqual(2);
  expect(lines[0]).toMatch(/^error: /);
  expect(stderr).not.toMatch(/\n\s+at /);
}

describe('bad input is refused with one clear line (exit 2)', () => {
  let home: string;

  beforeEach(async () => {
    home = await mkdtemp(join(tmpdir(), 'stackline-bad-input-'));
  });

  afterEach(async () => {
    await rm(home, { recursive: true, force: true });
  });

  it('refuses an unknown --param, naming the closest parameter, and records no run', async () => {
    const result = await runCli(home, 'run', SIMPLE, '--param', 'cuont=5');
    expect(result.code).toBe(2);
    expectOneLine(result.stderr);
    expect(result.stderr).toContain('"cuont"');
    expect(result.stderr).toContain('did you mean "count"');
    expect((await runCli(home, 'runs', 'list', '--json')).json().runs).toEqual([]);
  });

  it('refuses a misspelled key under parameters: in a config file', async () => {
    const config = join(home, 'run.yaml');
    await writeFile(config, 'parameters:\n  cont: 4\n');
    const result = await runCli(home, 'run', SIMPLE, '--config', config);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('did you mean "count"');
  });

  it('refuses an unknown config-file key with the closest allowed one', async () => {
    const config = join(home, 'run.yaml');
    await writeFile(config, 'concurency: 2\n');
    const result = await runCli(home, 'run', SIMPLE, '--config', config);
    expect(result.code).toBe(2);
    expectOneLine(result.stderr);
    expect(result.stderr).toContain('did you mean "concurrency"');
  });

  it('reports malformed YAML in one line with file:line', async () => {
    const config = join(home, 'broken.yaml');
    await writeFile(config, 'parameters:\n  count: [1, 2\ncache: true\n');
    const result = await runCli(home, 'run', SIMPLE, '--config', config);
    expect(result.code).toBe(2);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(
      new RegExp(`${config.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+: invalid YAML`),
    );
  });

  it('refuses --param __proto__.x=1 and leaves Object.prototype alone', async () => {
    for (const param of ['__proto__.polluted=1', 'constructor.prototype.polluted=1']) {
      const result = await runCli(home, 'run', SIMPLE, '--param', param);
      expect(result.code).toBe(2);
      expectOneLine(result.stderr);
    }
    const config = join(home, 'proto.yaml');
    await writeFile(config, 'parameters:\n  __proto__:\n    polluted: 1\n');
    expect((await runCli(home, 'run', SIMPLE, '--config', config)).code).toBe(2);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('refuses --out into a missing directory or onto a directory, before writing anything', async () => {
    expect((await runCli(home, 'run', SIMPLE, '--json')).code).toBe(0);
    const missing = await runCli(home, 'artifacts', 'load', 'stats.sum', '--out', join(home, 'nope', 'sum.json'));
    expect(missing.code).toBe(2);
    expectOneLine(missing.stderr);
    expect(missing.stderr).toContain(join(home, 'nope'));
    const onDir = await runCli(home, 'artifacts', 'load', 'stats.sum', '--out', home);
    expect(onDir.code).toBe(2);
    expect(onDir.stderr).toContain('is a directory');
  });

  it('bundle --out refuses a non-empty directory it did not create and leaves it untouched', async () => {
    const out = join(home, 'mine');
    await mkdir(join(out, 'lambda'), { recursive: true });
    await writeFile(join(out, 'lambda', 'handler.py'), 'print("mine")\n');
    await writeFile(join(out, 'notes.txt'), 'keep me\n');
    const result = await runCli(home, 'bundle', SIMPLE, '--out', out);
    expect(result.code).toBe(2);
    expectOneLine(result.stderr);
    expect(result.stderr).toContain(out);
    expect(result.stderr).toMatch(/new or empty directory.*or remove it/);
    expect((await readdir(out)).sort()).toEqual(['lambda', 'notes.txt']);
    expect(await readdir(join(out, 'lambda'))).toEqual(['handler.py']);
    expect(await readFile(join(out, 'lambda', 'handler.py'), 'utf8')).toBe('print("mine")\n');
  });

  it('bundle --out re-bundles into its own output directory, replacing the previous bundle', async () => {
    const out = join(home, 'bundle');
    expect((await runCli(home, 'bundle', SIMPLE, '--out', out, '--json')).code).toBe(0);
    expect(existsSync(join(out, '.stackline-bundle'))).toBe(true);
    await writeFile(join(out, 'lambda', 'stale.mjs'), 'old\n');
    const again = await runCli(home, 'bundle', SIMPLE, '--out', out, '--json');
    expect(again.code, again.stderr).toBe(0);
    expect(await readdir(join(out, 'lambda'))).toEqual(['index.mjs']);
    expect((await readdir(join(out, 'container'))).sort()).toEqual(['Dockerfile', 'index.mjs']);
  });

  it('accepts a numeric codeVersion as its decimal string and refuses other types naming the step', async () => {
    const body = () => ({ o: 1 });
    const outputs = { o: z.number() };
    const numeric = step({ name: 'versioned', codeVersion: 2, outputs }, body);
    const text = step({ name: 'versioned', codeVersion: '2', outputs }, body);
    const bumped = step({ name: 'versioned', codeVersion: 3, outputs }, body);
    expect(numeric.spec.codeHash).toBe(text.spec.codeHash);
    expect(bumped.spec.codeHash).not.toBe(numeric.spec.codeHash);
    expect(numeric.spec.options.codeVersion).toBe('2');
    for (const bad of [true, Number.NaN, { v: 2 }, Number.POSITIVE_INFINITY]) {
      expect(() => step({ name: 'odd_version', codeVersion: bad as never, outputs }, body)).toThrow(
        PipelineDefinitionError,
      );
      expect(() => step({ name: 'odd_version', codeVersion: bad as never, outputs }, body)).toThrow(
        /Step "odd_version": codeVersion must be a string or a finite number/,
      );
    }
    const sl = await Stackline.open({ home });
    try {
      const result = await sl.run(pipeline({ name: 'versioned_pipeline' }, () => void numeric()));
      expect(result.run.status).toBe('completed');
      const snapshot = await loadStepSnapshot(sl.stack.artifacts, result.run);
      expect(snapshot).toMatchObject({ versioned: { options: { codeVersion: '2' } } });
    } finally {
      await sl.close();
    }
  });

  it('prints usage errors as JSON on stdout with --json', async () => {
    const result = await runCli(home, 'runs', 'list', '--limit', 'x', '--json');
    expect(result.code).toBe(2);
    expect(result.json().error).toMatchObject({ code: 'USAGE' });
  });

  it('refuses hostile names from the client, pipelines and step outputs alike, and the CLI shows none raw', async () => {
    const sl = await Stackline.open({ home });
    try {
      for (const name of ['../etc', 'a\u0000b', 'x'.repeat(10_000), 'evil\u001b[31m', 'a..b']) {
        await expect(sl.createModel({ name })).rejects.toThrow(ValidationError);
        await expect(sl.saveArtifact(name, 1)).rejects.toThrow(ValidationError);
        expect(() => pipeline({ name: 'p', model: { name } }, () => {})).toThrow(PipelineDefinitionError);
        expect(() =>
          step({ name: 's', outputs: { o: { schema: z.number(), artifact: name } } }, () => ({ o: 1 })),
        ).toThrow(PipelineDefinitionError);
        const cli = await runCli(home, 'model', 'create', name);
        expect(cli.code).toBe(2);
        expect(cli.stderr).not.toContain('\u001b');
        expect(cli.stderr.length).toBeLessThan(400);
      }
      expect((await sl.stack.metadata.models.list()).items).toEqual([]);
      // A tag with an escape sequence is refused too; descriptions are printed escaped.
      await expect(sl.createModel({ name: 'tagged', tags: ['team:\u001b[2J'] })).rejects.toThrow(ValidationError);
      await sl.createModel({ name: 'described', description: 'plain \u001b[31m red', tags: ['team:ml'] });
      const list = await runCli(home, 'model', 'list');
      expect(list.code).toBe(0);
      expect(list.stdout).not.toContain('\u001b');
    } finally {
      await sl.close();
    }
  });

  it('refuses a non-numeric concurrency passed to Stackline.run instead of completing a run that ran nothing', async () => {
    const { simple } = await import('../fixtures/pipelines/simple.ts');
    const sl = await Stackline.open({ home });
    try {
      await expect(sl.run(simple, { concurrency: 'lots' as unknown as number })).rejects.toThrow(/concurrency/);
      await expect(sl.run(simple, { concurrency: 0 })).rejects.toThrow(ValidationError);
      await expect(sl.run(simple, { concurency: 2 } as never)).rejects.toThrow(/concurency/);
      expect((await sl.stack.metadata.runs.list()).items).toEqual([]);
    } finally {
      await sl.close();
    }
  });
});

describe('the stackline binary on broken pipeline files', () => {
  let dir: string;
  const bin = resolve('bin/stackline.js');

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stackline-broken-'));
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function cli(args: string[], cwd = process.cwd()) {
    try {
      const { stdout, stderr } = await run(process.execPath, [bin, ...args], {
        cwd,
        env: { ...process.env, STACKLINE_HOME: join(dir, '.stackline'), NO_COLOR: '1' },
      });
      return { code: 0, stdout, stderr };
    } catch (error) {
      const e = error as { code: number; stdout: string; stderr: string };
      return { code: e.code, stdout: e.stdout, stderr: e.stderr };
    }
  }

  it('reports a syntax error with file:line, a directory given as the file, and a CommonJS project — each in one line', async () => {
    await writeFile(join(dir, 'package.json'), JSON.stringify({ type: 'module' }));
    const broken = join(dir, 'broken.ts');
    await writeFile(broken, "export const p = { name: 'p',\n  body: () => {\n");
    const syntax = await cli(['run', broken]);
    expect(syntax.code).toBe(2);
    expectOneLine(syntax.stderr);
    expect(syntax.stderr).toContain(`${broken}:`);

    const directory = await cli(['run', '.'], dir);
    expect(directory.code).toBe(2);
    expectOneLine(directory.stderr);
    expect(directory.stderr).toContain('is a directory');

    const project = join(dir, 'cjs');
    await mkdir(project);
    await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'cjs-project' }));
    await writeFile(join(project, 'pipeline.ts'), await (await import('node:fs/promises')).readFile(SIMPLE, 'utf8'));
    const cjs = await cli(['run', join(project, 'pipeline.ts')]);
    // Either it works, or it says exactly what to change.
    if (cjs.code !== 0) {
      expect(cjs.code).toBe(2);
      expectOneLine(cjs.stderr);
      expect(cjs.stderr).toContain('"type": "module"');
    }
    expect(existsSync(join(dir, '.stackline'))).toBe(true);
  }, 60_000);

  it('shows the stack trace only with --debug', async () => {
    await writeFile(join(dir, 'package.json'), JSON.stringify({ type: 'module' }));
    const thrower = join(dir, 'throws.ts');
    await writeFile(thrower, "throw new TypeError('boom at import');\n");
    const plain = await cli(['run', thrower]);
    expect(plain.code).toBe(2);
    expectOneLine(plain.stderr);
    const debug = await cli(['run', thrower, '--debug']);
    expect(debug.stderr).toMatch(/\n\s+at /);
  }, 60_000);
});
