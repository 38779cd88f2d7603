import { createHash } from 'node:crypto';
import { utimes } from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { ApiContext } from '../../../lib/api/context.ts';
import { getRun } from '../../../lib/api/handlers/runs.ts';
import { RunDetailSchema } from '../../../lib/api/schemas.ts';
import type { ArtifactStore } from '../../../lib/artifacts/artifact-store.ts';
import { collectArtifactGarbage } from '../../../lib/artifacts/store-maintenance.ts';
import { runsShow } from '../../../lib/cli/commands/runs.ts';
import { IntegrityError } from '../../../lib/errors.ts';
import { pipeline, step } from '../../../lib/index.ts';
import {
  loadStepSnapshot,
  STEP_SNAPSHOT_KEY,
  stepCacheOverrides,
  stepSnapshotReference,
  withInlineStepSnapshot,
} from '../../../lib/metadata/step-snapshot.ts';
import type { PipelineRun, StepSnapshotReference } from '../../../lib/metadata/types.ts';
import { runPipelineLocally } from '../../../lib/runtime/local-orchestrator.ts';
import { createRun, prepareRun } from '../../../lib/runtime/run-lifecycle.ts';
import { handleStepRunnerRequest, type StepRunnerDeps } from '../../../lib/runtime/step-runner.ts';
import type { StackRuntime } from '../../../lib/stacks/project.ts';
import { localBlobPath } from '../../support/damage.ts';
import { createLocalTestEnv, type LocalTestEnv } from '../../support/local-env.ts';

/**
 * The per-step configuration snapshot lives in the artifact store under its content hash; the run
 * record keeps a reference. Each test uses step ids of its own, so its snapshot is a blob no other
 * test (and no earlier read in this process) has seen.
 */

const make = step({ name: 'snap_make', outputs: { value: z.number() } }, () => ({ value: 1 }));
const add = step({ name: 'snap_add', inputs: { x: z.number() }, outputs: { value: z.number() } }, ({ inputs }) => ({
  value: inputs.x + 1,
}));
const explode = step({ name: 'snap_explode', inputs: { x: z.number() }, outputs: { value: z.number() } }, () => {
  throw new Error('boom');
});

let unique = 0;
/** `<tag>_0 → <tag>_1 → …`, under fresh ids (so a blob of its own); `failAt` makes that step throw. */
function chain(steps: number, failAt?: number) {
  const tag = `c${Date.now().toString(36)}${unique++}`;
  return pipeline({ name: `snap_${tag}` }, () => {
    let { value } = make({}, { id: `${tag}_0` });
    for (let i = 1; i < steps; i++) ({ value } = (i === failAt ? explode : add)({ x: value }, { id: `${tag}_${i}` }));
  });
}

/** An artifact store that counts the reads of each blob. */
function counting(store: ArtifactStore) {
  const reads = new Map<string, number>();
  const read = <T>(hash: string, value: T): T => {
    reads.set(hash, (reads.get(hash) ?? 0) + 1);
    return value;
  };
  const counted: ArtifactStore = {
    kind: store.kind,
    put: (source) => store.put(source),
    putFile: (path) => store.putFile(path),
    get: (hash) => read(hash, store.get(hash)),
    getBytes: (hash) => read(hash, store.getBytes(hash)),
    getFile: (hash) => read(hash, store.getFile(hash)),
    exists: (hash) => store.exists(hash),
    check: (hash) => store.check(hash),
  };
  return { store: counted, reads: (hash: string) => reads.get(hash) ?? 0 };
}

async function created(p: ReturnType<typeof chain>, stepCache?: Record<string, boolean>) {
  const prepared = await prepareRun(p, {}, env);
  const { run } = await createRun(p, prepared, env, { stack: 'default', ...(stepCache ? { stepCache } : {}) });
  return run;
}

const refOf = (run: PipelineRun) => run.config[STEP_SNAPSHOT_KEY] as unknown as StepSnapshotReference;

let env: LocalTestEnv;
beforeEach(async () => {
  env = await createLocalTestEnv();
});
afterEach(async () => {
  await env.cleanup();
});

