import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ConflictError,
  NotFoundError,
  RunFinishedError,
  StepAlreadyDoneError,
  StepInProgressError,
  ValidationError,
} from '../../lib/errors.ts';
import type { MetadataStore } from '../../lib/metadata/metadata-store.ts';
import { PromotionRefusedError, StageHeldError } from '../../lib/metadata/promotion-rules.ts';
import type {
  ArtifactVersionDraft,
  ErrorInfo,
  Metadata,
  MetadataTarget,
  Page,
  PipelineRun,
  StageChange,
  StepRun,
  StepRunCompletion,
} from '../../lib/metadata/types.ts';
import { newId } from '../../lib/util/ids.ts';

export interface MetadataStoreFixture {
  store: MetadataStore;
  cleanup: () => Promise<void>;
}

/**
 * Behaviour every {@link MetadataStore} adapter must show, run unchanged against each of them.
 * `factory` is called before every test and must return an empty store (a fresh database, table or
 * key prefix); `cleanup` runs after the test. Concurrency tests use concurrent async calls, so they
 * hold for remote backends as well as embedded ones.
 *
 * @example
 * ```ts
 * describeMetadataStoreConformance('SqliteMetadataStore (memory)', async () => {
 *   const store = SqliteMetadataStore.open(':memory:');
 *   return { store, cleanup: () => store.close() };
 * });
 * ```
 */
