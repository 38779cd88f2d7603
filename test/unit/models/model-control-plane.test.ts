import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ConflictError, externalArtifact, pipeline, Stackline, StageHeldError, step } from '../../../lib/index.ts';
import { currentActor } from '../../../lib/models/model-context.ts';
import { runCli } from '../../support/cli.ts';

let home: string;
let sl: Stackline;
beforeEach(async () => {
  home = await mkdtemp(join(tmpdir(), 'stackline-models-'));
  sl = await Stackline.open({ home, actor: 'bob' });
});
afterEach(async () => {
  await sl.close();
  await rm(home, { recursive: true, force: true });
});

const Weights = z.object({ w: z.number() });
const fitWeights = step(
  {
    name: 'fit',
    parameters: z.object({ w: z.number() }),
    outputs: { weights: { schema: Weights, artifact: 'toy_weights', modelRole: 'model' } },
  },
  ({ params }) => ({ weights: { w: params.w } }),
);
const record = step(
  { name: 'record', inputs: { weights: Weights }, outputs: { ok: z.boolean() }, cache: false },
  async ({ inputs, context }) => {
    await context.runModelVersion!.logMetadata({ score: inputs.weights.w });
    return { ok: true };
  },
);
const train = pipeline(
  { name: 'toy_train', parameters: z.object({ w: z.number() }), model: { name: 'toy' } },
  ({ w }) => {
    record({ weights: fitWeights({}, { params: { w } }).weights });
  },
);

let scored = 0;
const score = step(
  {
    name: 'score',
    inputs: { x: z.number() },
    outputs: { y: z.number() },
    model: { model: 'toy', version: 'production' },
  },
  async ({ inputs, context }) => {
    scored++;
    const weights = Weights.parse(await context.model!.loadArtifact('toy_weights'));
    return { y: inputs.x * weights.w };
  },
);
const infer = pipeline({ name: 'toy_infer' }, () => {
  score({ x: externalArtifact('toy_input', z.number()) });
});

