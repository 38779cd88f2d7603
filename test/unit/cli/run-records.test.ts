import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../support/cli.ts';

const FILE = 'test/fixtures/pipelines/surprises.ts';
let home: string;

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'stackline-records-'));
});
afterAll(async () => {
  await rm(home, { recursive: true, force: true });
});

describe('what a run used, and what never ran', () => {
  it('runs show lists the exact input and output versions of each step, which artifacts load accepts', async () => {
    const run = await runCli(home, 'run', FILE, '--pipeline', 'fanout', '--json');
    expect(run.code).toBe(0);
    const runId = run.json().runId;
    const shown = await runCli(home, 'runs', 'show', runId, '--json');
    const total = shown.json().steps.find((s: { stepId: string }) => s.stepId === 'total');
    expect(total.inputArtifacts).toEqual({
      values: { artifact: 'square.squared', version: 1, id: expect.any(String) },
    });
    expect(total.outputArtifacts).toEqual({ sum: { artifact: 'total.sum', version: 1, id: expect.any(String) } });
    const text = await runCli(home, 'runs', 'show', runId);
    expect(text.stdout).toMatch(/^total\s+completed\s+.*values=square\.squared@v1\s+sum=total\.sum@v1$/m);
    // Loading the version the run read gives the value it read.
    const loaded = await runCli(home, 'artifacts', 'load', 'total.sum', '1');
    expect(loaded.stdout.trim()).toBe('14');
  });

  it('loads a fan-out collection from the CLI as the list of its values (no version: the newest)', async () => {
    const loaded = await runCli(home, 'artifacts', 'load', 'square.squared');
    expect(loaded.code).toBe(0);
    expect(JSON.parse(loaded.stdout)).toEqual([1, 4, 9]);
  });

  it('calls a step that never ran "not-run", in run --json and in runs show', async () => {
    const run = await runCli(home, 'run', FILE, '--pipeline', 'broken', '--json');
    expect(run.code).toBe(1);
    const statuses = Object.fromEntries(
      run.json().steps.map((s: { name: string; status: string }) => [s.name, s.status]),
    );
    expect(statuses).toEqual({ explode: 'failed', after: 'not-run' });
    const shown = await runCli(home, 'runs', 'show', run.json().runId, '--json');
    expect(shown.json().steps.map((s: { stepId: string; status: string }) => [s.stepId, s.status])).toEqual([
      ['explode', 'failed'],
      ['after', 'not-run'],
    ]);
    const text = await runCli(home, 'runs', 'show', run.json().runId);
    expect(text.stdout).toMatch(/^after\s+not-run\s/m);
  });
});