export function describeMetadataStoreConformance(name: string, factory: () => Promise<MetadataStoreFixture>): void {
  describe(`MetadataStore conformance: ${name}`, () => {
    let store: MetadataStore;
    let cleanup: () => Promise<void>;

    beforeEach(async () => {
      ({ store, cleanup } = await factory());
    });

    afterEach(async () => {
      await cleanup();
    });

    describe('stacks', () => {
      it('put creates a stack that get returns with its timestamps set', async () => {
        const stored = await store.stacks.put({
          name: 'local',
          components: { orchestrator: { type: 'local' }, artifactStore: { type: 'local', path: '.stackline' } },
          description: 'Laptop',
          tags: ['env:dev'],
        });

        expect(stored).toMatchObject({
          name: 'local',
          components: { orchestrator: { type: 'local' }, artifactStore: { type: 'local', path: '.stackline' } },
          description: 'Laptop',
          tags: ['env:dev'],
        });
        expect(Number.isNaN(Date.parse(stored.createdAt))).toBe(false);
        expect(stored.updatedAt >= stored.createdAt).toBe(true);
        expect(await store.stacks.get('local')).toEqual(stored);
      });

      it('put replaces an existing stack, keeping its createdAt and replacing its tags', async () => {
        const first = await store.stacks.put({ name: 'aws', components: { region: 'eu-west-1' }, tags: ['env:dev'] });
        const second = await store.stacks.put({ name: 'aws', components: { region: 'us-east-1' }, tags: ['env:prod'] });

        expect(second.createdAt).toBe(first.createdAt);
        expect(second.updatedAt >= first.updatedAt).toBe(true);
        expect(await store.stacks.get('aws')).toMatchObject({
          components: { region: 'us-east-1' },
          tags: ['env:prod'],
        });
        expect((await store.stacks.list({ tag: 'env:dev' })).items).toEqual([]);
        expect((await store.stacks.list({ tag: 'env:prod' })).items.map((stack) => stack.name)).toEqual(['aws']);
      });

      it('find returns undefined for an unknown stack and get throws NotFoundError naming it', async () => {
        expect(await store.stacks.find('nowhere')).toBeUndefined();
        const error = await rejection(store.stacks.get('nowhere'));
        expect(error).toBeInstanceOf(NotFoundError);
        expect(messageOf(error)).toContain('nowhere');
      });

      it('list returns every stack once across pages and filters by tag', async () => {
        const names = Array.from({ length: 7 }, (_, index) => `stack-${index}`);
        for (const [index, stackName] of names.entries()) {
          await store.stacks.put({ name: stackName, components: {}, tags: index % 2 === 0 ? ['team:a'] : [] });
        }

        const pages = await collectPages((cursor) => store.stacks.list({ limit: 3, cursor }));
        expect(pages.map((page) => page.length)).toEqual([3, 3, 1]);
        expect(
          pages
            .flat()
            .map((stack) => stack.name)
            .sort(),
        ).toEqual(names);
        const tagged = await store.stacks.list({ tag: 'team:a' });
        expect(tagged.items.map((stack) => stack.name).sort()).toEqual(['stack-0', 'stack-2', 'stack-4', 'stack-6']);
      });

      it('delete removes a stack and throws NotFoundError when it is already gone', async () => {
        await store.stacks.put({ name: 'temp', components: {}, tags: ['env:dev'] });
        await store.stacks.delete('temp');

        expect(await store.stacks.find('temp')).toBeUndefined();
        expect((await store.stacks.list({ tag: 'env:dev' })).items).toEqual([]);
        expect(await rejection(store.stacks.delete('temp'))).toBeInstanceOf(NotFoundError);
      });
    });

    describe('runs', () => {
      it('create stores a run that get returns unchanged', async () => {
        const run = runDraft({
          parameters: { learningRate: 0.1, layers: [64, 32], name: 'baseline', debug: false, seed: null },
          config: { cache: true, steps: { train: { retries: 2 } } },
          tags: ['team:ml', 'nightly'],
          metadata: { gitSha: 'abc123' },
        });

        expect(await store.runs.create(run)).toEqual(run);
        expect(await store.runs.get(run.id)).toEqual(run);
      });

      it('create refuses a second run with the same id with ConflictError and keeps the first', async () => {
        const run = await store.runs.create(runDraft({ pipeline: 'training' }));

        const error = await rejection(store.runs.create({ ...run, pipeline: 'scoring' }));
        expect(error).toBeInstanceOf(ConflictError);
        expect(messageOf(error)).toContain(run.id);
        expect((await store.runs.get(run.id)).pipeline).toBe('training');
      });

      it('get throws NotFoundError naming an unknown run', async () => {
        const error = await rejection(store.runs.get('run_missing'));
        expect(error).toBeInstanceOf(NotFoundError);
        expect(messageOf(error)).toContain('run_missing');
      });

      it('list returns runs newest first by startedAt', async () => {
        const oldest = await store.runs.create(runDraft({ startedAt: at(10) }));
        const newest = await store.runs.create(runDraft({ startedAt: at(30) }));
        const middle = await store.runs.create(runDraft({ startedAt: at(20) }));

        const page = await store.runs.list();
        expect(page.items.map((run) => run.id)).toEqual([newest.id, middle.id, oldest.id]);
        expect(page.nextCursor).toBeUndefined();
      });

      it('list filters runs by pipeline, status and tag, alone and combined', async () => {
        const trainingA = await store.runs.create(runDraft({ pipeline: 'training', tags: ['team:a'] }));
        const trainingDone = await store.runs.create(runDraft({ pipeline: 'training', status: 'completed' }));
        const scoringA = await store.runs.create(runDraft({ pipeline: 'scoring', tags: ['team:a', 'nightly'] }));

        const ids = async (filter: Parameters<MetadataStore['runs']['list']>[0]) =>
          (await store.runs.list(filter)).items.map((run) => run.id).sort();
        expect(await ids({ pipeline: 'training' })).toEqual([trainingA.id, trainingDone.id].sort());
        expect(await ids({ status: 'running' })).toEqual([trainingA.id, scoringA.id].sort());
        expect(await ids({ tag: 'team:a' })).toEqual([trainingA.id, scoringA.id].sort());
        expect(await ids({ tag: 'nightly' })).toEqual([scoringA.id]);
        expect(await ids({ tag: 'team' })).toEqual([]);
        expect(await ids({ pipeline: 'training', tag: 'team:a' })).toEqual([trainingA.id]);
        expect(await ids({ pipeline: 'scoring', status: 'completed' })).toEqual([]);
      });

      it('list bounds startedAt by since and until, both inclusive', async () => {
        const runs = [];
        for (const second of [0, 10, 20, 30]) runs.push(await store.runs.create(runDraft({ startedAt: at(second) })));

        const page = await store.runs.list({ since: at(10), until: at(20) });
        expect(page.items.map((run) => run.id)).toEqual([runs[2]!.id, runs[1]!.id]);
        expect((await store.runs.list({ since: at(25) })).items.map((run) => run.id)).toEqual([runs[3]!.id]);
        expect((await store.runs.list({ until: at(5) })).items.map((run) => run.id)).toEqual([runs[0]!.id]);
      });

      it('list pages through 25 runs with limit 10, seeing every run exactly once in newest-first order', async () => {
        const created: PipelineRun[] = [];
        // Several runs share a start time so the pages must break ties consistently.
        for (let index = 0; index < 25; index++) {
          created.push(await store.runs.create(runDraft({ startedAt: at(Math.floor(index / 3)) })));
        }

        const pages = await collectPages((cursor) => store.runs.list({ limit: 10, cursor }));
        expect(pages.map((page) => page.length)).toEqual([10, 10, 5]);
        const seen = pages.flat().map((run) => run.id);
        expect(new Set(seen).size).toBe(25);
        expect([...seen].sort()).toEqual(created.map((run) => run.id).sort());
        const startTimes = pages.flat().map((run) => run.startedAt);
        expect(startTimes).toEqual([...startTimes].sort().reverse());
        expect((await store.runs.list()).items.map((run) => run.id)).toEqual(seen);
      });

      it('finish moves a running run to a terminal status with its end time and error', async () => {
        const run = await store.runs.create(runDraft());
        const error: ErrorInfo = { type: 'StepFailedError', message: 'train failed', stack: 'at train()' };

        const finished = await store.runs.finish(run.id, 'failed', at(60), error);

        expect(finished).toEqual({ ...run, status: 'failed', endedAt: at(60), error });
        expect(await store.runs.get(run.id)).toEqual(finished);
      });

      it('finish refuses to move a run that already finished with ConflictError and leaves it unchanged', async () => {
        const run = await store.runs.create(runDraft());
        const cancelled = await store.runs.finish(run.id, 'cancelled', at(5));

        const error = await rejection(store.runs.finish(run.id, 'completed', at(9)));

        expect(error).toBeInstanceOf(ConflictError);
        expect(messageOf(error)).toContain(run.id);
        expect(await store.runs.get(run.id)).toEqual(cancelled);
        expect(cancelled).toMatchObject({ status: 'cancelled', endedAt: at(5) });
      });

      it('finish throws NotFoundError for an unknown run', async () => {
        expect(await rejection(store.runs.finish('run_missing', 'completed', at(1)))).toBeInstanceOf(NotFoundError);
      });

      it('setModelVersion links a run to a model version', async () => {
        const run = await store.runs.create(runDraft());
        const version = await store.models.createVersion('churn');

        await store.runs.setModelVersion(run.id, version.id);

        expect((await store.runs.get(run.id)).modelVersionId).toBe(version.id);
      });
    });

    describe('step runs', () => {
      it('startStep records a running step run with its inputs', async () => {
        const run = await store.runs.create(runDraft());
        const data = await store.artifacts.createVersion(artifactDraft('iris.raw'));
        const step = stepDraft(run.id, {
          inputs: { data: data.id },
          parameters: { depth: 4 },
          metadata: { host: 'a' },
        });

        const started = await store.runs.startStep(step);

        expect(started).toEqual({ ...step, status: 'running' });
        expect(await store.runs.getStep(step.id)).toEqual(started);
        expect(await store.runs.listSteps(run.id)).toEqual([started]);
      });

      it('completeStep completes the step and creates one artifact version per output, numbered per name', async () => {
        const run = await store.runs.create(runDraft());
        const first = await store.runs.startStep(stepDraft(run.id));

        const result = await store.runs.completeStep(
          first.id,
          completion(
            { model: 'iris.model', metrics: 'iris.metrics' },
            { endedAt: at(9), durationMs: 800, attempts: 2 },
          ),
        );

        expect(result.stepRun).toMatchObject({
          id: first.id,
          status: 'completed',
          endedAt: at(9),
          durationMs: 800,
          attempts: 2,
          outputs: { model: result.outputs.model!.id, metrics: result.outputs.metrics!.id },
        });
        expect(result.outputs.model).toMatchObject({
          name: 'iris.model',
          version: 1,
          producerRunId: run.id,
          producerStepRunId: first.id,
        });
        expect(result.outputs.metrics).toMatchObject({ name: 'iris.metrics', version: 1 });
        expect(await store.runs.getStep(first.id)).toEqual(result.stepRun);
        expect(await store.artifacts.getVersionById(result.outputs.model!.id)).toEqual(result.outputs.model);

        const versions: number[] = [];
        for (let index = 0; index < 2; index++) {
          const next = await store.runs.startStep(stepDraft(run.id));
          versions.push(
            (await store.runs.completeStep(next.id, completion({ model: 'iris.model' }))).outputs.model!.version,
          );
        }
        expect(versions).toEqual([2, 3]);
      });

      it('completeStep merges completion metadata into the step run and stores its logs', async () => {
        const run = await store.runs.create(runDraft());
        const step = await store.runs.startStep(stepDraft(run.id, { metadata: { host: 'a', phase: 'start' } }));

        const { stepRun } = await store.runs.completeStep(
          step.id,
          completion({}, { metadata: { phase: 'done', accuracy: 0.97 }, logs: ['loading', 'training'] }),
        );

        expect(stepRun.metadata).toEqual({ host: 'a', phase: 'done', accuracy: 0.97 });
        expect(stepRun.logs).toEqual(['loading', 'training']);
        expect(stepRun.outputs).toEqual({});
      });

      it('completeStep on an unknown step run throws NotFoundError and creates no artifact version', async () => {
        const error = await rejection(store.runs.completeStep('srun_missing', completion({ model: 'iris.model' })));

        expect(error).toBeInstanceOf(NotFoundError);
        expect(messageOf(error)).toContain('srun_missing');
        expect(await rejection(store.artifacts.getVersion('iris.model'))).toBeInstanceOf(NotFoundError);
        expect((await store.artifacts.list()).items).toEqual([]);
      });

      it('completeStep on a step run that already ended throws ConflictError and creates nothing', async () => {
        const run = await store.runs.create(runDraft());
        const completed = await store.runs.startStep(stepDraft(run.id));
        const done = await store.runs.completeStep(completed.id, completion({ model: 'iris.model' }));
        const failed = await store.runs.startStep(stepDraft(run.id));
        await store.runs.endStep(failed.id, 'failed', at(5), { durationMs: 10, attempts: 1 });

        expect(
          await rejection(store.runs.completeStep(completed.id, completion({ model: 'iris.model' }))),
        ).toBeInstanceOf(ConflictError);
        expect(await rejection(store.runs.completeStep(failed.id, completion({ model: 'iris.model' })))).toBeInstanceOf(
          ConflictError,
        );

        expect((await store.artifacts.listVersions('iris.model')).items.map((version) => version.id)).toEqual([
          done.outputs.model!.id,
        ]);
        expect(await store.runs.getStep(completed.id)).toEqual(done.stepRun);
        expect((await store.runs.getStep(failed.id)).status).toBe('failed');
      });

      it('completeStep that lists an output name twice fails and changes nothing', async () => {
        const run = await store.runs.create(runDraft());
        const step = await store.runs.startStep(stepDraft(run.id));
        const outputs = [
          { outputName: 'model', artifact: artifactDraft('iris.model') },
          { outputName: 'model', artifact: artifactDraft('iris.other') },
        ];

        await expect(
          store.runs.completeStep(step.id, { endedAt: at(5), durationMs: 5, attempts: 1, outputs }),
        ).rejects.toThrow();

        expect(await store.runs.getStep(step.id)).toEqual(step);
        expect((await store.artifacts.list()).items).toEqual([]);
      });

      it('recordCachedStep records a cached step run whose outputs are the original versions', async () => {
        const first = await store.runs.create(runDraft());
        const original = await store.runs.startStep(stepDraft(first.id, { cacheKey: 'key-1' }));
        const { stepRun: done } = await store.runs.completeStep(original.id, completion({ model: 'iris.model' }));
        const second = await store.runs.create(runDraft());
        const cached = stepDraft(second.id, {
          status: 'cached',
          cacheKey: 'key-1',
          cachedFrom: done.id,
          outputs: done.outputs,
          startedAt: at(20),
          endedAt: at(20),
          durationMs: 0,
        });

        const recorded = await store.runs.recordCachedStep(cached);

        expect(recorded).toEqual(cached);
        expect(await store.runs.getStep(cached.id)).toEqual(cached);
        expect(recorded.outputs).toEqual(done.outputs);
        expect((await store.artifacts.listVersions('iris.model')).items).toHaveLength(1);
      });

      it('findCacheHit returns the newest completed step run for a key, ignoring cached, failed and running ones', async () => {
        const run = await store.runs.create(runDraft());
        const older = await store.runs.startStep(stepDraft(run.id, { cacheKey: 'key-k', startedAt: at(1) }));
        await store.runs.completeStep(older.id, completion({ model: 'iris.model' }, { endedAt: at(2) }));
        const newer = await store.runs.startStep(stepDraft(run.id, { cacheKey: 'key-k', startedAt: at(3) }));
        const { stepRun: newerDone } = await store.runs.completeStep(
          newer.id,
          completion({ model: 'iris.model' }, { endedAt: at(4) }),
        );
        const failed = await store.runs.startStep(stepDraft(run.id, { cacheKey: 'key-k', startedAt: at(5) }));
        await store.runs.endStep(failed.id, 'failed', at(6), { durationMs: 1, attempts: 3 });
        await store.runs.startStep(stepDraft(run.id, { cacheKey: 'key-k', startedAt: at(7) }));
        await store.runs.recordCachedStep(
          stepDraft(run.id, {
            status: 'cached',
            cacheKey: 'key-k',
            cachedFrom: newer.id,
            outputs: newerDone.outputs,
            startedAt: at(8),
            endedAt: at(8),
          }),
        );

        expect(await store.runs.findCacheHit('key-k')).toEqual(newerDone);
        expect(await store.runs.findCacheHit('key-unknown')).toBeUndefined();
      });

      it('endStep ends a running step run as failed with its error, duration, attempts and logs', async () => {
        const run = await store.runs.create(runDraft());
        const step = await store.runs.startStep(stepDraft(run.id));
        const error: ErrorInfo = { type: 'Error', message: 'out of memory' };

        const ended = await store.runs.endStep(step.id, 'failed', at(30), {
          durationMs: 1500,
          attempts: 3,
          error,
          logs: ['attempt 1', 'attempt 2', 'attempt 3'],
        });

        expect(ended).toEqual({
          ...step,
          status: 'failed',
          endedAt: at(30),
          durationMs: 1500,
          attempts: 3,
          error,
          logs: ['attempt 1', 'attempt 2', 'attempt 3'],
        });
        expect(await store.runs.getStep(step.id)).toEqual(ended);
      });

      it('endStep refuses a step run that already ended with ConflictError', async () => {
        const run = await store.runs.create(runDraft());
        const step = await store.runs.startStep(stepDraft(run.id));
        await store.runs.endStep(step.id, 'cancelled', at(3), { durationMs: 1, attempts: 1 });

        const error = await rejection(store.runs.endStep(step.id, 'failed', at(4), { durationMs: 2, attempts: 1 }));

        expect(error).toBeInstanceOf(ConflictError);
        expect((await store.runs.getStep(step.id)).status).toBe('cancelled');
      });

      it('getStep throws NotFoundError naming an unknown step run', async () => {
        const error = await rejection(store.runs.getStep('srun_missing'));
        expect(error).toBeInstanceOf(NotFoundError);
        expect(messageOf(error)).toContain('srun_missing');
      });

      it('listSteps returns the step runs of one run in start order', async () => {
        const run = await store.runs.create(runDraft());
        const other = await store.runs.create(runDraft());
        const third = await store.runs.startStep(stepDraft(run.id, { stepId: 'evaluate', startedAt: at(3) }));
        const first = await store.runs.startStep(stepDraft(run.id, { stepId: 'load', startedAt: at(1) }));
        const second = await store.runs.startStep(stepDraft(run.id, { stepId: 'train', startedAt: at(2) }));
        await store.runs.startStep(stepDraft(other.id));

        const steps = await store.runs.listSteps(run.id);

        expect(steps.map((step) => step.id)).toEqual([first.id, second.id, third.id]);
        expect(await store.runs.listSteps('run_missing')).toEqual([]);
      });

      it('abandon marks unfinished runs and their running step runs, and returns the ids it changed', async () => {
        const running = await store.runs.create(runDraft({ status: 'running' }));
        const pending = await store.runs.create(runDraft({ status: 'pending' }));
        const completed = await store.runs.create(runDraft({ status: 'completed', endedAt: at(50) }));
        const busyStep = await store.runs.startStep(stepDraft(running.id, { startedAt: at(10) }));
        const doneStep = await store.runs.startStep(stepDraft(running.id));
        const { stepRun: doneStepAfter } = await store.runs.completeStep(doneStep.id, completion({}));
        const error: ErrorInfo = { type: 'RunCancelledError', message: 'interrupted (SIGINT)' };

        const changed = await store.runs.abandon(
          [running.id, pending.id, completed.id, 'run_missing'],
          'cancelled',
          at(100),
          error,
        );

        expect([...changed].sort()).toEqual([running.id, pending.id].sort());
        expect(await store.runs.get(running.id)).toMatchObject({ status: 'cancelled', endedAt: at(100), error });
        expect(await store.runs.get(pending.id)).toMatchObject({ status: 'cancelled', endedAt: at(100) });
        expect(await store.runs.get(completed.id)).toEqual(completed);
        expect(await store.runs.getStep(busyStep.id)).toMatchObject({ status: 'cancelled', endedAt: at(100) });
        expect(await store.runs.getStep(doneStep.id)).toEqual(doneStepAfter);
        expect(await store.runs.abandon([running.id], 'failed', at(200), error)).toEqual([]);
      });
    });

    describe('liveness', () => {
      const executor = {
        kind: 'process' as const,
        host: 'host-a',
        pid: 4242,
        processStartedAt: at(0),
        processStart: '123',
      };
      const future = () => new Date(Date.now() + 60_000).toISOString();
      const past = () => new Date(Date.now() - 1_000).toISOString();

      it('runs and step runs keep their executor identity and lease', async () => {
        const run = await store.runs.create(runDraft({ executor, leaseExpiresAt: at(60) }));
        const step = await store.runs.startStep(stepDraft(run.id, { executor, leaseExpiresAt: future() }));

        expect(await store.runs.get(run.id)).toEqual(run);
        expect(run).toMatchObject({ executor, leaseExpiresAt: at(60) });
        expect(await store.runs.getStep(step.id)).toMatchObject({ executor, leaseExpiresAt: step.leaseExpiresAt });
      });

      it('renewLease extends the lease of an open run and its running step runs, and reports a finished run', async () => {
        const run = await store.runs.create(runDraft({ executor, leaseExpiresAt: at(60) }));
        const step = await store.runs.startStep(stepDraft(run.id, { executor, leaseExpiresAt: at(60) }));

        expect(await store.runs.renewLease(run.id, at(120), [step.id])).toBe(true);
        expect((await store.runs.get(run.id)).leaseExpiresAt).toBe(at(120));
        expect((await store.runs.getStep(step.id)).leaseExpiresAt).toBe(at(120));

        await store.runs.finish(run.id, 'completed', at(130));
        expect(await store.runs.renewLease(run.id, at(240), [step.id])).toBe(false);
        expect((await store.runs.get(run.id)).leaseExpiresAt).toBe(at(120));
      });

      it('startStep and recordCachedStep refuse a run that has already finished with RunFinishedError', async () => {
        const run = await store.runs.create(runDraft());
        const original = await store.runs.startStep(stepDraft(run.id));
        const { stepRun: done } = await store.runs.completeStep(original.id, completion({ model: 'iris.model' }));
        await store.runs.finish(run.id, 'failed', at(10));

        const late = await rejection(store.runs.startStep(stepDraft(run.id, { stepId: 'late' })));
        const lateCached = await rejection(
          store.runs.recordCachedStep(
            stepDraft(run.id, { stepId: 'late', status: 'cached', cachedFrom: done.id, outputs: done.outputs }),
          ),
        );

        expect(late).toBeInstanceOf(RunFinishedError);
        expect(messageOf(late)).toContain(run.id);
        expect(lateCached).toBeInstanceOf(RunFinishedError);
        expect((await store.runs.listSteps(run.id)).map((s) => s.id)).toEqual([original.id]);
      });

      it('a leased startStep refuses a second live attempt at the same step, and names a completed one', async () => {
        const run = await store.runs.create(runDraft());
        const first = await store.runs.startStep(stepDraft(run.id, { stepId: 'score[3]', leaseExpiresAt: future() }));

        const duplicate = await rejection(
          store.runs.startStep(stepDraft(run.id, { stepId: 'score[3]', leaseExpiresAt: future() })),
        );
        expect(duplicate).toBeInstanceOf(StepInProgressError);
        expect((duplicate as StepInProgressError).context.stepRunId).toBe(first.id);

        await store.runs.completeStep(first.id, completion({ loss: 'score.loss.items' }));
        const late = await rejection(
          store.runs.startStep(stepDraft(run.id, { stepId: 'score[3]', leaseExpiresAt: future() })),
        );
        expect(late).toBeInstanceOf(StepAlreadyDoneError);
        expect((late as StepAlreadyDoneError).context.stepRunId).toBe(first.id);
        expect(
          await store.runs.startStep(stepDraft(run.id, { stepId: 'score[4]', leaseExpiresAt: future() })),
        ).toMatchObject({
          status: 'running',
        });
        expect((await store.runs.listSteps(run.id)).filter((s) => s.stepId === 'score[3]')).toHaveLength(1);
      });

      it('latestSteps returns the newest step run of each step id asked for, and leaves out the others', async () => {
        const run = await store.runs.create(runDraft());
        const other = await store.runs.create(runDraft());
        const failed = await store.runs.startStep(
          stepDraft(run.id, { stepId: 'fit', startedAt: at(1), leaseExpiresAt: future() }),
        );
        await store.runs.endStep(failed.id, 'failed', at(2), { durationMs: 1, attempts: 1 });
        const retried = await store.runs.startStep(
          stepDraft(run.id, { stepId: 'fit', startedAt: at(3), leaseExpiresAt: future() }),
        );
        const { stepRun: done } = await store.runs.completeStep(retried.id, completion({ model: 'fit.model' }));
        // Recorded without a lease, as a fan-out's parent is.
        const parent = await store.runs.startStep(stepDraft(run.id, { stepId: 'square', startedAt: at(4) }));
        await store.runs.startStep(stepDraft(other.id, { stepId: 'fit', startedAt: at(9), leaseExpiresAt: future() }));

        const latest = await store.runs.latestSteps(run.id, ['fit', 'square', 'never-ran', 'fit']);
        expect([...latest.keys()].sort()).toEqual(['fit', 'square']);
        expect(latest.get('fit')).toEqual(done);
        expect(latest.get('square')).toMatchObject({ id: parent.id, status: 'running' });
        expect(await store.runs.latestSteps(run.id, [])).toEqual(new Map());
      });

      it('a leased startStep is refused while an unleased step run of the same step id is running', async () => {
        const run = await store.runs.create(runDraft());
        const unleased = await store.runs.startStep(stepDraft(run.id, { stepId: 'score[1]' }));
        const refused = await rejection(
          store.runs.startStep(stepDraft(run.id, { stepId: 'score[1]', leaseExpiresAt: future() })),
        );
        expect(refused).toBeInstanceOf(StepInProgressError);
        expect((refused as StepInProgressError).context.stepRunId).toBe(unleased.id);
      });

      it("latestSteps finds a fan-out's re-planned parent and its items by step id, past 100 of them", async () => {
        const run = await store.runs.create(runDraft());
        await store.runs.startStep(stepDraft(run.id, { stepId: 'square', startedAt: at(1) }));
        const replanned = await store.runs.startStep(stepDraft(run.id, { stepId: 'square', startedAt: at(2) }));
        const ids = Array.from({ length: 120 }, (_, i) => `square[${i}]`);
        const started = new Map<string, StepRun>();
        for (const stepId of ids.filter((id) => id !== 'square[7]')) {
          started.set(
            stepId,
            await store.runs.startStep(stepDraft(run.id, { stepId, startedAt: at(3), leaseExpiresAt: future() })),
          );
        }

        const latest = await store.runs.latestSteps(run.id, ['square', ...ids]);
        expect(latest.size).toBe(120);
        expect(latest.get('square')?.id).toBe(replanned.id);
        expect(latest.has('square[7]')).toBe(false);
        expect([...started].map(([stepId]) => latest.get(stepId)?.id)).toEqual([...started.values()].map((s) => s.id));
      });

      it('a leased startStep takes over from an attempt whose lease expired, and retries after a failure', async () => {
        const run = await store.runs.create(runDraft());
        const lost = await store.runs.startStep(stepDraft(run.id, { leaseExpiresAt: past() }));

        const second = await store.runs.startStep(stepDraft(run.id, { leaseExpiresAt: future() }));
        expect(await store.runs.getStep(lost.id)).toMatchObject({ status: 'failed', error: { type: 'LeaseExpired' } });

        await store.runs.endStep(second.id, 'failed', at(5), { durationMs: 1, attempts: 1 });
        const third = await store.runs.startStep(stepDraft(run.id, { leaseExpiresAt: future() }));
        expect(third.status).toBe('running');
      });

      it('20 concurrent leased starts of one step leave exactly one running', async () => {
        const run = await store.runs.create(runDraft());
        const results = await Promise.allSettled(
          Array.from({ length: 20 }, () => store.runs.startStep(stepDraft(run.id, { leaseExpiresAt: future() }))),
        );

        expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
        for (const r of results) {
          if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(ConflictError);
        }
        expect((await store.runs.listSteps(run.id)).filter((s) => s.status === 'running')).toHaveLength(1);
      });

      it('abandon ends a run with 101 running step runs (more than one transaction takes) and every one of them', async () => {
        const run = await store.runs.create(runDraft());
        for (let index = 0; index < 101; index++)
          await store.runs.startStep(stepDraft(run.id, { stepId: `score[${index}]` }));

        expect(
          await store.runs.abandon([run.id], 'failed', at(100), { type: 'ExecutorLost', message: 'gone' }),
        ).toEqual([run.id]);

        expect((await store.runs.get(run.id)).status).toBe('failed');
        const steps = await store.runs.listSteps(run.id);
        expect(steps).toHaveLength(101);
        expect(steps.filter((s) => s.status !== 'failed')).toEqual([]);
      });
    });

    describe('artifacts', () => {
      it('createVersion numbers versions per artifact name starting at 1 and stores the draft', async () => {
        const draft = artifactDraft('iris.raw', { metadata: { rows: 150 }, tags: ['source:uci'] });
        const first = await store.artifacts.createVersion(draft);
        const second = await store.artifacts.createVersion(artifactDraft('iris.raw'));
        const other = await store.artifacts.createVersion(artifactDraft('iris.test'));

        expect([first.version, second.version, other.version]).toEqual([1, 2, 1]);
        expect(first).toMatchObject(draft);
        expect(typeof first.id).toBe('string');
        expect(first.id).not.toBe(second.id);
        expect(Number.isNaN(Date.parse(first.createdAt))).toBe(false);
      });

      it('createVersion keeps a caller-supplied id and refuses a duplicate id with ConflictError', async () => {
        const version = await store.artifacts.createVersion(artifactDraft('iris.raw', { id: 'av_fixed' }));
        expect(version.id).toBe('av_fixed');

        const error = await rejection(store.artifacts.createVersion(artifactDraft('iris.raw', { id: 'av_fixed' })));

        expect(error).toBeInstanceOf(ConflictError);
        expect(messageOf(error)).toContain('av_fixed');
        expect((await store.artifacts.listVersions('iris.raw')).items).toHaveLength(1);
      });

      it('getVersion returns a version by number, and the latest when the number is omitted or latest', async () => {
        const first = await store.artifacts.createVersion(artifactDraft('iris.model'));
        const second = await store.artifacts.createVersion(artifactDraft('iris.model'));

        expect(await store.artifacts.getVersion('iris.model', 1)).toEqual(first);
        expect(await store.artifacts.getVersion('iris.model')).toEqual(second);
        expect(await store.artifacts.getVersion('iris.model', 'latest')).toEqual(second);
      });

      it('getVersion throws NotFoundError naming the artifact and the missing version', async () => {
        await store.artifacts.createVersion(artifactDraft('iris.model'));

        const missingVersion = await rejection(store.artifacts.getVersion('iris.model', 7));
        expect(missingVersion).toBeInstanceOf(NotFoundError);
        expect(messageOf(missingVersion)).toContain('iris.model');
        expect(messageOf(missingVersion)).toContain('7');

        const missingName = await rejection(store.artifacts.getVersion('nothing.here'));
        expect(missingName).toBeInstanceOf(NotFoundError);
        expect(messageOf(missingName)).toContain('nothing.here');
      });

      it('getVersionById returns a version and throws NotFoundError for an unknown id', async () => {
        const version = await store.artifacts.createVersion(artifactDraft('iris.model'));

        expect(await store.artifacts.getVersionById(version.id)).toEqual(version);
        const error = await rejection(store.artifacts.getVersionById('av_missing'));
        expect(error).toBeInstanceOf(NotFoundError);
        expect(messageOf(error)).toContain('av_missing');
      });

      it('getVersionsByIds returns the known versions and skips unknown ids', async () => {
        const first = await store.artifacts.createVersion(artifactDraft('iris.model'));
        const second = await store.artifacts.createVersion(artifactDraft('iris.raw'));
        await store.artifacts.createVersion(artifactDraft('iris.raw'));

        const found = await store.artifacts.getVersionsByIds([second.id, 'av_missing', first.id]);

        expect(sortById(found)).toEqual(sortById([first, second]));
        expect(await store.artifacts.getVersionsByIds([])).toEqual([]);
      });

      it('list summarises each artifact name with its latest version, version count and tags', async () => {
        await store.artifacts.createVersion(artifactDraft('iris.raw', { tags: ['source:uci'] }));
        const latestRaw = await store.artifacts.createVersion(artifactDraft('iris.raw', { tags: ['split:full'] }));
        const model = await store.artifacts.createVersion(artifactDraft('iris.model'));

        const summaries = (await store.artifacts.list()).items.sort((a, b) => a.name.localeCompare(b.name));

        expect(summaries).toHaveLength(2);
        expect(summaries[0]).toMatchObject({ name: 'iris.model', latestVersion: 1, versionCount: 1, tags: [] });
        expect(summaries[0]!.updatedAt >= model.createdAt).toBe(true);
        expect(summaries[1]).toMatchObject({ name: 'iris.raw', latestVersion: 2, versionCount: 2 });
        expect([...summaries[1]!.tags].sort()).toEqual(['source:uci', 'split:full']);
        expect(summaries[1]!.updatedAt >= latestRaw.createdAt).toBe(true);
      });

      it('list filters artifact names by a tag carried by any of their versions and pages through them', async () => {
        const names = Array.from({ length: 12 }, (_, index) => `dataset-${String(index).padStart(2, '0')}`);
        for (const [index, artifactName] of names.entries()) {
          await store.artifacts.createVersion(artifactDraft(artifactName));
          await store.artifacts.createVersion(artifactDraft(artifactName, { tags: index < 3 ? ['env:prod'] : [] }));
        }

        const pages = await collectPages((cursor) => store.artifacts.list({ limit: 5, cursor }));
        expect(pages.map((page) => page.length)).toEqual([5, 5, 2]);
        expect(
          pages
            .flat()
            .map((summary) => summary.name)
            .sort(),
        ).toEqual(names);
        const tagged = await store.artifacts.list({ tag: 'env:prod' });
        expect(tagged.items.map((summary) => summary.name).sort()).toEqual(names.slice(0, 3));
        expect(tagged.items.every((summary) => summary.versionCount === 2)).toBe(true);
      });

      it('listVersions returns versions newest first, paged', async () => {
        for (let index = 0; index < 7; index++) await store.artifacts.createVersion(artifactDraft('iris.model'));
        await store.artifacts.createVersion(artifactDraft('iris.other'));

        const pages = await collectPages((cursor) => store.artifacts.listVersions('iris.model', { limit: 3, cursor }));

        expect(pages.map((page) => page.map((version) => version.version))).toEqual([[7, 6, 5], [4, 3, 2], [1]]);
        expect(pages.flat().every((version) => version.name === 'iris.model')).toBe(true);
        expect((await store.artifacts.listVersions('nothing.here')).items).toEqual([]);
      });

      it('listVersions filters by tag', async () => {
        await store.artifacts.createVersion(artifactDraft('iris.model', { tags: ['env:prod'] }));
        await store.artifacts.createVersion(artifactDraft('iris.model'));
        await store.artifacts.createVersion(artifactDraft('iris.model', { tags: ['env:prod', 'best'] }));

        const page = await store.artifacts.listVersions('iris.model', { tag: 'env:prod' });

        expect(page.items.map((version) => version.version)).toEqual([3, 1]);
      });

      it('consumers returns the step runs that read a version as an input', async () => {
        const run = await store.runs.create(runDraft());
        const data = await store.artifacts.createVersion(artifactDraft('iris.raw'));
        const other = await store.artifacts.createVersion(artifactDraft('iris.raw'));
        const train = await store.runs.startStep(stepDraft(run.id, { stepId: 'train', inputs: { data: data.id } }));
        await store.runs.startStep(stepDraft(run.id, { stepId: 'other', inputs: { data: other.id } }));
        const evaluate = await store.runs.startStep(
          stepDraft(run.id, { stepId: 'evaluate', inputs: { reference: data.id, current: other.id } }),
        );

        const consumers = await store.artifacts.consumers(data.id);

        expect(sortById(consumers)).toEqual(sortById([train, evaluate]));
        const unused = await store.artifacts.createVersion(artifactDraft('iris.unused'));
        expect(await store.artifacts.consumers(unused.id)).toEqual([]);
      });

      it('addTags adds each tag once and makes it filterable', async () => {
        const version = await store.artifacts.createVersion(artifactDraft('iris.model', { tags: ['team:ml'] }));
        await store.artifacts.createVersion(artifactDraft('iris.model'));

        await store.artifacts.addTags(version.id, ['env:prod', 'team:ml']);

        expect([...(await store.artifacts.getVersionById(version.id)).tags].sort()).toEqual(['env:prod', 'team:ml']);
        expect((await store.artifacts.listVersions('iris.model', { tag: 'env:prod' })).items.map((v) => v.id)).toEqual([
          version.id,
        ]);
        expect((await store.artifacts.list({ tag: 'env:prod' })).items.map((summary) => summary.name)).toEqual([
          'iris.model',
        ]);
      });

      it('addTags throws NotFoundError for an unknown version', async () => {
        expect(await rejection(store.artifacts.addTags('av_missing', ['x']))).toBeInstanceOf(NotFoundError);
      });
    });

    describe('logMetadata', () => {
      const seeded: Metadata = { keep: 1, replace: 'old', nested: { a: 1 } };

      const targets: {
        kind: MetadataTarget['kind'];
        seed: (store: MetadataStore) => Promise<{ target: MetadataTarget; read: () => Promise<Metadata> }>;
      }[] = [
        {
          kind: 'run',
          seed: async (store) => {
            const run = await store.runs.create(runDraft({ metadata: seeded }));
            return { target: { kind: 'run', id: run.id }, read: async () => (await store.runs.get(run.id)).metadata };
          },
        },
        {
          kind: 'step_run',
          seed: async (store) => {
            const run = await store.runs.create(runDraft());
            const step = await store.runs.startStep(stepDraft(run.id, { metadata: seeded }));
            return {
              target: { kind: 'step_run', id: step.id },
              read: async () => (await store.runs.getStep(step.id)).metadata,
            };
          },
        },
        {
          kind: 'artifact_version',
          seed: async (store) => {
            const version = await store.artifacts.createVersion(artifactDraft('iris.model', { metadata: seeded }));
            return {
              target: { kind: 'artifact_version', id: version.id },
              read: async () => (await store.artifacts.getVersionById(version.id)).metadata,
            };
          },
        },
        {
          kind: 'model',
          seed: async (store) => {
            await store.models.create({ name: 'churn', metadata: seeded });
            return {
              target: { kind: 'model', name: 'churn' },
              read: async () => (await store.models.get('churn')).metadata,
            };
          },
        },
        {
          kind: 'model_version',
          seed: async (store) => {
            const version = await store.models.createVersion('churn', { metadata: seeded });
            return {
              target: { kind: 'model_version', id: version.id },
              read: async () => (await store.models.getVersionById(version.id)).metadata,
            };
          },
        },
      ];

      for (const { kind, seed } of targets) {
        it(`merges keys shallowly into the metadata of a target of kind ${kind}`, async () => {
          const { target, read } = await seed(store);

          await store.logMetadata(target, { replace: 'new', added: true, nested: { b: 2 } });
          expect(await read()).toEqual({ keep: 1, replace: 'new', added: true, nested: { b: 2 } });

          await store.logMetadata(target, { later: [1, 2] });
          expect(await read()).toEqual({ keep: 1, replace: 'new', added: true, nested: { b: 2 }, later: [1, 2] });
        });
      }

      it('throws NotFoundError for a target that does not exist, for every target kind', async () => {
        const missing: MetadataTarget[] = [
          { kind: 'run', id: 'run_missing' },
          { kind: 'step_run', id: 'srun_missing' },
          { kind: 'artifact_version', id: 'av_missing' },
          { kind: 'model_version', id: 'mv_missing' },
          { kind: 'model', name: 'missing-model' },
        ];
        for (const target of missing) {
          expect(await rejection(store.logMetadata(target, { x: 1 }))).toBeInstanceOf(NotFoundError);
        }
      });
    });

    describe('models', () => {
      it('create creates a model with no versions and refuses a duplicate name with ConflictError', async () => {
        const model = await store.models.create({
          name: 'churn',
          description: 'Customer churn',
          tags: ['team:growth'],
          metadata: { owner: 'ana' },
        });

        expect(model).toMatchObject({
          name: 'churn',
          description: 'Customer churn',
          tags: ['team:growth'],
          metadata: { owner: 'ana' },
          latestVersion: 0,
        });
        expect(await store.models.get('churn')).toEqual(model);
        const error = await rejection(store.models.create({ name: 'churn', description: 'again' }));
        expect(error).toBeInstanceOf(ConflictError);
        expect(messageOf(error)).toContain('churn');
        expect((await store.models.get('churn')).description).toBe('Customer churn');
      });

      it('ensure returns an existing model unchanged and creates a missing one', async () => {
        const existing = await store.models.create({ name: 'churn', description: 'first' });

        expect(await store.models.ensure({ name: 'churn', description: 'second' })).toEqual(existing);
        const created = await store.models.ensure({ name: 'fraud', tags: ['team:risk'] });
        expect(created).toMatchObject({ name: 'fraud', tags: ['team:risk'], latestVersion: 0 });
        expect(await store.models.get('fraud')).toEqual(created);
      });

      it('get throws NotFoundError naming an unknown model', async () => {
        const error = await rejection(store.models.get('missing-model'));
        expect(error).toBeInstanceOf(NotFoundError);
        expect(messageOf(error)).toContain('missing-model');
      });

      it('list returns every model once across pages and filters by tag', async () => {
        const names = ['alpha', 'beta', 'gamma', 'delta', 'epsilon'];
        for (const [index, modelName] of names.entries()) {
          await store.models.create({ name: modelName, tags: index < 2 ? ['team:a'] : ['team:b'] });
        }

        const pages = await collectPages((cursor) => store.models.list({ limit: 2, cursor }));
        expect(pages.map((page) => page.length)).toEqual([2, 2, 1]);
        expect(
          pages
            .flat()
            .map((model) => model.name)
            .sort(),
        ).toEqual([...names].sort());
        const tagged = await store.models.list({ tag: 'team:a' });
        expect(tagged.items.map((model) => model.name).sort()).toEqual(['alpha', 'beta']);
      });

      it('createVersion numbers versions per model from 1 and creates a missing model', async () => {
        const first = await store.models.createVersion('churn');
        const second = await store.models.createVersion('churn');
        const other = await store.models.createVersion('fraud');

        expect([first.number, second.number, other.number]).toEqual([1, 2, 1]);
        expect(first).toMatchObject({ model: 'churn', aliases: [], tags: [], metadata: {}, artifacts: [], runIds: [] });
        expect(first.stage).toBeUndefined();
        expect((await store.models.get('churn')).latestVersion).toBe(2);
        expect((await store.models.get('fraud')).latestVersion).toBe(1);
      });

      it('createVersion stores name, description, tags and metadata, and links the run it names', async () => {
        const run = await store.runs.create(runDraft());

        const version = await store.models.createVersion('churn', {
          name: '2026-q1-baseline',
          description: 'Gradient boosting baseline',
          tags: ['algo:gbm'],
          metadata: { auc: 0.91 },
          runId: run.id,
        });

        expect(version).toMatchObject({
          model: 'churn',
          number: 1,
          name: '2026-q1-baseline',
          description: 'Gradient boosting baseline',
          tags: ['algo:gbm'],
          metadata: { auc: 0.91 },
          runIds: [run.id],
        });
        expect(await store.models.getVersionById(version.id)).toEqual(version);
      });

      it('createVersion refuses a name the model already uses with ConflictError and creates no version', async () => {
        await store.models.createVersion('churn', { name: 'baseline' });

        const error = await rejection(store.models.createVersion('churn', { name: 'baseline' }));

        expect(error).toBeInstanceOf(ConflictError);
        expect(messageOf(error)).toContain('baseline');
        expect((await store.models.get('churn')).latestVersion).toBe(1);
        expect((await store.models.listVersions('churn')).items).toHaveLength(1);
        expect((await store.models.createVersion('fraud', { name: 'baseline' })).name).toBe('baseline');
      });

      it('getVersion resolves a number, a version name and latest', async () => {
        const first = await store.models.createVersion('churn', { name: 'baseline' });
        const second = await store.models.createVersion('churn');

        expect(await store.models.getVersion('churn', 1)).toEqual(first);
        expect(await store.models.getVersion('churn', 'baseline')).toEqual(first);
        expect(await store.models.getVersion('churn', 'latest')).toEqual(second);
      });

      it('getVersion resolves staging, production, archived (the newest archived) and an alias', async () => {
        for (let index = 0; index < 4; index++) await promotableVersion(store, 'churn');
        await store.models.setStage('churn', 1, 'archived', { actor: 'ana' });
        await store.models.setStage('churn', 2, 'archived', { actor: 'ana' });
        await store.models.setStage('churn', 3, 'production', { actor: 'ana' });
        await store.models.setStage('churn', 4, 'staging', { actor: 'ana' });
        await store.models.setAlias('churn', 'champion', 3, { actor: 'ana' });

        expect((await store.models.getVersion('churn', 'staging')).number).toBe(4);
        expect((await store.models.getVersion('churn', 'production')).number).toBe(3);
        expect((await store.models.getVersion('churn', 'archived')).number).toBe(2);
        expect(await store.models.getVersion('churn', 'champion')).toMatchObject({
          number: 3,
          stage: 'production',
          aliases: ['champion'],
        });
      });

      it('getVersion on an empty stage throws NotFoundError naming the model and the stage', async () => {
        await store.models.createVersion('churn');

        for (const stage of ['staging', 'production', 'archived']) {
          const error = await rejection(store.models.getVersion('churn', stage));
          expect(error).toBeInstanceOf(NotFoundError);
          expect(messageOf(error)).toContain('churn');
          expect(messageOf(error)).toContain(stage);
        }
      });

      it('getVersion throws NotFoundError naming an unknown number, name or alias, or an unknown model', async () => {
        await store.models.createVersion('churn');

        for (const ref of [7, 'no-such-name']) {
          const error = await rejection(store.models.getVersion('churn', ref));
          expect(error).toBeInstanceOf(NotFoundError);
          expect(messageOf(error)).toContain('churn');
          expect(messageOf(error)).toContain(String(ref));
        }
        const missingModel = await rejection(store.models.getVersion('missing-model', 'latest'));
        expect(missingModel).toBeInstanceOf(NotFoundError);
        expect(messageOf(missingModel)).toContain('missing-model');
      });

      it('getVersionById returns a version and throws NotFoundError for an unknown id', async () => {
        const version = await store.models.createVersion('churn');

        expect(await store.models.getVersionById(version.id)).toEqual(version);
        const error = await rejection(store.models.getVersionById('mv_missing'));
        expect(error).toBeInstanceOf(NotFoundError);
        expect(messageOf(error)).toContain('mv_missing');
      });

      it('listVersions returns versions newest first and filters by stage and tag', async () => {
        for (let index = 1; index <= 5; index++) {
          await promotableVersion(store, 'churn', { tags: index % 2 === 1 ? ['algo:gbm'] : [] });
        }
        await store.models.createVersion('fraud');
        await store.models.setStage('churn', 1, 'archived', { actor: 'ana' });
        await store.models.setStage('churn', 3, 'archived', { actor: 'ana' });
        await store.models.setStage('churn', 4, 'production', { actor: 'ana' });

        const numbers = async (filter?: Parameters<MetadataStore['models']['listVersions']>[1]) =>
          (await store.models.listVersions('churn', filter)).items.map((version) => version.number);
        expect(await numbers()).toEqual([5, 4, 3, 2, 1]);
        expect(await numbers({ stage: 'archived' })).toEqual([3, 1]);
        expect(await numbers({ stage: 'production' })).toEqual([4]);
        expect(await numbers({ tag: 'algo:gbm' })).toEqual([5, 3, 1]);
        expect(await numbers({ stage: 'archived', tag: 'algo:gbm' })).toEqual([3, 1]);
      });

      it('listVersions pages through versions newest first', async () => {
        for (let index = 0; index < 5; index++) await store.models.createVersion('churn');

        const pages = await collectPages((cursor) => store.models.listVersions('churn', { limit: 2, cursor }));

        expect(pages.map((page) => page.map((version) => version.number))).toEqual([[5, 4], [3, 2], [1]]);
      });

      it('linkArtifact links artifact versions by name, and linking a name again replaces its version', async () => {
        const version = await store.models.createVersion('churn');
        const data = await store.artifacts.createVersion(artifactDraft('churn.data'));
        const firstModel = await store.artifacts.createVersion(artifactDraft('churn.model'));
        const secondModel = await store.artifacts.createVersion(artifactDraft('churn.model'));

        await store.models.linkArtifact(version.id, 'data', data);
        await store.models.linkArtifact(version.id, 'model', firstModel);
        await store.models.linkArtifact(version.id, 'model', secondModel);

        const linked = (await store.models.getVersionById(version.id)).artifacts;
        expect([...linked].sort((a, b) => a.artifactName.localeCompare(b.artifactName))).toEqual([
          { role: 'data', artifactName: 'churn.data', artifactVersionId: data.id },
          { role: 'model', artifactName: 'churn.model', artifactVersionId: secondModel.id },
        ]);
        expect(await rejection(store.models.linkArtifact('mv_missing', 'data', data))).toBeInstanceOf(NotFoundError);
      });

      it('linkRun links each run to a version once', async () => {
        const version = await store.models.createVersion('churn');
        const training = await store.runs.create(runDraft());
        const evaluation = await store.runs.create(runDraft());

        await store.models.linkRun(version.id, training.id);
        await store.models.linkRun(version.id, evaluation.id);
        await store.models.linkRun(version.id, training.id);

        expect([...(await store.models.getVersionById(version.id)).runIds].sort()).toEqual(
          [training.id, evaluation.id].sort(),
        );
        expect(await rejection(store.models.linkRun('mv_missing', training.id))).toBeInstanceOf(NotFoundError);
      });

      it('setStage moves a version into a free stage and records each change', async () => {
        await promotableVersion(store, 'churn');

        const toStaging = await store.models.setStage('churn', 1, 'staging', { actor: 'ana', reason: 'candidate' });
        const toProduction = await store.models.setStage('churn', 1, 'production', { actor: 'bo' });

        expect(toStaging).toHaveLength(1);
        expect(toStaging[0]).toMatchObject({
          model: 'churn',
          versionNumber: 1,
          kind: 'stage',
          toStage: 'staging',
          actor: 'ana',
          reason: 'candidate',
        });
        expect(toStaging[0]!.fromStage).toBeUndefined();
        expect(toProduction).toEqual([
          expect.objectContaining({ versionNumber: 1, fromStage: 'staging', toStage: 'production', actor: 'bo' }),
        ]);
        expect((await store.models.getVersion('churn', 1)).stage).toBe('production');
        expect((await store.models.history('churn')).items).toEqual([...toStaging, ...toProduction]);
      });

      it('setStage into a held stage without force throws ConflictError naming the holder and changes nothing', async () => {
        for (let index = 0; index < 5; index++) await promotableVersion(store, 'churn');
        await store.models.setStage('churn', 3, 'production', { actor: 'ana' });
        const historyBefore = (await store.models.history('churn')).items;

        const error = await rejection(store.models.setStage('churn', 5, 'production', { actor: 'bo' }));

        expect(error).toBeInstanceOf(ConflictError);
        expect(messageOf(error)).toContain('churn');
        expect(messageOf(error)).toMatch(/\b3\b/);
        expect((await store.models.getVersion('churn', 3)).stage).toBe('production');
        expect((await store.models.getVersion('churn', 5)).stage).toBeUndefined();
        expect((await store.models.history('churn')).items).toEqual(historyBefore);
      });

      it('setStage with force archives the holder and records both changes, the holder first', async () => {
        for (let index = 0; index < 5; index++) await promotableVersion(store, 'churn');
        await store.models.setStage('churn', 3, 'production', { actor: 'ana' });

        const changes = await store.models.setStage('churn', 5, 'production', {
          actor: 'bo',
          force: true,
          reason: 'better auc',
        });

        expect(changes).toEqual([
          expect.objectContaining({ versionNumber: 3, kind: 'stage', fromStage: 'production', toStage: 'archived' }),
          expect.objectContaining({ versionNumber: 5, kind: 'stage', toStage: 'production', actor: 'bo' }),
        ]);
        expect(changes[1]!.fromStage).toBeUndefined();
        expect((await store.models.getVersion('churn', 3)).stage).toBe('archived');
        expect((await store.models.getVersion('churn', 'production')).number).toBe(5);
        expect((await store.models.history('churn')).items.slice(-2)).toEqual(changes);
      });

      it('setStage to the stage a version already has is a no-op returning no changes', async () => {
        await promotableVersion(store, 'churn');
        await store.models.setStage('churn', 1, 'production', { actor: 'ana' });

        expect(await store.models.setStage('churn', 1, 'production', { actor: 'ana' })).toEqual([]);
        expect((await store.models.history('churn')).items).toHaveLength(1);
        expect((await store.models.getVersion('churn', 1)).stage).toBe('production');
      });

      it('setStage into archived never conflicts with other archived versions', async () => {
        for (let index = 0; index < 3; index++) await store.models.createVersion('churn');

        for (const number of [1, 2, 3]) await store.models.setStage('churn', number, 'archived', { actor: 'ana' });

        expect((await store.models.listVersions('churn', { stage: 'archived' })).items).toHaveLength(3);
      });

      it('setStage throws NotFoundError for a version the model does not have', async () => {
        await store.models.createVersion('churn');

        const error = await rejection(store.models.setStage('churn', 9, 'staging', { actor: 'ana' }));

        expect(error).toBeInstanceOf(NotFoundError);
        expect(messageOf(error)).toContain('9');
        expect((await store.models.history('churn')).items).toEqual([]);
      });

      describe('compare-and-set (expectedHolder)', () => {
        it('refuses with StageHeldError naming the actual holder when the stage is not held as expected, changing nothing', async () => {
          for (let index = 0; index < 3; index++) await promotableVersion(store, 'churn');
          await store.models.setStage('churn', 1, 'production', { actor: 'ana', expectedHolder: null });
          const historyBefore = (await store.models.history('churn')).items;

          for (const expectedHolder of [null, 2]) {
            const error = await rejection(
              store.models.setStage('churn', 3, 'production', { actor: 'bo', expectedHolder, force: true }),
            );
            expect(error).toBeInstanceOf(StageHeldError);
            expect(error).toBeInstanceOf(ConflictError);
            expect(messageOf(error)).toContain('"production" is held by version 1');
            expect(messageOf(error)).toContain('read the holder again');
            expect((error as StageHeldError).context).toMatchObject({ model: 'churn', stage: 'production', holder: 1 });
          }
          expect((await store.models.getVersion('churn', 'production')).number).toBe(1);
          expect((await store.models.history('churn')).items).toEqual(historyBefore);
        });

        it('refuses an expected holder when the stage is free, saying it is free', async () => {
          await promotableVersion(store, 'churn');

          const error = await rejection(
            store.models.setStage('churn', 1, 'staging', { actor: 'bo', expectedHolder: 4 }),
          );

          expect(error).toBeInstanceOf(StageHeldError);
          expect(messageOf(error)).toContain('"staging" is free, not held by version 4');
          expect((error as StageHeldError).context).toMatchObject({ model: 'churn', stage: 'staging', holder: null });
          expect((await store.models.getVersion('churn', 1)).stage).toBeUndefined();
        });

        it('takes the stage from the holder the caller named, without force, archiving it', async () => {
          for (let index = 0; index < 2; index++) await promotableVersion(store, 'churn');
          await store.models.setStage('churn', 1, 'production', { actor: 'ana' });

          const changes = await store.models.setStage('churn', 2, 'production', { actor: 'bo', expectedHolder: 1 });

          expect(changes).toEqual([
            expect.objectContaining({ versionNumber: 1, fromStage: 'production', toStage: 'archived', actor: 'bo' }),
            expect.objectContaining({ versionNumber: 2, toStage: 'production', actor: 'bo' }),
          ]);
          expect((await store.models.getVersion('churn', 'production')).number).toBe(2);
        });

        it('20 concurrent promotions of different versions without force: exactly one wins, nineteen StageHeldErrors name it', async () => {
          for (let index = 0; index < 20; index++) await promotableVersion(store, 'churn');

          const settled = await Promise.allSettled(
            range(1, 20).map((number) =>
              store.models.setStage('churn', number, 'production', { actor: `actor-${number}`, expectedHolder: null }),
            ),
          );

          const won = settled.filter((result) => result.status === 'fulfilled');
          const lost = settled.flatMap((result) => (result.status === 'rejected' ? [result.reason] : []));
          expect(won).toHaveLength(1);
          expect(lost).toHaveLength(19);
          const holder = (await store.models.getVersion('churn', 'production')).number;
          for (const error of lost) {
            expect(error).toBeInstanceOf(StageHeldError);
            expect((error as StageHeldError).context).toMatchObject({ stage: 'production', holder });
            expect(messageOf(error)).toContain(`held by version ${holder}`);
          }
          expect((await store.models.listVersions('churn', { stage: 'production' })).items).toHaveLength(1);
          expect((await store.models.history('churn', { limit: 100 })).items).toHaveLength(1);
        });
      });

      describe('production policy', () => {
        const refusal = async (promise: Promise<unknown>, pattern: RegExp) => {
          const error = await rejection(promise);
          expect(error).toBeInstanceOf(PromotionRefusedError);
          expect(messageOf(error)).toMatch(pattern);
          return error as PromotionRefusedError;
        };

        it('refuses a version without a producing run, even with force, and allows it into staging', async () => {
          const version = await store.models.createVersion('churn');
          await store.models.linkArtifact(version.id, 'model', await store.artifacts.createVersion(artifactDraft('m')));

          await refusal(
            store.models.setStage('churn', 1, 'production', { actor: 'ana', force: true }),
            /version 1 cannot go to production: it has no producing run/,
          );
          await store.models.setStage('churn', 1, 'staging', { actor: 'ana' });
          expect((await store.models.getVersion('churn', 1)).stage).toBe('staging');
          expect((await store.models.history('churn')).items).toHaveLength(1);
        });

        it('refuses a version whose producing run has not completed, naming the run and its status', async () => {
          for (const status of ['running', 'failed'] as const) {
            const run = await store.runs.create(runDraft());
            if (status === 'failed') await store.runs.finish(run.id, 'failed', at(9));
            const version = await store.models.createVersion('churn', { runId: run.id });
            await store.models.linkArtifact(
              version.id,
              'model',
              await store.artifacts.createVersion(artifactDraft('m')),
            );

            const error = await refusal(
              store.models.setStage('churn', version.number, 'production', { actor: 'ana' }),
              new RegExp(`producing run "${run.id}" is ${status}, not completed`),
            );
            expect(error.context).toMatchObject({
              model: 'churn',
              stage: 'production',
              runId: run.id,
              runStatus: status,
            });
          }
          await expect(store.models.getVersion('churn', 'production')).rejects.toBeInstanceOf(NotFoundError);
        });

        it('lets a running run promote its own version (a promotion gate step), and no other run', async () => {
          const run = await store.runs.create(runDraft());
          const version = await store.models.createVersion('churn', { runId: run.id });
          await store.models.linkArtifact(version.id, 'model', await store.artifacts.createVersion(artifactDraft('m')));

          await refusal(
            store.models.setStage('churn', 1, 'production', { actor: 'gate', runId: 'run_other' }),
            /is running, not completed/,
          );
          await store.models.setStage('churn', 1, 'production', { actor: 'gate', runId: run.id });
          expect((await store.models.getVersion('churn', 'production')).number).toBe(1);
        });

        it('refuses a version that links no artifact in role "model"', async () => {
          const version = await promotableVersion(store, 'churn', { withModelArtifact: false });
          await store.models.linkArtifact(version.id, 'data', await store.artifacts.createVersion(artifactDraft('d')));

          await refusal(
            store.models.setStage('churn', 1, 'production', { actor: 'ana', force: true }),
            /links no artifact in role "model"/,
          );
        });
      });

      describe('promotion gate', () => {
        it('stores the gate on the model and refuses a malformed one with ValidationError', async () => {
          const model = await store.models.create({
            name: 'churn',
            promotionGate: { metric: 'auc', direction: 'max' },
          });
          expect(model.promotionGate).toEqual({ metric: 'auc', direction: 'max' });
          expect((await store.models.get('churn')).promotionGate).toEqual({ metric: 'auc', direction: 'max' });
          const bad = await rejection(
            store.models.create({ name: 'fraud', promotionGate: { metric: 'auc', direction: 'up' as 'max' } }),
          );
          expect(bad).toBeInstanceOf(ValidationError);
          expect(await rejection(store.models.get('fraud'))).toBeInstanceOf(NotFoundError);
          expect((await store.models.setPromotionGate('churn', null)).promotionGate).toBeUndefined();
          expect((await store.models.get('churn')).promotionGate).toBeUndefined();
          expect(await rejection(store.models.setPromotionGate('nope', null))).toBeInstanceOf(NotFoundError);
        });

        it('promotes to production only a version whose metric beats the holder, force or not', async () => {
          await store.models.create({ name: 'churn', promotionGate: { metric: 'accuracy', direction: 'max' } });
          await promotableVersion(store, 'churn', { metadata: { accuracy: 0.95 } });
          await promotableVersion(store, 'churn', { metadata: { accuracy: 0.93 } });
          await promotableVersion(store, 'churn', { metadata: { accuracy: 0.97 } });
          await promotableVersion(store, 'churn', { metadata: {} });
          await store.models.setStage('churn', 1, 'production', { actor: 'ana' });

          const worse = await rejection(store.models.setStage('churn', 2, 'production', { actor: 'bo', force: true }));
          expect(worse).toBeInstanceOf(PromotionRefusedError);
          expect(messageOf(worse)).toContain("its accuracy 0.93 does not beat version 1's 0.95 (higher is better)");
          expect((worse as PromotionRefusedError).context).toMatchObject({ holder: 1, metric: 'accuracy' });
          const unmeasured = await rejection(
            store.models.setStage('churn', 4, 'production', { actor: 'bo', force: true }),
          );
          expect(messageOf(unmeasured)).toContain('no numeric "accuracy" metadata');
          expect((await store.models.getVersion('churn', 'production')).number).toBe(1);

          await store.models.setStage('churn', 3, 'production', { actor: 'bo', expectedHolder: 1 });
          expect((await store.models.getVersion('churn', 'production')).number).toBe(3);
          // Staging is not gated.
          await store.models.setStage('churn', 2, 'staging', { actor: 'bo' });
        });

        it('reads "min" as lower is better, and sees metrics logged after the version was made', async () => {
          await store.models.create({ name: 'churn', promotionGate: { metric: 'loss', direction: 'min' } });
          for (const loss of [0.3, 0.4, 0.2]) await promotableVersion(store, 'churn', { metadata: { loss } });
          await store.models.setStage('churn', 1, 'production', { actor: 'ana' });

          expect(
            await rejection(store.models.setStage('churn', 2, 'production', { actor: 'a', force: true })),
          ).toBeInstanceOf(PromotionRefusedError);
          await store.logMetadata(
            { kind: 'model_version', id: (await store.models.getVersion('churn', 2)).id },
            { loss: 0.1 },
          );
          await store.models.setStage('churn', 2, 'production', { actor: 'a', force: true });
          expect((await store.models.getVersion('churn', 'production')).number).toBe(2);
        });
      });

      it('setAlias points an alias at a version and moves it between versions, recording the previous version', async () => {
        await store.models.createVersion('churn');
        await store.models.createVersion('churn');

        const first = await store.models.setAlias('churn', 'champion', 1, { actor: 'ana' });
        const moved = await store.models.setAlias('churn', 'champion', 2, { actor: 'bo', reason: 'won a/b test' });

        expect(first).toMatchObject({
          model: 'churn',
          versionNumber: 1,
          kind: 'alias',
          alias: 'champion',
          actor: 'ana',
        });
        expect(first.previousVersion).toBeUndefined();
        expect(moved).toMatchObject({ versionNumber: 2, kind: 'alias', alias: 'champion', previousVersion: 1 });
        expect(moved.toStage).toBeUndefined();
        expect((await store.models.getVersion('churn', 'champion')).number).toBe(2);
        expect((await store.models.getVersion('churn', 1)).aliases).toEqual([]);
        expect((await store.models.getVersion('churn', 2)).aliases).toEqual(['champion']);
        expect((await store.models.history('churn')).items).toEqual([first, moved]);
      });

      it('setAlias refuses aliases that would read as a stage, latest or a version number', async () => {
        await store.models.createVersion('churn');

        for (const alias of ['production', 'staging', 'archived', 'latest', '2']) {
          expect(await rejection(store.models.setAlias('churn', alias, 1, { actor: 'ana' }))).toBeInstanceOf(
            ValidationError,
          );
        }
        expect((await store.models.history('churn')).items).toEqual([]);
      });

      it('removeAlias removes an alias and records the change; an unknown alias throws NotFoundError', async () => {
        await store.models.createVersion('churn');
        await store.models.setAlias('churn', 'champion', 1, { actor: 'ana' });

        const removed = await store.models.removeAlias('churn', 'champion', { actor: 'bo' });

        expect(removed).toMatchObject({
          model: 'churn',
          versionNumber: 1,
          kind: 'alias-removed',
          alias: 'champion',
          actor: 'bo',
        });
        expect(removed.previousVersion).toBeUndefined();
        expect((await store.models.getVersion('churn', 1)).aliases).toEqual([]);
        expect(await rejection(store.models.getVersion('churn', 'champion'))).toBeInstanceOf(NotFoundError);
        expect((await store.models.history('churn')).items.at(-1)).toEqual(removed);
        const error = await rejection(store.models.removeAlias('churn', 'champion', { actor: 'bo' }));
        expect(error).toBeInstanceOf(NotFoundError);
        expect(messageOf(error)).toContain('champion');
      });

      it('history lists stage and alias changes oldest first, paged', async () => {
        for (let index = 0; index < 3; index++) await promotableVersion(store, 'churn');
        const made: StageChange[] = [
          ...(await store.models.setStage('churn', 1, 'production', { actor: 'ana' })),
          await store.models.setAlias('churn', 'champion', 1, { actor: 'ana' }),
          ...(await store.models.setStage('churn', 2, 'staging', { actor: 'ana' })),
          ...(await store.models.setStage('churn', 2, 'production', { actor: 'ana', force: true })),
        ];
        await promotableVersion(store, 'fraud');
        await store.models.setStage('fraud', 1, 'production', { actor: 'ana' });

        const pages = await collectPages((cursor) => store.models.history('churn', { limit: 2, cursor }));

        expect(made).toHaveLength(5);
        expect(pages.map((page) => page.length)).toEqual([2, 2, 1]);
        expect(pages.flat()).toEqual(made);
      });
    });

    describe('concurrency', () => {
      it('50 concurrent createVersion calls for one artifact name get versions 1 to 50, each once', async () => {
        const created = await Promise.all(
          Array.from({ length: 50 }, () => store.artifacts.createVersion(artifactDraft('iris.model'))),
        );

        expect(created.map((version) => version.version).sort((a, b) => a - b)).toEqual(range(1, 50));
        expect(new Set(created.map((version) => version.id)).size).toBe(50);
        expect((await store.artifacts.getVersion('iris.model')).version).toBe(50);
      });

      it('concurrent step completions writing the same artifact name get distinct consecutive versions', async () => {
        const run = await store.runs.create(runDraft());
        const steps = [];
        for (let index = 0; index < 10; index++) steps.push(await store.runs.startStep(stepDraft(run.id)));

        const results = await Promise.all(
          steps.map((step) => store.runs.completeStep(step.id, completion({ model: 'iris.model' }))),
        );

        expect(results.map((result) => result.outputs.model!.version).sort((a, b) => a - b)).toEqual(range(1, 10));
        expect(results.every((result) => result.stepRun.status === 'completed')).toBe(true);
      });

      it('20 concurrent forced promotions to production leave exactly one holder and record every change', async () => {
        for (let index = 0; index < 20; index++) await promotableVersion(store, 'churn');

        const results = await Promise.all(
          range(1, 20).map((number) =>
            store.models.setStage('churn', number, 'production', { actor: `actor-${number}`, force: true }),
          ),
        );

        const holders = (await store.models.listVersions('churn', { stage: 'production' })).items;
        expect(holders).toHaveLength(1);
        const history = (await store.models.history('churn', { limit: 1000 })).items;
        const historyIds = new Set(history.map((change) => change.id));
        const returned = results.flat();
        expect(returned.every((change) => historyIds.has(change.id))).toBe(true);
        expect(history.filter((change) => change.toStage === 'production')).toHaveLength(20);
        expect(history.filter((change) => change.toStage === 'archived')).toHaveLength(19);
        expect(history.filter((change) => change.toStage === 'production').at(-1)!.versionNumber).toBe(
          holders[0]!.number,
        );
        expect((await store.models.listVersions('churn', { stage: 'archived' })).items).toHaveLength(19);
      });

      it('20 concurrent createVersion calls on one model get numbers 1 to 20, each once', async () => {
        const created = await Promise.all(Array.from({ length: 20 }, () => store.models.createVersion('churn')));

        expect(created.map((version) => version.number).sort((a, b) => a - b)).toEqual(range(1, 20));
        expect((await store.models.get('churn')).latestVersion).toBe(20);
      });
    });
  });
}

