import { readdirSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { Stackline } from '../../lib/client.ts';
import { nameProblem } from '../../lib/dsl/names.ts';
import { pipeline } from '../../lib/dsl/pipeline.ts';
import { step } from '../../lib/dsl/step.ts';
import { PipelineDefinitionError, ValidationError } from '../../lib/errors.ts';
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

describe('artifact names, step names and tags: one verdict from the DSL, the client, the CLI and the stores (property-based)', () => {
  let project: string;
  let home: string;
  let sl: Stackline;
  const outputs = { o: z.number() };
  const body = () => ({ o: 1 });

  beforeAll(async () => {
    // A project with the user's own files beside its state directory: a refusal must touch neither.
    project = await mkdtemp(join(tmpdir(), 'stackline-props-project-'));
    home = join(project, '.stackline');
    await mkdir(join(project, 'data'), { recursive: true });
    await writeFile(join(project, 'data', 'rows.csv'), 'a,b\n1,2\n');
    await writeFile(join(project, 'notes.md'), '# mine\n');
    sl = await Stackline.open({ home });
  });

  afterAll(async () => {
    await sl.close();
    await rm(project, { recursive: true, force: true });
  });

  const counts = async () => ({
    artifacts: (await sl.stack.metadata.artifacts.list({ limit: 1000 })).items.length,
    models: (await sl.stack.metadata.models.list({ limit: 1000 })).items.length,
    runs: (await sl.stack.metadata.runs.list({ limit: 1000 })).items.length,
  });

  /** The verdict of one entry point: true when it accepted the value. */
  const accepted = async (attempt: () => unknown): Promise<boolean | unknown> => {
    try {
      await attempt();
      return true;
    } catch (error) {
      return error;
    }
  };

  it('artifact names (step output `artifact`, saveArtifact, the artifact store, `artifacts show`)', async () => {
    let index = 0;
    const artifactArbitrary = fc.oneof(
      fc.string({ unit: fc.constantFrom(...'abXY09_.:-'), minLength: 1, maxLength: 30 }).map((s) => `a${s}`),
      fc.string({ unit: fc.constantFrom(...'ab._:-/ \u001b\u0000'), minLength: 0, maxLength: 12 }),
      fc.constantFrom('../x', 'a..b', 'x'.repeat(201), ':lead', '-lead', 'ok.name', 'iris:holdout', 'a/b'),
    );
    await fc.assert(
      fc.asyncProperty(artifactArbitrary, async (raw) => {
        const name = nameProblem('artifact', raw) === undefined ? `${raw.slice(0, 150)}${index++}` : raw;
        const valid = nameProblem('artifact', name) === undefined;
        const before = snapshot(project);
        const countsBefore = await counts();
        const dsl = await accepted(() =>
          step({ name: 'emits', outputs: { o: { schema: z.number(), artifact: name } } }, body),
        );
        const client = await accepted(() => sl.saveArtifact(name, 1));
        const store = await accepted(() =>
          sl.stack.metadata.artifacts.createVersion({
            name,
            kind: 'json',
            uri: 'memory://never-read',
            sha256: '0'.repeat(64),
            sizeBytes: 1,
            tags: [],
          } as never),
        );
        const cli = await runCli(home, 'artifacts', 'show', '--', name);
        expect(dsl === true).toBe(valid);
        expect(client === true).toBe(valid);
        expect(cli.code === 0).toBe(valid);
        if (!valid) {
          expect(dsl).toBeInstanceOf(PipelineDefinitionError);
          expect(client).toBeInstanceOf(ValidationError);
          expect(store).toBeInstanceOf(ValidationError);
          expect(cli.code).toBe(2);
          expect(cli.stderr.trim().split('\n')).toHaveLength(1);
          expect(cli.stderr).not.toContain('\u001b');
          expect(snapshot(project)).toEqual(before);
          expect(await counts()).toEqual(countsBefore);
        }
      }),
      { numRuns: 30, seed: 1201 },
    );
  }, 60_000);

  it('step names (step(), a pipeline using the step, Stackline.run and the artifacts it names)', async () => {
    let index = 0;
    const stepArbitrary = fc.oneof(
      fc.string({ unit: fc.constantFrom(...'abXY09_-'), minLength: 1, maxLength: 20 }).map((s) => `s${s}`),
      fc.string({ unit: fc.constantFrom(...'ab._:-/ \u001b'), minLength: 0, maxLength: 10 }),
      fc.constantFrom('9lead', '-lead', 'a.b', 'x'.repeat(81), 'esc\u001b[2J', '_ok'),
    );
    await fc.assert(
      fc.asyncProperty(stepArbitrary, async (raw) => {
        const name = nameProblem('step', raw) === undefined ? `${raw.slice(0, 70)}${index++}` : raw;
        const valid = nameProblem('step', name) === undefined;
        const before = snapshot(project);
        const countsBefore = await counts();
        let definition: ReturnType<typeof step<typeof outputs>> | undefined;
        const dsl = await accepted(() => {
          definition = step({ name, outputs }, body);
        });
        expect(dsl === true).toBe(valid);
        if (!valid) {
          expect(dsl).toBeInstanceOf(PipelineDefinitionError);
          expect(snapshot(project)).toEqual(before);
          expect(await counts()).toEqual(countsBefore);
          return;
        }
        const result = await sl.run(pipeline({ name: 'props_steps' }, () => void definition!()));
        expect(result.run.status).toBe('completed');
        // The step's name is part of the artifact name the store accepted.
        expect((await sl.stack.metadata.artifacts.list({ limit: 1000 })).items.map((a) => a.name)).toContain(
          `${name}.o`,
        );
      }),
      { numRuns: 20, seed: 1202 },
    );
  }, 60_000);

  it('tags (pipeline tags, Stackline.run, createModel, saveArtifact, the stores, `model create --tag`)', async () => {
    let index = 0;
    const tagStep = step({ name: 'tag_step', outputs }, body);
    const tagArbitrary = fc.oneof(
      fc
        .tuple(
          fc.string({ unit: fc.constantFrom(...'abXY09_-.'), minLength: 1, maxLength: 12 }),
          fc.string({ unit: fc.constantFrom(...'ab 9:.-/é'), minLength: 1, maxLength: 20 }),
        )
        .map(([k, v]) => `${k}:${v.trimStart()}`),
      fc.string({ unit: fc.constantFrom(...'a: \t\n\u001b\u0000é'), minLength: 0, maxLength: 10 }),
      fc.constantFrom('team:ml', 'solo', 'two words:x', 'k: lead', 'k:\u001b[2J', ':v', 'x'.repeat(301), 'k:v:w'),
    );
    await fc.assert(
      fc.asyncProperty(tagArbitrary, async (tag) => {
        const valid = nameProblem('tag', tag) === undefined;
        const id = index++;
        const before = snapshot(project);
        const countsBefore = await counts();
        const dsl = await accepted(() => pipeline({ name: 'props_tagged', tags: [tag] }, () => {}));
        const run = await accepted(() =>
          sl.run(
            pipeline({ name: 'props_untagged' }, () => void tagStep()),
            { tags: [tag] },
          ),
        );
        const model = await accepted(() => sl.createModel({ name: `tagged${id}`, tags: [tag] }));
        const artifact = await accepted(() => sl.saveArtifact(`tagged.a${id}`, 1, { tags: [tag] }));
        const store = await accepted(() =>
          sl.stack.metadata.models.create({ name: `stored${id}`, tags: [tag] } as never),
        );
        const cli = await runCli(home, 'model', 'create', `cli${id}`, `--tag=${tag}`);
        for (const verdict of [dsl, run, model, artifact, store]) expect(verdict === true, String(verdict)).toBe(valid);
        expect(cli.code === 0).toBe(valid);
        if (!valid) {
          expect(dsl).toBeInstanceOf(PipelineDefinitionError);
          for (const error of [run, model, artifact, store]) expect(error).toBeInstanceOf(ValidationError);
          expect(cli.code).toBe(2);
          expect(cli.stderr.trim().split('\n')).toHaveLength(1);
          expect(cli.stderr).not.toContain('\u001b');
          expect(snapshot(project)).toEqual(before);
          expect(await counts()).toEqual(countsBefore);
        }
      }),
      { numRuns: 30, seed: 1203 },
    );
  }, 60_000);
});
