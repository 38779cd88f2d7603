import { readdirSync, statSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stackline } from '../../lib/client.ts';
import { nameProblem } from '../../lib/dsl/names.ts';
import { pipeline } from '../../lib/dsl/pipeline.ts';
import { ValidationError } from '../../lib/errors.ts';
import { runCli } from '../support/cli.ts';

const SIMPLE = 'test/fixtures/pipelines/simple.ts';

/** Every file under `dir` with its size and modification time: equal snapshots mean nothing was written. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const path = join(d, entry.name);
      if (entry.isDirectory()) walk(path);
      // The database's files change on reads too (WAL checkpoints): its content is compared instead.
      else if (!entry.name.startsWith('metadata.db')) out[path] = `${statSync(path).size}:${statSync(path).mtimeMs}`;
    }
  };
  walk(dir);
  return out;
}

const VALID_CHARS = 'abcXYZ019_-.';
const nameArbitrary = fc.oneof(
  fc.string({ unit: fc.constantFrom(...VALID_CHARS), minLength: 1, maxLength: 30 }).map((s) => `m${s}`),
  fc.string({ maxLength: 40 }),
  fc.constantFrom('../x', 'a\u0000b', 'x'.repeat(10_000), 'esc\u001b[31m', 'a..b', '', ' lead', 'ok_name'),
);

describe('one set of rules for names and inputs, whatever the entry point (property-based)', () => {
  let home: string;
  let sl: Stackline;

  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), 'stackline-props-'));
    sl = await Stackline.open({ home });
  });

  afterAll(async () => {
    await sl.close();
    await rm(home, { recursive: true, force: true });
  });

  it('model names: the client, the CLI and the DSL accept and refuse the same names; a refusal is exit 2, one line, and writes nothing', async () => {
    let index = 0;
    await fc.assert(
      fc.asyncProperty(nameArbitrary, async (raw) => {
        // Distinct per run so "already exists" never masks the rule being tested.
        const name = nameProblem('model', raw) === undefined ? `${raw.slice(0, 90)}${index++}` : raw;
        const valid = nameProblem('model', name) === undefined;
        let dsl = true;
        try {
          pipeline({ name: 'p', model: { name } }, () => {});
        } catch {
          dsl = false;
        }
        const before = snapshot(home);
        const modelsBefore = (await sl.stack.metadata.models.list({ limit: 1000 })).items.length;
        const cli = await runCli(home, 'model', 'create', name);
        const client = await sl.createModel({ name: valid ? `${name}c` : name }).then(
          () => undefined,
          (error: unknown) => error,
        );
        expect(dsl).toBe(valid);
        expect(cli.code === 0).toBe(valid);
        expect(client === undefined).toBe(valid);
        if (!valid) {
          expect(cli.code).toBe(2);
          expect(cli.stderr.trim().split('\n')).toHaveLength(1);
          expect(cli.stderr).not.toContain('\u001b');
          expect(client).toBeInstanceOf(ValidationError);
          expect(snapshot(home)).toEqual(before);
          expect((await sl.stack.metadata.models.list({ limit: 1000 })).items.length).toBe(modelsBefore);
        }
      }),
      { numRuns: 40, seed: 12 },
    );
  });

  it('parameters, on the command line and in config files: only declared keys are accepted, refusals leave the store unchanged', async () => {
    const keyArbitrary = fc.oneof(
      fc.constant('count'),
      fc.constantFrom('cout', 'counts', 'Count', '__proto__', 'constructor', 'count.extra', 'n'),
      fc.string({ unit: fc.constantFrom(...'abcnotu_'), minLength: 1, maxLength: 8 }),
    );
    await fc.assert(
      fc.asyncProperty(keyArbitrary, fc.integer({ min: 1, max: 4 }), fc.boolean(), async (key, value, viaConfig) => {
        const valid = key === 'count';
        const before = snapshot(home);
        const runsBefore = (await sl.stack.metadata.runs.list({ limit: 1000 })).items.length;
        const args = ['run', SIMPLE, '--json'];
        if (viaConfig) {
          const config = join(home, '..', `${home.split('/').pop()}-config.yaml`);
          await writeFile(config, `parameters:\n  ${JSON.stringify(key)}: ${value}\n`);
          args.push('--config', config);
        } else args.push('--param', `${key}=${value}`);
        const result = await runCli(home, ...args);
        if (valid) expect(result.code).toBe(0);
        else {
          expect(result.code).toBe(2);
          expect(result.json().error.message.split('\n')).toHaveLength(1);
          expect(snapshot(home)).toEqual(before);
          expect((await sl.stack.metadata.runs.list({ limit: 1000 })).items.length).toBe(runsBefore);
        }
        expect(({} as Record<string, unknown>).extra).toBeUndefined();
      }),
      { numRuns: 25, seed: 7 },
    );
  }, 60_000);
});