describe('the per-step snapshot, out of the run record', () => {
  it('a run records a reference to its snapshot, a blob the artifact store holds under its content hash', async () => {
    const p = chain(3);
    const result = await runPipelineLocally(p, env);
    const run = await env.metadata.runs.get(result.run.id);
    const ids = p.build({}).nodes.map((n) => n.id);

    expect(run.config.steps).toBeUndefined();
    expect(refOf(run)).toEqual({
      contentHash: expect.stringMatching(/^sha256:[0-9a-f]{64}$/),
      steps: 3,
      cacheOverrides: 0,
    });
    const bytes = await env.artifacts.getBytes(refOf(run).contentHash);
    expect(`sha256:${createHash('sha256').update(bytes).digest('hex')}`).toBe(refOf(run).contentHash);
    const snapshot = await loadStepSnapshot(env.artifacts, run);
    expect(Object.keys(snapshot!)).toEqual(ids);
    expect(snapshot![ids[1]!]).toEqual({
      step: 'snap_add',
      codeHash: p.build({}).nodes[1]!.spec.codeHash,
      upstream: [ids[0]],
      options: expect.any(Object),
    });
  });

  it('the run record stays the same size whatever the size of the pipeline', async () => {
    const small = await created(chain(3));
    const large = await created(chain(2_000));
    const size = (run: PipelineRun) => Buffer.byteLength(JSON.stringify(run.config));
    expect(refOf(large).steps).toBe(2_000);
    // Only the step count's digits differ.
    expect(size(large) - size(small)).toBe(3);
    expect(Object.keys((await loadStepSnapshot(env.artifacts, large))!)).toHaveLength(2_000);
  });

  it('runs of the same pipeline and settings share one blob; per-step cache overrides make another', async () => {
    const p = chain(3);
    const id1 = p.build({}).nodes[1]!.id;
    const first = await created(p);
    const second = await created(p);
    const overridden = await created(p, { [id1]: false });

    expect(refOf(second).contentHash).toBe(refOf(first).contentHash);
    expect(refOf(overridden).contentHash).not.toBe(refOf(first).contentHash);
    expect(refOf(overridden).cacheOverrides).toBe(1);
    expect((await loadStepSnapshot(env.artifacts, overridden))![id1]!.cache).toBe(false);
    expect(await stepCacheOverrides(env.artifacts, overridden)).toEqual({ [id1]: false });
    expect(await stepCacheOverrides(env.artifacts, first)).toBeUndefined();
  });

  it('the blob is stored before the run record, and a run whose blob cannot be stored is not recorded', async () => {
    const p = chain(2);
    const existedAtCreate: boolean[] = [];
    const create = env.metadata.runs.create.bind(env.metadata.runs);
    env.metadata.runs.create = async (run) => {
      existedAtCreate.push(await env.artifacts.exists(refOf(run).contentHash));
      return create(run);
    };
    await created(p);
    expect(existedAtCreate).toEqual([true]);

    const failing = Object.create(env.artifacts) as ArtifactStore;
    failing.put = () => Promise.reject(new Error('disk full'));
    const prepared = await prepareRun(p, {}, env);
    await expect(createRun(p, prepared, { ...env, artifacts: failing }, { stack: 'default' })).rejects.toThrow(
      'disk full',
    );
    expect((await env.metadata.runs.list({ pipeline: p.name })).items).toHaveLength(1);
  });

  it('reads records written before the move, with config.steps and config.stepCache inline', async () => {
    const old = await env.metadata.runs.create({
      id: 'run_old_form',
      pipeline: 'old',
      status: 'completed',
      stack: 'default',
      parameters: {},
      config: {
        cache: true,
        steps: {
          a: { step: 'a', codeHash: 'h1', upstream: [], options: {} },
          b: { step: 'b', codeHash: 'h2', upstream: ['a'], options: { retries: 1 } },
        },
        stepCache: { b: false },
      },
      tags: [],
      metadata: {},
      createdBy: 'test',
      startedAt: new Date().toISOString(),
    });
    expect(stepSnapshotReference(old)).toBeUndefined();
    expect(await loadStepSnapshot(env.artifacts, old)).toEqual({
      a: { step: 'a', codeHash: 'h1', upstream: [], options: {} },
      b: { step: 'b', codeHash: 'h2', upstream: ['a'], options: { retries: 1 }, cache: false },
    });
    expect(await stepCacheOverrides(env.artifacts, old)).toEqual({ b: false });
    expect(await withInlineStepSnapshot(env.artifacts, old)).toBe(old);
  });

  it('a missing snapshot blob is an IntegrityError naming the run and the blob', async () => {
    const run = await created(chain(2));
    const missing = {
      ...run,
      config: { ...run.config, [STEP_SNAPSHOT_KEY]: { ...refOf(run), contentHash: `sha256:${'0'.repeat(64)}` } },
    };
    const error = await loadStepSnapshot(env.artifacts, missing).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(IntegrityError);
    expect((error as Error).message).toBe(
      `Run "${run.id}" refers to its step snapshot sha256:${'0'.repeat(64)}, which the local artifact store no longer has (removed outside Stackline?): its step runs are intact, but which steps were planned is lost.`,
    );
  });

  it('a reference to a blob that is not a step snapshot is an IntegrityError', async () => {
    const run = await created(chain(2));
    for (const text of ['{"rows":[1,2]}', 'not json']) {
      const other = await env.artifacts.put(text);
      const wrong = {
        ...run,
        config: { ...run.config, [STEP_SNAPSHOT_KEY]: { ...refOf(run), contentHash: other.contentHash } },
      };
      const error = await loadStepSnapshot(env.artifacts, wrong).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(IntegrityError);
      expect((error as Error).message).toBe(
        `Run "${run.id}" refers to ${other.contentHash} as its step snapshot, but that blob is not one (format null).`,
      );
    }
  });

  it('artifacts gc keeps the blobs of runs’ snapshots and removes an old orphan', async () => {
    const run = await created(chain(2));
    const orphan = await env.artifacts.put('nobody refers to this');
    const old = new Date(Date.now() - 3_600_000);
    for (const hash of [refOf(run).contentHash, orphan.contentHash])
      await utimes(localBlobPath(env.artifacts.root, hash), old, old);

    const gc = await collectArtifactGarbage(env, { graceMs: 60_000 });

    expect(gc.removed).toEqual([orphan.contentHash]);
    expect(await env.artifacts.exists(refOf(run).contentHash)).toBe(true);
    expect(Object.keys((await loadStepSnapshot(env.artifacts, run))!)).toHaveLength(2);
  });
});