describe('model versions created by pipeline runs', () => {
  it('numbers versions 1..N without duplicates under concurrent runs of one model', async () => {
    const results = await Promise.all(Array.from({ length: 12 }, (_, i) => sl.run(train, { params: { w: i } })));
    expect(results.every((r) => r.run.status === 'completed')).toBe(true);
    const versions = await Promise.all(
      results.map((r) => sl.stack.metadata.models.getVersionById(r.run.modelVersionId!)),
    );
    expect(versions.map((v) => v.number).sort((a, b) => a - b)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    for (const [i, v] of versions.entries()) {
      expect(v.runIds).toEqual([results[i]!.run.id]);
      expect(v.metadata.score).toBe(i);
      expect(v.artifacts.map((a) => [a.role, a.artifactName])).toEqual([['model', 'toy_weights']]);
    }
  });

  it('links cached outputs to the new version too', async () => {
    await sl.run(train, { params: { w: 2 } });
    const second = await sl.run(train, { params: { w: 2 } });
    expect(second.steps[0]!.stepRun!.status).toBe('cached');
    const v2 = await sl.getModelVersion('toy', 2);
    expect(v2.artifacts).toHaveLength(1);
    expect(await sl.loadModelArtifact('toy', 2, 'toy_weights')).toEqual({ w: 2 });
  });
});

describe('stages', () => {
  beforeEach(async () => {
    for (const w of [1, 2, 3]) await sl.run(train, { params: { w } });
  });

  it('refuses to promote into a held stage without force, naming the holder, and changes nothing', async () => {
    await sl.promote('toy', 1, 'production');
    const error = await sl.promote('toy', 2, 'production').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConflictError);
    expect((error as Error).message).toMatch(/version 1/);
    expect((await sl.getModelVersion('toy', 'production')).number).toBe(1);
    expect((await sl.getModelVersion('toy', 2)).stage).toBeUndefined();
    expect((await sl.stack.metadata.models.history('toy')).items).toHaveLength(1);
  });

  it('archives the holder when forced, recording who, when, from, to and why', async () => {
    await sl.promote('toy', 1, 'production');
    const changes = await sl.promote('toy', 3, 'production', { force: true, reason: 'better score' });
    expect(changes.map((c) => [c.versionNumber, c.fromStage ?? null, c.toStage])).toEqual([
      [1, 'production', 'archived'],
      [3, null, 'production'],
    ]);
    expect(
      changes.every((c) => c.actor === 'bob' && c.reason === 'better score' && !Number.isNaN(Date.parse(c.at))),
    ).toBe(true);
    expect((await sl.getModelVersion('toy', 1)).stage).toBe('archived');
  });

  it('ends racing promotions of different versions with exactly one production holder and a complete history', async () => {
    const settled = await Promise.allSettled([1, 2, 3].map((v) => sl.promote('toy', v, 'production', { force: true })));
    expect(settled.every((s) => s.status === 'fulfilled')).toBe(true);
    const holders = (await sl.stack.metadata.models.listVersions('toy', { stage: 'production' })).items;
    expect(holders).toHaveLength(1);
    const history = (await sl.stack.metadata.models.history('toy')).items;
    expect(history.filter((h) => h.toStage === 'production')).toHaveLength(3);
    expect(history.filter((h) => h.toStage === 'archived')).toHaveLength(2);
  });

  it("records the client's actor on a promotion, never one smuggled into the options", async () => {
    const smuggled = { reason: 'trust me', actor: 'mallory' } as { reason: string };
    const [change] = await sl.promote('toy', 1, 'production', smuggled);
    expect(change!.actor).toBe('bob');
  });

  it('promotes with expectedHolder as a compare-and-set, refusing a stale holder with StageHeldError', async () => {
    await sl.promote('toy', 1, 'production', { expectedHolder: null });
    const stale = await sl.promote('toy', 2, 'production', { expectedHolder: null }).catch((e: unknown) => e);
    expect(stale).toBeInstanceOf(StageHeldError);
    expect((stale as StageHeldError).context).toMatchObject({ model: 'toy', stage: 'production', holder: 1 });
    await sl.promote('toy', 2, 'production', { expectedHolder: 1 });
    expect((await sl.getModelVersion('toy', 'production')).number).toBe(2);
  });

  it('fails a run that reads an empty stage with an error naming the model and stage', async () => {
    await sl.saveArtifact('toy_input', 10);
    const result = await sl.run(infer);
    expect(result.run.status).toBe('failed');
    expect(result.run.error?.message).toMatch(/Model "toy" has no version in stage "production"/);
  });

  it('serves the new production version after a promotion even though the step was cached before', async () => {
    await sl.saveArtifact('toy_input', 10);
    await sl.promote('toy', 2, 'production');
    const first = await sl.run(infer);
    expect(await sl.loadArtifact('score.y')).toBe(20);
    const cached = await sl.run(infer);
    expect(cached.steps[0]!.stepRun!.status).toBe('cached');
    expect(scored).toBeGreaterThan(0);
    const before = scored;
    await sl.promote('toy', 3, 'production', { force: true });
    const after = await sl.run(infer);
    expect(after.steps[0]!.stepRun!.status).toBe('completed');
    expect(scored).toBe(before + 1);
    expect(await sl.loadArtifact('score.y')).toBe(30);
    expect(first.steps[0]!.stepRun!.metadata.modelVersion).toBe('toy:2');
    expect(after.steps[0]!.stepRun!.metadata.modelVersion).toBe('toy:3');
  });

  it('moves an alias atomically between versions and records each move', async () => {
    await sl.setAlias('toy', 'champion', 1);
    const moved = await sl.setAlias('toy', 'champion', 2, { reason: 'won the bake-off' });
    expect(moved.previousVersion).toBe(1);
    expect((await sl.getModelVersion('toy', 'champion')).number).toBe(2);
    expect((await sl.getModelVersion('toy', 1)).aliases).toEqual([]);
    const aliasHistory = (await sl.stack.metadata.models.history('toy')).items.filter((h) => h.kind === 'alias');
    expect(aliasHistory.map((h) => [h.alias, h.versionNumber])).toEqual([
      ['champion', 1],
      ['champion', 2],
    ]);
  });

  it('logs metadata on artifact versions saved outside pipelines', async () => {
    const saved = await sl.saveArtifact('holdout', [1, 2, 3], { metadata: { source: 'manual' } });
    await sl.logArtifactMetadata('holdout', saved.version, { rows: 3 });
    expect((await sl.getArtifactVersion('holdout', saved.version)).metadata).toEqual({ source: 'manual', rows: 3 });
  });

  it('compares versions side by side, marking keys that differ', async () => {
    await sl.logModelMetadata('toy', 1, { params: { depth: 3 }, team: 'fraud' });
    await sl.logModelMetadata('toy', 2, { params: { depth: 5 }, team: 'fraud' });
    const comparison = await sl.compare('toy', [1, 2]);
    expect(comparison.versions.map((v) => v.number)).toEqual([1, 2]);
    expect(comparison.rows).toEqual([
      { key: 'params.depth', values: [3, 5], differs: true },
      { key: 'score', values: [1, 2], differs: true },
      { key: 'team', values: ['fraud', 'fraud'], differs: false },
    ]);
  });
});

