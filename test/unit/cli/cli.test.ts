import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCli } from '../../support/cli.ts';

const SIMPLE = 'test/fixtures/pipelines/simple.ts';
let home: string;
beforeEach(async () => {
  home = await mkdtemp(join(tmpdir(), 'stackline-cli-'));
});
afterEach(async () => {
  await rm(home, { recursive: true, force: true });
});

describe('stackline run', () => {
  it('prints one JSON object with the run, its steps and their output artifact versions', async () => {
    const result = await runCli(home, 'run', SIMPLE, '--param', 'count=4', '--json');
    expect(result.code).toBe(0);
    const out = result.json();
    expect(out).toMatchObject({
      pipeline: 'simple',
      status: 'completed',
      parameters: { count: 4 },
      tags: ['team:tests'],
    });
    expect(out.runId).toMatch(/^run_/);
    expect(out.steps).toEqual([
      expect.objectContaining({
        name: 'numbers',
        status: 'completed',
        cached: false,
        outputs: [expect.objectContaining({ name: 'values', artifact: 'numbers.values', version: 1 })],
      }),
      expect.objectContaining({
        name: 'stats',
        status: 'completed',
        cached: false,
        outputs: [
          expect.objectContaining({ name: 'sum', artifact: 'stats.sum', version: 1 }),
          expect.objectContaining({ name: 'label', artifact: 'stats.label', version: 1 }),
        ],
      }),
    ]);
    expect(typeof out.steps[0].durationMs).toBe('number');
    expect(result.stderr).toBe('');
  });

  it('shows progress per step on stderr and caches everything on the second run', async () => {
    const first = await runCli(home, 'run', SIMPLE);
    expect(first.code).toBe(0);
    expect(first.stderr).toMatch(/✓ numbers completed/);
    expect(first.stderr).toMatch(/✓ stats completed/);
    const second = await runCli(home, 'run', SIMPLE, '--json');
    expect(second.json().steps.map((s: { cached: boolean }) => s.cached)).toEqual([true, true]);
    const third = await runCli(home, 'run', SIMPLE, '--no-cache', '--json');
    expect(third.json().steps.map((s: { status: string }) => s.status)).toEqual(['completed', 'completed']);
  });

  it('exits 1 when the run fails and reports the step error', async () => {
    const result = await runCli(home, 'run', 'test/fixtures/pipelines/failing.ts', '--json');
    expect(result.code).toBe(1);
    const out = result.json();
    expect(out.status).toBe('failed');
    expect(out.steps[0]).toMatchObject({
      name: 'explode',
      status: 'failed',
      error: { message: 'the data source is unreachable' },
    });
  });

  it('exits 2 on an invalid parameter, naming it, without recording a run', async () => {
    const result = await runCli(home, 'run', SIMPLE, '--param', 'count=0');
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/Invalid parameters for pipeline "simple": count: /);
    const runs = await runCli(home, 'runs', 'list', '--json');
    expect(runs.json().runs).toEqual([]);
  });

  it('exits 2 with a JSON error object under --json', async () => {
    const result = await runCli(home, 'run', SIMPLE, '--param', 'nonsense', '--json');
    expect(result.code).toBe(2);
    expect(result.json().error.message).toContain('is not key=value');
  });

  it('exits 2 on usage errors: unknown option, missing file, several pipelines without --pipeline', async () => {
    expect((await runCli(home, 'run', SIMPLE, '--bogus')).code).toBe(2);
    const missing = await runCli(home, 'run', 'nope.ts');
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('Pipeline file not found');
    const multi = await runCli(home, 'run', 'test/fixtures/pipelines/multi.ts');
    expect(multi.code).toBe(2);
    expect(multi.stderr).toContain('choose one with --pipeline NAME');
    expect(
      (await runCli(home, 'run', 'test/fixtures/pipelines/multi.ts', '--pipeline', 'second', '--json')).json().pipeline,
    ).toBe('second');
  });

  it('reads parameters, tags and step cache settings from --config, with --param taking precedence', async () => {
    const config = join(home, 'run.yaml');
    await writeFile(config, 'parameters:\n  count: 6\ntags: [env:test]\nsteps:\n  stats:\n    cache: false\n');
    await runCli(home, 'run', SIMPLE, '--config', config);
    const out = (await runCli(home, 'run', SIMPLE, '--config', config, '--json')).json();
    expect(out.parameters).toEqual({ count: 6 });
    expect(out.tags).toEqual(['team:tests', 'env:test']);
    expect(out.steps.map((s: { status: string }) => s.status)).toEqual(['cached', 'completed']);
    expect(
      (await runCli(home, 'run', SIMPLE, '--config', config, '--param', 'count=2', '--json')).json().parameters,
    ).toEqual({ count: 2 });
  });

  it('rejects an invalid config file naming the bad key', async () => {
    const config = join(home, 'bad.yaml');
    await writeFile(config, 'parameters: {}\nretries: 3\n');
    const result = await runCli(home, 'run', SIMPLE, '--config', config);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/unknown key "retries"/);
  });
});