describe('readers of the snapshot', () => {
  const io = () => {
    let out = '';
    return {
      io: { stdout: { write: (t: string) => (out += t) }, stderr: { write: () => true }, cwd: '.', env: {} },
      json: () => JSON.parse(out),
    };
  };
  const stackOf = (artifacts: ArtifactStore) =>
    ({ name: 'default', metadata: env.metadata, artifacts }) as unknown as StackRuntime;

  it('runs show lists never-run steps from the snapshot, and reads it only when some step has no step run', async () => {
    const failing = chain(3, 1);
    const failed = await runPipelineLocally(failing, env);
    const done = await runPipelineLocally(chain(3), env);
    const { store, reads } = counting(env.artifacts);

    const shownFailed = io();
    await runsShow(stackOf(store), failed.run.id, { json: true }, shownFailed.io);
    const shownDone = io();
    await runsShow(stackOf(store), done.run.id, { json: true }, shownDone.io);

    const ids = failing.build({}).nodes.map((n) => n.id);
    expect(shownFailed.json().steps.map((s: { stepId: string; status: string }) => [s.stepId, s.status])).toEqual([
      [ids[0], 'completed'],
      [ids[1], 'failed'],
      [ids[2], 'not-run'],
    ]);
    expect(reads(refOf(failed.run).contentHash)).toBe(1);
    expect(shownDone.json().steps).toHaveLength(3);
    expect(reads(refOf(done.run).contentHash)).toBe(0);
  });

  it('runs show lists the never-run steps of a record written before the move from its inline config.steps', async () => {
    await env.metadata.runs.create({
      id: 'run_old_show',
      pipeline: 'old',
      status: 'cancelled',
      stack: 'default',
      parameters: {},
      config: {
        steps: {
          a: { step: 'a', codeHash: 'h1', upstream: [], options: {} },
          b: { step: 'b', codeHash: 'h2', upstream: ['a'], options: {} },
        },
      },
      tags: [],
      metadata: {},
      createdBy: 'test',
      startedAt: new Date().toISOString(),
    });
    const shown = io();
    await runsShow(stackOf(env.artifacts), 'run_old_show', { json: true }, shown.io);
    expect(shown.json().steps).toEqual([
      { stepId: 'a', status: 'not-run' },
      { stepId: 'b', status: 'not-run' },
    ]);
  });

  it("the API's run detail returns the snapshot inline as config.steps, the shape the dashboard draws the DAG from", async () => {
    const p = chain(3, 1);
    const ids = p.build({}).nodes.map((n) => n.id);
    const result = await runPipelineLocally(p, env, { stepCache: { [ids[2]!]: false } });
    const ctx = { metadata: env.metadata, artifacts: env.artifacts } as unknown as ApiContext;

    const detail = RunDetailSchema.parse(await getRun(ctx, { runId: result.run.id }));

    expect(Object.keys(detail.run.config.steps as object)).toEqual(ids);
    expect((detail.run.config.steps as Record<string, unknown>)[ids[1]!]).toEqual({
      step: 'snap_explode',
      codeHash: p.build({}).nodes[1]!.spec.codeHash,
      upstream: [ids[0]],
      options: expect.any(Object),
    });
    expect(detail.run.config.stepCache).toEqual({ [ids[2]!]: false });
  });
});