describe('stackline model CLI', () => {
  beforeEach(async () => {
    for (const w of [1, 2]) await sl.run(train, { params: { w } });
  });

  it('promotes, refuses a held stage with exit 2, forces, and lists the history', async () => {
    expect((await runCli(home, 'model', 'promote', 'toy', '1', 'production', '--reason', 'first')).code).toBe(0);
    const refused = await runCli(home, 'model', 'promote', 'toy', '2', 'production');
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/production.*version 1|version 1.*production/);
    const forced = (await runCli(home, 'model', 'promote', 'toy', '2', 'production', '--force', '--json')).json();
    expect(forced.changes.map((c: { versionNumber: number; toStage: string }) => [c.versionNumber, c.toStage])).toEqual(
      [
        [1, 'archived'],
        [2, 'production'],
      ],
    );
    const history = (await runCli(home, 'model', 'history', 'toy', '--json')).json().history;
    expect(history).toHaveLength(3);
    const table = (await runCli(home, 'model', 'history', 'toy')).stdout;
    expect(table).toContain('production → archived');
    expect((await runCli(home, 'model', 'show', 'toy', '--json')).json().stages).toEqual({
      production: 2,
      staging: null,
    });
    expect((await runCli(home, 'model', 'promote', 'toy', '2', 'prod')).code).toBe(2);
  });

  it('gates production on a metric with `model gate`, force or not, and removes the gate with `none`', async () => {
    const gated = await runCli(home, 'model', 'gate', 'toy', 'score:max');
    expect(gated.code).toBe(0);
    expect(gated.stdout).toContain("toy: production needs score above the holder's");
    expect((await runCli(home, 'model', 'promote', 'toy', '2', 'production')).code).toBe(0);

    const refused = await runCli(home, 'model', 'promote', 'toy', '1', 'production', '--force');
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain("its score 1 does not beat version 2's 2 (higher is better)");
    expect((await sl.getModelVersion('toy', 'production')).number).toBe(2);

    expect((await runCli(home, 'model', 'gate', 'toy', 'none', '--json')).json().promotionGate).toBeUndefined();
    expect((await runCli(home, 'model', 'promote', 'toy', '1', 'production', '--force')).code).toBe(0);
  });

  it('creates a model with --gate and refuses a malformed gate with exit 2, creating nothing', async () => {
    const created = (await runCli(home, 'model', 'create', 'fraud', '--gate', 'loss:min', '--json')).json();
    expect(created.promotionGate).toEqual({ metric: 'loss', direction: 'min' });
    const bad = await runCli(home, 'model', 'create', 'churn', '--gate', 'loss:lowest');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('Promotion gate "loss:lowest" is not "<metric>:max" or "<metric>:min"');
    expect((await runCli(home, 'model', 'show', 'churn')).code).toBe(2);
  });

  it('records the CLI user as the actor of a promotion in direct mode', async () => {
    await runCli(home, 'model', 'promote', 'toy', '1', 'staging', '--reason', 'try it');
    const [change] = (await sl.stack.metadata.models.history('toy')).items;
    // The one place direct mode decides who acts: STACKLINE_USER, else the OS user.
    expect(change!.actor).toBe(currentActor({ ...process.env }));
  });

  it('creates a model explicitly with description and tags, and refuses a duplicate', async () => {
    const created = await runCli(
      home,
      'model',
      'create',
      'fraud',
      '--description',
      'Card fraud',
      '--tag',
      'team:fraud-detection',
      '--json',
    );
    expect(created.code).toBe(0);
    expect(created.json()).toMatchObject({
      name: 'fraud',
      description: 'Card fraud',
      tags: ['team:fraud-detection'],
      latestVersion: 0,
    });
    const listed = (await runCli(home, 'model', 'list', '--tag', 'team:fraud-detection', '--json')).json().models;
    expect(listed.map((m: { name: string }) => m.name)).toEqual(['fraud']);
    const again = await runCli(home, 'model', 'create', 'fraud');
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('fraud');
    expect((await runCli(home, 'model', 'create', 'bad name')).code).toBe(2);
  });

  it('lists models by tag, versions by stage, compares and manages aliases', async () => {
    expect((await runCli(home, 'model', 'list', '--json')).json().models.map((m: { name: string }) => m.name)).toEqual([
      'toy',
    ]);
    expect((await runCli(home, 'model', 'list', '--tag', 'team:none', '--json')).json().models).toEqual([]);
    await runCli(home, 'model', 'promote', 'toy', '2', 'staging');
    const staged = (await runCli(home, 'model', 'versions', 'toy', '--stage', 'staging', '--json')).json().versions;
    expect(staged.map((v: { number: number }) => v.number)).toEqual([2]);
    const compared = await runCli(home, 'model', 'compare', 'toy', '1', 'staging');
    expect(compared.stdout).toMatch(/\* score\s+1\s+2/);
    expect((await runCli(home, 'model', 'compare', 'toy', '1')).code).toBe(2);
    expect((await runCli(home, 'model', 'alias', 'set', 'toy', 'challenger', '1')).stdout).toContain(
      'alias challenger → v1',
    );
    expect((await runCli(home, 'model', 'show', 'toy', 'challenger', '--json')).json().number).toBe(1);
    expect((await runCli(home, 'model', 'alias', 'remove', 'toy', 'challenger')).code).toBe(0);
    expect((await runCli(home, 'model', 'show', 'toy', 'challenger')).code).toBe(2);
  });
});