describe('stackline runs, artifacts and stack', () => {
  it('lists and filters runs and shows one with its steps', async () => {
    const ok = (await runCli(home, 'run', SIMPLE, '--json')).json();
    await runCli(home, 'run', 'test/fixtures/pipelines/failing.ts');
    const all = (await runCli(home, 'runs', 'list', '--json')).json().runs;
    expect(all).toHaveLength(2);
    const failed = (await runCli(home, 'runs', 'list', '--status', 'failed', '--json')).json().runs;
    expect(failed.map((r: { pipeline: string }) => r.pipeline)).toEqual(['failing']);
    const tagged = (await runCli(home, 'runs', 'list', '--tag', 'team:tests', '--json')).json().runs;
    expect(tagged.map((r: { id: string }) => r.id)).toEqual([ok.runId]);
    const shown = await runCli(home, 'runs', 'show', ok.runId);
    expect(shown.stdout).toContain('stats');
    expect(shown.stdout).toContain('sum=stats.sum@v1');
    expect((await runCli(home, 'runs', 'list', '--status', 'exploded')).code).toBe(2);
    expect((await runCli(home, 'runs', 'show', 'run_missing')).code).toBe(2);
  });

  it('lists artifacts and versions, shows lineage and loads values', async () => {
    await runCli(home, 'run', SIMPLE, '--param', 'count=2');
    await runCli(home, 'run', SIMPLE, '--param', 'count=3');
    const artifacts = (await runCli(home, 'artifacts', 'list', '--json')).json().artifacts;
    expect(artifacts.map((a: { name: string }) => a.name).sort()).toEqual([
      'numbers.values',
      'stats.label',
      'stats.sum',
    ]);
    const versions = (await runCli(home, 'artifacts', 'versions', 'stats.sum', '--json')).json().versions;
    expect(versions.map((v: { version: number }) => v.version)).toEqual([2, 1]);
    expect((await runCli(home, 'artifacts', 'load', 'stats.sum', '1', '--json')).json()).toBe(3);
    expect((await runCli(home, 'artifacts', 'load', 'stats.sum')).stdout.trim()).toBe('6');
    expect((await runCli(home, 'artifacts', 'load', 'stats.label')).stdout).toBe('n=3\n');
    const shown = (await runCli(home, 'artifacts', 'show', 'numbers.values', 'latest', '--json')).json();
    expect(shown.lineage.consumers.map((c: { stepId: string }) => c.stepId)).toEqual(['stats']);
    const missing = await runCli(home, 'artifacts', 'show', 'stats.sum', '9');
    expect(missing.code).toBe(2);
    expect((await runCli(home, 'artifacts', 'show', 'stats.sum', 'zero')).code).toBe(2);
  });

  it('has a default local stack out of the box and switches the active stack', async () => {
    const listed = (await runCli(home, 'stack', 'list', '--json')).json();
    expect(listed.active).toBe('default');
    expect(listed.stacks[0]).toMatchObject({
      name: 'default',
      components: {
        orchestrator: { type: 'local' },
        artifactStore: { type: 'local' },
        metadataStore: { type: 'sqlite' },
      },
    });
    expect((await runCli(home, 'stack', 'describe', '--json')).json().name).toBe('default');
    const unknown = await runCli(home, 'stack', 'set', 'prod');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('prod');
  });

  it('init creates the project home', async () => {
    const result = await runCli(join(home, 'fresh'), 'init', '--json');
    expect(result.code).toBe(0);
    expect(result.json()).toEqual({ home: join(home, 'fresh'), activeStack: 'default' });
  });
});
