import { GetCommand, QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { ConflictError, NotFoundError, ValidationError } from '../../errors.ts';
import { nowIso } from '../../util/ids.ts';
import type { RunRepository } from '../metadata-store.ts';
import { storeErrors } from '../store-errors.ts';
import {
  assertRunOpen,
  leaseExpiredError,
  normalizeTimestamp,
  slotVerdict,
  stepAlreadyDone,
  stepInProgress,
} from '../store-rules.ts';
import type {
  ArtifactVersion,
  ErrorInfo,
  Page,
  PipelineRun,
  RunFilter,
  RunStatus,
  StepRun,
  StepRunCompletion,
  StepRunStatus,
} from '../types.ts';
import { artifactQueueKey, planArtifactVersions, planItemVersions } from './dynamodb-artifact-repository.ts';
import { keys } from './keys.ts';
import {
  batchGet,
  type Db,
  Expression,
  type Item,
  isConditionalCheckFailed,
  queryAll,
  queryPage,
  recordOf,
  sortSteps,
  type TransactionAction,
  transactOptimistically,
  translateError,
  uniqueTags,
  updateAction,
  withoutUndefined,
} from './support.ts';
import { INDEXES } from './table-definitions.ts';

const NON_TERMINAL: readonly RunStatus[] = ['pending', 'running'];
/** Step runs an instance remembers between starting and ending them (see `#started`). */
const MAX_REMEMBERED_STEPS = 10_000;

/**
 * Runs and step runs (runs table). A run is `RUN#<id> / RUN`; its step runs share its partition
 * (`RUN#<runId> / STEP#<id>`), so listing a run's steps is one strongly consistent query, and an
 * immutable pointer `STEP#<id>` finds a step run by id. `CONSUMER#<artifactVersionId> / STEP#<id>`
 * edges record which step runs read an artifact version.
 */
export class DynamoDbRunRepository implements RunRepository {
  /**
   * Step runs this instance started and has not ended yet: completing or ending one needs its run
   * id and cache key, which would otherwise cost two reads before the write and two after. The
   * writes stay conditioned on the stored status, so a stale entry costs a retry, never a wrong record.
   */
  readonly #started = new Map<string, StepRun>();

  constructor(private readonly db: Db) {}

  /** Forgets what this instance remembers of a step run (its record changed outside the repository). */
  forgetStep(stepRunId: string): void {
    this.#started.delete(stepRunId);
  }

  async create(run: PipelineRun): Promise<PipelineRun> {
    const record = withoutUndefined({ ...run, tags: uniqueTags(run.tags) });
    const actions: TransactionAction[] = [
      {
        item: {
          Put: { TableName: this.#table, Item: runItem(record), ConditionExpression: 'attribute_not_exists(pk)' },
        },
        onConditionFailed: () => storeErrors.alreadyExists('Run', run.id, { runId: run.id, key: keys.run(run.id) }),
      },
    ];
    if (run.modelVersionId !== undefined) actions.push(this.#modelVersionMustExist(run.modelVersionId));
    try {
      await transactOptimistically(this.db, `Creating run "${run.id}"`, async () => ({ actions, result: undefined }));
    } catch (error) {
      throw tooLargeRun(error, record) ?? error;
    }
    return record;
  }

  async get(id: string): Promise<PipelineRun> {
    const run = await this.#findRun(id);
    if (run === undefined) throw runNotFound(id);
    return run;
  }

  async list(filter: RunFilter = {}): Promise<Page<PipelineRun>> {
    const e = new Expression();
    const index =
      filter.pipeline !== undefined
        ? { name: INDEXES.runs.byPipeline, pk: `PIPELINE#${filter.pipeline}` }
        : filter.status !== undefined
          ? { name: INDEXES.runs.byStatus, pk: `STATUS#${filter.status}` }
          : { name: INDEXES.runs.byStart, pk: 'RUN' };
    const keyConditions = [`${e.path(`${index.name}Pk`)} = ${e.value(index.pk)}`];
    // Sort keys are `<startedAt>#<id>`; `$` sorts right after `#`, so the bound includes `until` itself.
    const since = filter.since === undefined ? undefined : normalizeTimestamp(filter.since, 'since');
    const until = filter.until === undefined ? undefined : `${normalizeTimestamp(filter.until, 'until')}$`;
    const sk = since === undefined && until === undefined ? '' : e.path(`${index.name}Sk`);
    if (since !== undefined && until !== undefined) {
      keyConditions.push(`${sk} BETWEEN ${e.value(since)} AND ${e.value(until)}`);
    } else if (since !== undefined) keyConditions.push(`${sk} >= ${e.value(since)}`);
    else if (until !== undefined) keyConditions.push(`${sk} <= ${e.value(until)}`);
    if (filter.status !== undefined && index.name !== INDEXES.runs.byStatus) {
      e.condition(`${e.path('status')} = ${e.value(filter.status)}`);
    }
    if (filter.tag !== undefined) e.condition(`contains(${e.path('tags')}, ${e.value(filter.tag)})`);
    const { ConditionExpression, ...names } = e.build();
    return queryPage(
      this.db,
      {
        TableName: this.#table,
        IndexName: index.name,
        KeyConditionExpression: keyConditions.join(' AND '),
        FilterExpression: ConditionExpression,
        ScanIndexForward: false,
        ...names,
      },
      ['pk', 'sk', `${index.name}Pk`, `${index.name}Sk`],
      filter,
      (item) => recordOf<PipelineRun>(item),
    );
  }

  async finish(
    id: string,
    status: Exclude<RunStatus, 'pending' | 'running'>,
    endedAt: string,
    error?: ErrorInfo,
  ): Promise<PipelineRun> {
    const e = new Expression()
      .set(['status'], status)
      .set(['endedAt'], endedAt)
      .setOrRemove(['error'], error)
      .set(['byStatusPk'], `STATUS#${status}`);
    e.condition(`attribute_exists(pk) AND ${e.path('status')} IN (${NON_TERMINAL.map((s) => e.value(s)).join(', ')})`);
    try {
      const output = await this.db.doc.send(
        new UpdateCommand({ TableName: this.#table, Key: keys.run(id), ...e.build(), ReturnValues: 'ALL_NEW' }),
      );
      return recordOf<PipelineRun>(output.Attributes!);
    } catch (caught) {
      if (!isConditionalCheckFailed(caught)) throw translateError(caught, `Finishing run "${id}"`);
      const current = await this.get(id);
      throw storeErrors.runAlreadyFinished(id, current.status, status, { cause: caught });
    }
  }

  async setModelVersion(runId: string, modelVersionId: string): Promise<void> {
    const e = new Expression().set(['modelVersionId'], modelVersionId).condition('attribute_exists(pk)');
    await transactOptimistically(this.db, `Linking run "${runId}" to model version "${modelVersionId}"`, async () => ({
      actions: [
        {
          item: updateAction(this.#table, keys.run(runId), e),
          onConditionFailed: () => runNotFound(runId),
        },
        this.#modelVersionMustExist(modelVersionId),
      ],
      result: undefined,
    }));
  }

  async startStep(stepRun: StepRun): Promise<StepRun> {
    const record = await this.#insertStep({ ...stepRun, status: 'running', outputs: {} }, []);
    this.#remember(record);
    return record;
  }

  async renewLease(runId: string, leaseExpiresAt: string, stepRunIds: string[] = []): Promise<boolean> {
    const renew = async (key: { pk: string; sk: string }, open: readonly string[]) => {
      const e = new Expression().set(['leaseExpiresAt'], leaseExpiresAt);
      e.condition(`attribute_exists(pk) AND ${e.path('status')} IN (${open.map((s) => e.value(s)).join(', ')})`);
      try {
        await this.db.doc.send(new UpdateCommand({ TableName: this.#table, Key: key, ...e.build() }));
        return true;
      } catch (caught) {
        if (isConditionalCheckFailed(caught)) return false;
        throw translateError(caught, `Renewing the lease of run "${runId}"`);
      }
    };
    const open = await renew(keys.run(runId), NON_TERMINAL);
    if (open) {
      await Promise.all(
        stepRunIds.map(async (id) => {
          const renewed = await renew(keys.step(runId, id), ['running']);
          const known = this.#started.get(id);
          if (known !== undefined) {
            if (renewed) known.leaseExpiresAt = leaseExpiresAt;
            else this.#started.delete(id);
          }
        }),
      );
    }
    return open;
  }

  async completeStep(
    stepRunId: string,
    completion: StepRunCompletion,
  ): Promise<{ stepRun: StepRun; outputs: Record<string, ArtifactVersion> }> {
    const seen = new Set<string>();
    for (const { outputName } of completion.outputs) {
      if (seen.has(outputName)) {
        throw storeErrors.outputListedTwice(stepRunId, outputName);
      }
      seen.add(outputName);
    }
    const known = this.#started.get(stepRunId);
    // Items take no counter (see planItemVersions): nothing to queue behind.
    const counters =
      known !== undefined && fanOutItemIndex(known.stepId) !== undefined
        ? []
        : completion.outputs.map(({ artifact }) => artifactQueueKey(artifact.name));
    let step: StepRun | undefined;
    let attempt = 0;
    const complete = () =>
      transactOptimistically(this.db, `Completing step run "${stepRunId}"`, async () => {
        // The first attempt trusts what this instance started; a failed condition reads the record.
        const current =
          (attempt++ === 0 ? this.#started.get(stepRunId) : undefined) ??
          (await this.#runningStep(stepRunId, 'completed'));
        step = current;
        const drafts = completion.outputs.map(({ artifact }) => ({
          ...artifact,
          producerRunId: artifact.producerRunId ?? current.runId,
          producerStepRunId: artifact.producerStepRunId ?? stepRunId,
        }));
        const index = fanOutItemIndex(current.stepId);
        const planned =
          index === undefined
            ? await planArtifactVersions(this.db, drafts, completion.endedAt)
            : planItemVersions(this.db, drafts, completion.endedAt, {
                stepRunId,
                index,
                outputNames: completion.outputs.map(({ outputName }) => outputName),
              });
        const byOutput: Record<string, ArtifactVersion> = {};
        completion.outputs.forEach(({ outputName }, index) => {
          byOutput[outputName] = planned.versions[index]!;
        });
        const e = new Expression()
          .set(['status'], 'completed')
          .set(['endedAt'], completion.endedAt)
          .set(['durationMs'], completion.durationMs)
          .set(['attempts'], completion.attempts)
          .set(['outputs'], Object.fromEntries(Object.entries(byOutput).map(([name, version]) => [name, version.id])))
          // Only completed step runs are in the cache-key index (sparse), newest end first.
          .set(['byCacheKeyPk'], `CACHE#${current.cacheKey}`)
          .set(['byCacheKeySk'], `${completion.endedAt}#${stepRunId}`);
        for (const [key, value] of Object.entries(completion.metadata ?? {})) e.set(['metadata', key], value);
        if (completion.logs !== undefined) e.set(['logs'], completion.logs);
        e.condition(`${e.path('status')} = ${e.value('running')}`);
        const stepUpdate: TransactionAction = {
          item: updateAction(this.#table, keys.step(current.runId, stepRunId), e),
          onConditionFailed: 'retry',
        };
        return { actions: [stepUpdate, ...planned.actions], result: byOutput };
      });
    const outputs = await this.db.queue.run(counters, complete);
    this.#started.delete(stepRunId);
    // What the transaction wrote, applied to the record it was conditioned on: no read-back needed.
    const stepRun = withoutUndefined<StepRun>({
      ...step!,
      status: 'completed',
      endedAt: completion.endedAt,
      durationMs: completion.durationMs,
      attempts: completion.attempts,
      outputs: Object.fromEntries(Object.entries(outputs).map(([name, version]) => [name, version.id])),
      metadata: { ...step!.metadata, ...completion.metadata },
      ...(completion.logs === undefined ? {} : { logs: completion.logs }),
    });
    return { stepRun, outputs };
  }

  async recordCachedStep(stepRun: StepRun): Promise<StepRun> {
    if (stepRun.cachedFrom === undefined) {
      throw storeErrors.cachedWithoutSource(stepRun.id);
    }
    const cachedFrom = stepRun.cachedFrom;
    const checks: TransactionAction[] = [
      {
        item: {
          ConditionCheck: {
            TableName: this.#table,
            Key: keys.stepPointer(cachedFrom),
            ConditionExpression: 'attribute_exists(pk)',
          },
        },
        onConditionFailed: () => stepNotFound(cachedFrom),
      },
      ...Object.entries(stepRun.outputs).map(([name, id]) =>
        this.#artifactVersionMustExist(id, `output "${name}" of step run "${stepRun.id}"`),
      ),
    ];
    return this.#insertStep({ ...stepRun, status: 'cached', endedAt: stepRun.endedAt ?? stepRun.startedAt }, checks);
  }

  async endStep(
    stepRunId: string,
    status: Extract<StepRunStatus, 'failed' | 'cancelled'>,
    endedAt: string,
    details: { durationMs: number; attempts: number; error?: ErrorInfo; logs?: string[] },
  ): Promise<StepRun> {
    let step: StepRun | undefined;
    let attempt = 0;
    await transactOptimistically(this.db, `Ending step run "${stepRunId}"`, async () => {
      step =
        (attempt++ === 0 ? this.#started.get(stepRunId) : undefined) ?? (await this.#runningStep(stepRunId, status));
      const e = new Expression()
        .set(['status'], status)
        .set(['endedAt'], endedAt)
        .set(['durationMs'], details.durationMs)
        .set(['attempts'], details.attempts)
        .setOrRemove(['error'], details.error);
      if (details.logs !== undefined) e.set(['logs'], details.logs);
      e.condition(`${e.path('status')} = ${e.value('running')}`);
      return {
        actions: [
          {
            item: updateAction(this.#table, keys.step(step!.runId, stepRunId), e),
            onConditionFailed: 'retry',
          },
        ],
        result: undefined,
      };
    });
    this.#started.delete(stepRunId);
    const { error: _previous, ...rest } = step!;
    return withoutUndefined<StepRun>({
      ...rest,
      status,
      endedAt,
      durationMs: details.durationMs,
      attempts: details.attempts,
      ...(details.error === undefined ? {} : { error: details.error }),
      ...(details.logs === undefined ? {} : { logs: details.logs }),
    });
  }

  async getStep(stepRunId: string): Promise<StepRun> {
    const step = await this.#findStep(stepRunId);
    if (step === undefined) throw stepNotFound(stepRunId);
    return step;
  }

  async listSteps(runId: string): Promise<StepRun[]> {
    const items = await queryAll(this.db, {
      TableName: this.#table,
      KeyConditionExpression: 'pk = :pk AND begins_with(sk, :step)',
      ExpressionAttributeValues: { ':pk': keys.run(runId).pk, ':step': 'STEP#' },
      ConsistentRead: true,
    });
    return sortSteps(items.map((item) => recordOf<StepRun>(item)));
  }

  /**
   * Through the steps' slots (`SLOT#<stepId>` names the step run that last took it): one batch read
   * of the slots and one of their holders (per 100 step ids), whatever the size of the run: every
   * step run takes its step id's slot as it is recorded, so a step id without one has none.
   */
  async latestSteps(runId: string, stepIds: readonly string[]): Promise<Map<string, StepRun>> {
    const wanted = [...new Set(stepIds)];
    const latest = new Map<string, StepRun>();
    if (wanted.length === 0) return latest;
    const pk = keys.run(runId).pk;
    const slots = await batchGet(
      this.db,
      this.#table,
      wanted.map((stepId) => ({ pk, sk: `SLOT#${stepId}` })),
    );
    const holders = await batchGet(
      this.db,
      this.#table,
      slots.map((slot) => keys.step(runId, String(slot.stepRunId))),
    );
    for (const item of holders) {
      const step = recordOf<StepRun>(item);
      latest.set(step.stepId, step);
    }
    return latest;
  }

  /** Reads the cache-key index: eventually consistent, so a hit completed a moment ago may be missed. */
  async findCacheHit(cacheKey: string): Promise<StepRun | undefined> {
    try {
      const output = await this.db.doc.send(
        new QueryCommand({
          TableName: this.#table,
          IndexName: INDEXES.runs.byCacheKey,
          KeyConditionExpression: '#pk = :pk',
          ExpressionAttributeNames: { '#pk': 'byCacheKeyPk' },
          ExpressionAttributeValues: { ':pk': `CACHE#${cacheKey}` },
          ScanIndexForward: false,
          Limit: 1,
        }),
      );
      const item = output.Items?.[0];
      return item === undefined ? undefined : recordOf<StepRun>(item);
    } catch (error) {
      throw translateError(error, `Looking up cache key "${cacheKey}"`);
    }
  }

  /**
   * Item by item, not one transaction: a wide fan-out has more running step runs than a transaction
   * takes (100). The run is ended first, so no step run can start in it afterwards (startStep checks
   * the run's status in its own transaction); its running step runs are then ended one by one, and
   * a second call finishes the sweep if this one was cut short.
   */
  async abandon(
    runIds: string[],
    status: 'failed' | 'cancelled',
    endedAt: string,
    error: ErrorInfo,
  ): Promise<string[]> {
    const changed: string[] = [];
    for (const runId of runIds) {
      const run = await this.#findRun(runId);
      if (run === undefined) continue;
      if (NON_TERMINAL.includes(run.status)) {
        const e = new Expression()
          .set(['status'], status)
          .set(['endedAt'], endedAt)
          .set(['error'], error)
          .set(['byStatusPk'], `STATUS#${status}`);
        e.condition(`${e.path('status')} IN (${NON_TERMINAL.map((s) => e.value(s)).join(', ')})`);
        try {
          await this.db.doc.send(new UpdateCommand({ TableName: this.#table, Key: keys.run(runId), ...e.build() }));
          changed.push(runId);
        } catch (caught) {
          if (!isConditionalCheckFailed(caught)) throw translateError(caught, `Abandoning run "${runId}"`);
        }
      }
      await this.#endRunningSteps(runId, status, endedAt, error);
    }
    return changed;
  }

  async #endRunningSteps(runId: string, status: 'failed' | 'cancelled', endedAt: string, error: ErrorInfo) {
    const items = await queryAll(this.db, {
      TableName: this.#table,
      KeyConditionExpression: 'pk = :pk AND begins_with(sk, :step)',
      FilterExpression: '#status = :running',
      ExpressionAttributeNames: { '#status': 'status' },
      ExpressionAttributeValues: { ':pk': keys.run(runId).pk, ':step': 'STEP#', ':running': 'running' },
      ConsistentRead: true,
    });
    const pending = [...items];
    const worker = async () => {
      for (let step = pending.shift(); step !== undefined; step = pending.shift()) {
        const durationMs = Math.max(0, Math.round(Date.parse(endedAt) - Date.parse(step.startedAt)));
        const e = new Expression()
          .set(['status'], status)
          .set(['endedAt'], endedAt)
          .set(['error'], error)
          .set(['durationMs'], Number.isFinite(durationMs) ? durationMs : 0);
        e.condition(`${e.path('status')} = ${e.value('running')}`);
        try {
          await this.db.doc.send(
            new UpdateCommand({ TableName: this.#table, Key: { pk: step.pk, sk: step.sk }, ...e.build() }),
          );
        } catch (caught) {
          // Ended meanwhile by its own executor: nothing to do.
          if (!isConditionalCheckFailed(caught)) throw translateError(caught, `Abandoning step run "${step.sk}"`);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(8, pending.length) }, worker));
  }

  get #table(): string {
    return this.db.tables.runs;
  }

  async #findRun(id: string): Promise<PipelineRun | undefined> {
    const output = await this.db.doc
      .send(new GetCommand({ TableName: this.#table, Key: keys.run(id), ConsistentRead: true }))
      .catch((error: unknown) => {
        throw translateError(error, `Reading run "${id}"`);
      });
    return output.Item === undefined ? undefined : recordOf<PipelineRun>(output.Item);
  }

  async #findStep(stepRunId: string): Promise<StepRun | undefined> {
    try {
      const pointer = await this.db.doc.send(
        new GetCommand({ TableName: this.#table, Key: keys.stepPointer(stepRunId), ConsistentRead: true }),
      );
      if (pointer.Item === undefined) return undefined;
      const output = await this.db.doc.send(
        new GetCommand({
          TableName: this.#table,
          Key: keys.step(pointer.Item.runId, stepRunId),
          ConsistentRead: true,
        }),
      );
      return output.Item === undefined ? undefined : recordOf<StepRun>(output.Item);
    } catch (error) {
      throw translateError(error, `Reading step run "${stepRunId}"`);
    }
  }

  #remember(stepRun: StepRun): void {
    // Bounded: step runs whose executor died are never completed here and would otherwise pile up.
    if (this.#started.size >= MAX_REMEMBERED_STEPS) this.#started.delete(this.#started.keys().next().value!);
    this.#started.set(stepRun.id, structuredClone(stepRun));
  }

  async #runningStep(stepRunId: string, requestedStatus: StepRunStatus): Promise<StepRun> {
    const step = await this.getStep(stepRunId);
    if (step.status !== 'running') {
      throw new ConflictError(
        `Step run "${stepRunId}" already ended as ${step.status}; only a running step run can become ${requestedStatus}`,
        { context: { stepRunId, status: step.status, requestedStatus } },
      );
    }
    return step;
  }

  /**
   * The slot of a leased step run: `RUN#<runId> / SLOT#<stepId>` names the step run that last took
   * (run, stepId). Reading the holder and conditioning on the slot being unchanged makes taking it
   * a compare-and-set, inside the same transaction as the step run itself.
   */
  async #slotActions(stepRun: StepRun, optimistic: boolean): Promise<TransactionAction[]> {
    const slotKey = { pk: keys.run(stepRun.runId).pk, sk: `SLOT#${stepRun.stepId}` };
    // Unleased step runs (a fan-out's parent) claim nothing, but the slot still names the newest,
    // so latestSteps finds them with a keyed read instead of listing the run.
    if (stepRun.leaseExpiresAt === undefined) {
      return [
        {
          item: { Put: { TableName: this.#table, Item: { ...slotKey, stepRunId: stepRun.id } } },
          onConditionFailed: 'retry',
        },
      ];
    }
    // Most steps start once: take a free slot without reading it; a taken one fails the condition
    // and the next attempt reads its holder.
    if (optimistic) {
      return [
        {
          item: {
            Put: {
              TableName: this.#table,
              Item: { ...slotKey, stepRunId: stepRun.id },
              ConditionExpression: 'attribute_not_exists(pk)',
            },
          },
          onConditionFailed: 'retry',
        },
      ];
    }
    const slot = await this.db.doc
      .send(new GetCommand({ TableName: this.#table, Key: slotKey, ConsistentRead: true }))
      .catch((error: unknown) => {
        throw translateError(error, `Reading the slot of step "${stepRun.stepId}"`);
      });
    const holderId = slot.Item?.stepRunId as string | undefined;
    const take: TransactionAction = {
      item: {
        Put: {
          TableName: this.#table,
          Item: { ...slotKey, stepRunId: stepRun.id },
          ConditionExpression: holderId === undefined ? 'attribute_not_exists(pk)' : 'stepRunId = :holder',
          ...(holderId === undefined ? {} : { ExpressionAttributeValues: { ':holder': holderId } }),
        },
      },
      onConditionFailed: 'retry',
    };
    if (holderId === undefined) return [take];
    const holder = await this.#findStepIn(stepRun.runId, holderId);
    if (holder === undefined) return [take];
    const now = nowIso();
    const verdict = slotVerdict(holder.status, holder.leaseExpiresAt, now);
    if (verdict === 'done') throw stepAlreadyDone(stepRun, holder.id, holder.status);
    if (verdict === 'live') throw stepInProgress(stepRun, holder.id, holder.leaseExpiresAt);
    const e = new Expression();
    if (verdict === 'expired') {
      e.set(['status'], 'failed')
        .set(['endedAt'], now)
        .set(['error'], leaseExpiredError(holder.id, stepRun.id))
        .set(['durationMs'], Math.max(0, Date.parse(now) - Date.parse(holder.startedAt)));
    }
    e.condition(`${e.path('status')} = ${e.value(holder.status)}`);
    const holderAction: TransactionAction = {
      item:
        verdict === 'expired'
          ? updateAction(this.#table, keys.step(stepRun.runId, holder.id), e)
          : {
              ConditionCheck: {
                TableName: this.#table,
                Key: keys.step(stepRun.runId, holder.id),
                ConditionExpression: e.build().ConditionExpression!,
                ExpressionAttributeNames: e.build().ExpressionAttributeNames,
                ExpressionAttributeValues: e.build().ExpressionAttributeValues,
              },
            },
      onConditionFailed: 'retry',
    };
    return [take, holderAction];
  }

  async #findStepIn(runId: string, stepRunId: string): Promise<StepRun | undefined> {
    const output = await this.db.doc
      .send(new GetCommand({ TableName: this.#table, Key: keys.step(runId, stepRunId), ConsistentRead: true }))
      .catch((error: unknown) => {
        throw translateError(error, `Reading step run "${stepRunId}"`);
      });
    return output.Item === undefined ? undefined : recordOf<StepRun>(output.Item);
  }

  /** Writes a step run, its id pointer and its consumer edges, checking the run and inputs exist. */
  async #insertStep(stepRun: StepRun, extraChecks: TransactionAction[]): Promise<StepRun> {
    const record = withoutUndefined(stepRun);
    const id = stepRun.id;
    const alreadyExists = () => storeErrors.alreadyExists('Step run', id, { stepRunId: id, key: keys.stepPointer(id) });
    const inputIds = [...new Map(Object.entries(stepRun.inputs).map(([name, avId]) => [avId, name])).entries()];
    const actions: TransactionAction[] = [
      {
        item: {
          ConditionCheck: {
            TableName: this.#table,
            Key: keys.run(stepRun.runId),
            // A step run only starts in an open run: a late delivery cannot add work to a finished one.
            ConditionExpression: 'attribute_exists(pk) AND #status IN (:pending, :running)',
            ExpressionAttributeNames: { '#status': 'status' },
            ExpressionAttributeValues: { ':pending': 'pending', ':running': 'running' },
          },
        },
        onConditionFailed: async () => {
          const run = await this.#findRun(stepRun.runId);
          if (run === undefined) {
            return storeErrors.runOfStepRunNotFound(stepRun.runId, id);
          }
          try {
            assertRunOpen(stepRun, run.status);
          } catch (error) {
            return error as Error;
          }
          return new ConflictError(`Run "${stepRun.runId}" changed while step run "${id}" was recorded; try again`);
        },
      },
      {
        item: {
          Put: {
            TableName: this.#table,
            Item: { ...keys.stepPointer(id), runId: stepRun.runId },
            ConditionExpression: 'attribute_not_exists(pk)',
          },
        },
        onConditionFailed: alreadyExists,
      },
      {
        item: {
          Put: {
            TableName: this.#table,
            Item: { ...keys.step(stepRun.runId, id), ...record },
            ConditionExpression: 'attribute_not_exists(pk)',
          },
        },
        onConditionFailed: alreadyExists,
      },
      ...inputIds.map(([avId, name]) => this.#artifactVersionMustExist(avId, `input "${name}" of step run "${id}"`)),
      ...inputIds.map(
        ([avId]): TransactionAction => ({
          item: { Put: { TableName: this.#table, Item: { ...keys.consumer(avId, id), runId: stepRun.runId } } },
          onConditionFailed: 'retry',
        }),
      ),
      ...extraChecks,
    ];
    let attempt = 0;
    await transactOptimistically(this.db, `Recording step run "${id}"`, async () => ({
      actions: [...actions, ...(await this.#slotActions(stepRun, attempt++ === 0))],
      result: undefined,
    }));
    return record;
  }

  #artifactVersionMustExist(id: string, role: string): TransactionAction {
    return {
      item: {
        ConditionCheck: {
          TableName: this.db.tables.artifacts,
          Key: keys.artifactVersionPointer(id),
          ConditionExpression: 'attribute_exists(pk)',
        },
      },
      onConditionFailed: () =>
        new NotFoundError(`Artifact version "${id}" (${role}) not found`, { context: { artifactVersionId: id } }),
    };
  }

  #modelVersionMustExist(id: string): TransactionAction {
    return {
      item: {
        ConditionCheck: {
          TableName: this.db.tables.models,
          Key: keys.modelVersionPointer(id),
          ConditionExpression: 'attribute_exists(pk)',
        },
      },
      onConditionFailed: () => storeErrors.modelVersionNotFound(id),
    };
  }
}

/** Item `i` of a fan-out is recorded under step id `<node>[i]` (see `stepRecordId`). */
function fanOutItemIndex(stepId: string): number | undefined {
  const match = /\[(\d+)\]$/.exec(stepId);
  return match ? Number(match[1]) : undefined;
}

function runItem(run: PipelineRun): Item {
  const sortKey = `${run.startedAt}#${run.id}`;
  return {
    ...keys.run(run.id),
    ...run,
    byStartPk: 'RUN',
    byStartSk: sortKey,
    byPipelinePk: `PIPELINE#${run.pipeline}`,
    byPipelineSk: sortKey,
    byStatusPk: `STATUS#${run.status}`,
    byStatusSk: sortKey,
  };
}

function runNotFound(id: string): NotFoundError {
  return storeErrors.runNotFound(id);
}

function stepNotFound(id: string): NotFoundError {
  return storeErrors.stepRunNotFound(id);
}

/**
 * A run item over DynamoDB's 400 KB limit. The per-step snapshot is not in it (it is a blob in the
 * artifact store, see `StepSnapshotReference`), so what can still outgrow it is what the caller
 * passed: parameters, tags, settings. Says how large each is, and what to do.
 */
function tooLargeRun(error: unknown, run: PipelineRun): ValidationError | undefined {
  if (!(error instanceof ValidationError) || !/too large for DynamoDB/.test(error.message)) return undefined;
  const kb = (value: unknown) => Number((Buffer.byteLength(JSON.stringify(value ?? null)) / 1024).toFixed(1));
  const sizes = { parameters: kb(run.parameters), configuration: kb(run.config), tags: kb(run.tags) };
  return new ValidationError(
    `Run "${run.id}" of pipeline "${run.pipeline}" cannot be recorded on DynamoDB: its record is over DynamoDB's ` +
      `400 KB item limit (parameters ${sizes.parameters} KB, configuration ${sizes.configuration} KB, tags ${sizes.tags} KB); ` +
      'pass large values as artifacts rather than parameters, or run it on a stack with the SQLite metadata store',
    { cause: error, context: { runId: run.id, pipeline: run.pipeline, kilobytes: sizes } },
  );
}