// ---------- Fixtures ----------

const EPOCH = Date.UTC(2026, 0, 1);

/** A fixed timestamp `seconds` after the suite's epoch, so ordering in tests never depends on the clock. */
function at(seconds: number): string {
  return new Date(EPOCH + seconds * 1000).toISOString();
}

/**
 * A model version production accepts: made by a completed run and linking an artifact in role
 * `model` (unless `withModelArtifact` is false). Also used by the adapters' own tests.
 */
export async function promotableVersion(
  store: MetadataStore,
  model: string,
  init: { tags?: string[]; metadata?: Metadata; withModelArtifact?: boolean } = {},
) {
  const run = await store.runs.create(runDraft());
  await store.runs.finish(run.id, 'completed', at(60));
  const { withModelArtifact = true, ...rest } = init;
  const version = await store.models.createVersion(model, { ...rest, runId: run.id });
  if (withModelArtifact) {
    await store.models.linkArtifact(
      version.id,
      'model',
      await store.artifacts.createVersion(artifactDraft(`${model}.model`)),
    );
  }
  return store.models.getVersion(model, version.number);
}

/** Also used by the adapters' own tests, so every suite builds records the same way. */
export function runDraft(overrides: Partial<PipelineRun> = {}): PipelineRun {
  return {
    id: newId('run'),
    pipeline: 'training',
    status: 'running',
    stack: 'local',
    parameters: {},
    config: {},
    tags: [],
    metadata: {},
    createdBy: 'conformance',
    startedAt: at(0),
    ...overrides,
  };
}

