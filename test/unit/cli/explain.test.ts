import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StepRun } from '../../../lib/metadata/types.ts';
import { CACHE_KEY_METADATA, describeChange, keyChanges } from '../../../lib/runtime/explain.ts';
import { runCli } from '../../support/cli.ts';

const SIMPLE = 'test/fixtures/pipelines/simple.ts';
let home: string;

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'stackline-explain-'));
});
afterAll(async () => {
  await rm(home, { recursive: true, force: true });
});

/** Runs `simple` with --json; returns step name → its `explain` entry. */
async function run(...args: string[]) {
  const result = await runCli(home, 'run', SIMPLE, '--json', ...args);
  expect(result.code).toBe(0);
  const summary = result.json();
  return {
    runId: summary.runId as string,
    steps: Object.fromEntries(summary.steps.map((s: { name: string; explain: unknown }) => [s.name, s.explain])),
  };
}

describe('stackline run --explain and runs explain', () => {
  it('explains a first run, a hit, a parameter change and the input it changes downstream, and a disabled cache', async () => {
    const first = await run('--param', 'count=3');
    expect(first.steps.numbers).toMatchObject({
      verdict: 'first-run',
      summary: expect.stringMatching(/^miss: no earlier run/),
    });

    const again = await run('--param', 'count=3');
    expect(again.steps.numbers).toMatchObject({ verdict: 'hit', comparedWith: { runId: first.runId } });
    expect(again.steps.stats.summary).toBe(`hit: same key as run ${first.runId}; its outputs were reused`);

    const changed = await run('--param', 'count=4');
    expect(changed.steps.numbers).toMatchObject({
      verdict: 'changed',
      comparedWith: { runId: again.runId },
      changes: [{ kind: 'parameter', name: 'count', before: '3', after: '4' }],
    });
    expect(changed.steps.numbers.summary).toBe(`miss since run ${again.runId}: parameter count: 3 → 4`);
    // Downstream, the key changed through its input, which names the upstream step and versions.
    expect(changed.steps.stats).toMatchObject({
      verdict: 'changed',
      changes: [
        { kind: 'input', name: 'values', from: 'numbers', before: 'numbers.values@v1', after: 'numbers.values@v2' },
      ],
    });

    const disabled = await run('--param', 'count=4', '--no-cache');
    expect(disabled.steps.numbers).toMatchObject({
      verdict: 'cache-disabled',
      summary: 'miss: the cache was disabled for this step',
    });

    // The same explanations from `runs explain`, for one step and as text.
    const one = await runCli(home, 'runs', 'explain', changed.runId, 'stats', '--json');
    expect(one.json().steps).toEqual([expect.objectContaining({ stepId: 'stats', verdict: 'changed' })]);
    const text = await runCli(home, 'runs', 'explain', changed.runId);
    expect(text.stdout).toContain(`numbers  miss since run ${again.runId}: parameter count: 3 → 4`);
    expect(text.stdout).toMatch(
      /stats {4}miss since run \S+: input values from step numbers changed: numbers\.values@v1 → numbers\.values@v2/,
    );
  });

  it('prints the explanation after the run with --explain', async () => {
    const result = await runCli(home, 'run', SIMPLE, '--explain', '--param', 'count=4');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^ {2}numbers {2}hit: same key as run \S+; its outputs were reused$/m);
  });

  it("names an unknown step with the run's steps, exit 2", async () => {
    const { runId } = await run('--param', 'count=4');
    const result = await runCli(home, 'runs', 'explain', runId, 'nope');
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/has no step "nope" \(its steps: numbers, stats\)/);
  });
});

describe('keyChanges', () => {
  const stepRun = (record: object, parameters = {}): StepRun =>
    ({
      parameters,
      metadata: { [CACHE_KEY_METADATA]: { inputs: {}, outputs: 'o', model: null, cache: true, code: {}, ...record } },
    }) as unknown as StepRun;

  it('names a model version change', () => {
    const changes = keyChanges(stepRun({ model: 'iris:1' }), stepRun({ model: 'iris:2' }));
    expect(changes.map(describeChange)).toEqual(['model version iris:1 → iris:2']);
  });

  it('names the function, declaration, module, package and codeVersion that changed', () => {
    const before = stepRun({
      code: {
        function: 'a',
        'declaration:OFFSET': 'x',
        'module:lib/h.ts': 'm',
        'package:zod': '4.0.0',
        codeVersion: '1',
      },
    });
    const after = stepRun({
      code: {
        function: 'b',
        'declaration:OFFSET': 'y',
        'module:lib/h.ts': 'n',
        'package:zod': '4.1.0',
        codeVersion: '2',
        'module:lib/new.ts': 'k',
      },
    });
    expect(keyChanges(before, after).map(describeChange)).toEqual([
      'codeVersion 1 → 2',
      'code of declaration OFFSET changed',
      'code of the step function changed',
      'code of module lib/h.ts changed',
      'code: now uses module lib/new.ts',
      'package zod 4.0.0 → 4.1.0',
    ]);
  });

  it('names changed output declarations', () => {
    expect(keyChanges(stepRun({ outputs: 'a' }), stepRun({ outputs: 'b' })).map(describeChange)).toEqual([
      'output declarations changed',
    ]);
  });
});