describe('the step runner and the snapshot', () => {
  const deps = (p: ReturnType<typeof chain>, artifacts: ArtifactStore): StepRunnerDeps => ({
    pipelines: [p],
    stores: { ...env, artifacts },
    stackName: 'sfn',
  });

  async function runAll(d: StepRunnerDeps, p: ReturnType<typeof chain>, input: Record<string, unknown> = {}) {
    const { runId } = await handleStepRunnerRequest(
      { action: 'start-run', pipeline: p.name, parameters: {}, tags: [], input },
      d,
    );
    const statuses: string[] = [];
    for (const node of p.build({}).nodes) {
      const done = await handleStepRunnerRequest({ action: 'run-step', pipeline: p.name, runId, stepId: node.id }, d);
      statuses.push(done.status);
    }
    return { run: await env.metadata.runs.get(runId), statuses };
  }

  it('reads no snapshot for a run without cache overrides, and one with overrides at most once per container', async () => {
    const plain = chain(3);
    const { store, reads } = counting(env.artifacts);
    const first = await runAll(deps(plain, store), plain);
    expect(reads(refOf(first.run).contentHash)).toBe(0);

    const overridden = chain(3);
    const last = overridden.build({}).nodes[2]!.id;
    await runAll(deps(overridden, env.artifacts), overridden);
    const second = await runAll(deps(overridden, store), overridden, { stepCache: { [last]: false } });
    expect(second.statuses).toEqual(['cached', 'cached', 'completed']);
    expect(reads(refOf(second.run).contentHash)).toBe(1);
  });

  it('honours the per-step cache overrides of a record written before the move (config.stepCache inline)', async () => {
    const p = chain(2);
    const [a, b] = p.build({}).nodes.map((n) => n.id) as [string, string];
    const d = deps(p, env.artifacts);
    await runAll(d, p);
    const old = (id: string, stepCache: Record<string, boolean>) =>
      env.metadata.runs.create({
        id,
        pipeline: p.name,
        status: 'running',
        stack: 'sfn',
        parameters: {},
        config: {
          cache: true,
          externalArtifacts: {},
          steps: { [a]: { step: 'snap_make', codeHash: 'x', upstream: [], options: {} } },
          stepCache,
        },
        tags: [],
        metadata: {},
        createdBy: 'test',
        startedAt: new Date().toISOString(),
      });
    await old('run_old_override', { [b]: false });
    await old('run_old_plain', {});
    const statuses = async (runId: string) => {
      const out: string[] = [];
      for (const stepId of [a, b])
        out.push((await handleStepRunnerRequest({ action: 'run-step', pipeline: p.name, runId, stepId }, d)).status);
      return out;
    };
    expect(await statuses('run_old_override')).toEqual(['cached', 'completed']);
    expect(await statuses('run_old_plain')).toEqual(['cached', 'cached']);
  });
});