/** Also used by the adapters' own tests, so every suite builds records the same way. */
export function stepDraft(runId: string, overrides: Partial<StepRun> = {}): StepRun {
  return {
    id: newId('srun'),
    runId,
    stepId: 'train',
    stepName: 'train',
    status: 'running',
    cacheKey: 'key-default',
    codeHash: 'sha256:code',
    parameters: {},
    startedAt: at(1),
    attempts: 1,
    inputs: {},
    outputs: {},
    metadata: {},
    ...overrides,
  };
}

/** Also used by the adapters' own tests, so every suite builds records the same way. */
export function artifactDraft(name: string, overrides: Partial<ArtifactVersionDraft> = {}): ArtifactVersionDraft {
  return {
    name,
    contentHash: `sha256:${'0'.repeat(64)}`,
    uri: `file:///tmp/blobs/${name}`,
    size: 42,
    materializer: 'json',
    dataType: 'json:object',
    metadata: {},
    tags: [],
    ...overrides,
  };
}

/** A completion whose outputs map output name → artifact name. */
function completion(outputs: Record<string, string>, overrides: Partial<StepRunCompletion> = {}): StepRunCompletion {
  return {
    endedAt: at(2),
    durationMs: 1000,
    attempts: 1,
    outputs: Object.entries(outputs).map(([outputName, artifactName]) => ({
      outputName,
      artifact: artifactDraft(artifactName),
    })),
    ...overrides,
  };
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('Expected the call to fail, but it succeeded');
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Follows `nextCursor` to the end; returns each page's items. */
async function collectPages<T>(fetchPage: (cursor: string | undefined) => Promise<Page<T>>): Promise<T[][]> {
  const pages: T[][] = [];
  let cursor: string | undefined;
  do {
    const page = await fetchPage(cursor);
    pages.push(page.items);
    cursor = page.nextCursor;
    if (pages.length > 1000) throw new Error('Pagination did not terminate');
  } while (cursor !== undefined);
  return pages;
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, index) => from + index);
}

function sortById<T extends { id: string }>(items: readonly T[]): T[] {
  return [...items].sort((a, b) => a.id.localeCompare(b.id));
}
