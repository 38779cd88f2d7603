import { ConflictError } from '../../errors.ts';
import { nowIso } from '../../util/ids.ts';
import { mergeRecords } from '../../util/merge-records.ts';
import type { RunRepository } from '../metadata-store.ts';
import { storeErrors } from '../store-errors.ts';
import {
  assertRunOpen,
  leaseExpiredError,
  normalizeTimestamp,
  pageLimit,
  slotVerdict,
  stepAlreadyDone,
  stepInProgress,
  uniqueTags,
} from '../store-rules.ts';
import type {
  ArtifactVersion,
  ArtifactVersionDraft,
  ErrorInfo,
  Metadata,
  Page,
  PipelineRun,
  RunFilter,
  RunStatus,
  StepRun,
  StepRunCompletion,
  StepRunStatus,
} from '../types.ts';
import {
  abandonRuns,
  assertArtifactVersionsExist,
  assertModelVersionExists,
  hydrateStepRuns,
  insertArtifactVersion,
  insertStepRunRow,
  loadRunRow,
  loadStepRun,
  loadStepRunRow,
  type RunRow,
  type StepRunRow,
  toRun,
} from './rows.ts';
import { decodeCursor, insertTags, json, parseJson, type Sql, tagCondition, toPage, whereClause } from './sql.ts';

/** A step's latest run within a run: an index search (migration 4), whatever the run's size. */
export const LATEST_STEP_RUN_SQL =
  'SELECT * FROM step_runs WHERE run_id = ? AND step_id = ? ORDER BY started_at DESC, id DESC LIMIT 1';

export class SqliteRunRepository implements RunRepository {
  constructor(private readonly sql: Sql) {}

  async create(run: PipelineRun): Promise<PipelineRun> {
    return this.sql.write(() => {
      if (this.sql.get('SELECT 1 FROM pipeline_runs WHERE id = ?', run.id) !== undefined) {
        throw storeErrors.alreadyExists('Run', run.id, { runId: run.id });
      }
      if (run.modelVersionId !== undefined) assertModelVersionExists(this.sql, run.modelVersionId);
      const tags = uniqueTags(run.tags);
      this.sql.run(
        `INSERT INTO pipeline_runs (id, pipeline, status, stack, parameters, config, tags, metadata, created_by,
           started_at, ended_at, error, model_version_id, executor, lease_expires_at)
         VALUES (@id, @pipeline, @status, @stack, @parameters, @config, @tags, @metadata, @createdBy,
           @startedAt, @endedAt, @error, @modelVersionId, @executor, @leaseExpiresAt)`,
        {
          id: run.id,
          pipeline: run.pipeline,
          status: run.status,
          stack: run.stack,
          parameters: json(run.parameters),
          config: json(run.config),
          tags: json(tags),
          metadata: json(run.metadata),
          createdBy: run.createdBy,
          startedAt: run.startedAt,
          endedAt: run.endedAt ?? null,
          error: run.error === undefined ? null : json(run.error),
          modelVersionId: run.modelVersionId ?? null,
          executor: run.executor === undefined ? null : json(run.executor),
          leaseExpiresAt: run.leaseExpiresAt ?? null,
        },
      );
      insertTags(this.sql, 'run', run.id, tags);
      return toRun(loadRunRow(this.sql, run.id));
    });
  }

  async get(id: string): Promise<PipelineRun> {
    return toRun(loadRunRow(this.sql, id));
  }

  async list(filter: RunFilter = {}): Promise<Page<PipelineRun>> {
    const limit = pageLimit(filter.limit);
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.pipeline !== undefined) {
      where.push('pipeline = ?');
      params.push(filter.pipeline);
    }
    if (filter.status !== undefined) {
      where.push('status = ?');
      params.push(filter.status);
    }
    if (filter.tag !== undefined) {
      where.push(tagCondition('run', 'id'));
      params.push(filter.tag);
    }
    if (filter.since !== undefined) {
      where.push('started_at >= ?');
      params.push(normalizeTimestamp(filter.since, 'since'));
    }
    if (filter.until !== undefined) {
      where.push('started_at <= ?');
      params.push(normalizeTimestamp(filter.until, 'until'));
    }
    if (filter.cursor !== undefined) {
      const [startedAt, id] = decodeCursor(filter.cursor, ['string', 'string']);
      where.push('(started_at < ? OR (started_at = ? AND id < ?))');
      params.push(startedAt, startedAt, id);
    }
    const rows = this.sql.all<RunRow>(
      `SELECT * FROM pipeline_runs ${whereClause(where)} ORDER BY started_at DESC, id DESC LIMIT ?`,
      ...params,
      limit + 1,
    );
    return toPage(
      rows,
      limit,
      (page) => page.map(toRun),
      (row) => [row.started_at, row.id],
    );
  }

  async finish(
    id: string,
    status: Exclude<RunStatus, 'pending' | 'running'>,
    endedAt: string,
    error?: ErrorInfo,
  ): Promise<PipelineRun> {
    return this.sql.write(() => {
      const row = loadRunRow(this.sql, id);
      if (row.status !== 'pending' && row.status !== 'running') {
        throw storeErrors.runAlreadyFinished(id, row.status, status);
      }
      this.sql.run(
        'UPDATE pipeline_runs SET status = ?, ended_at = ?, error = ? WHERE id = ?',
        status,
        endedAt,
        error === undefined ? null : json(error),
        id,
      );
      return toRun(loadRunRow(this.sql, id));
    });
  }

  async setModelVersion(runId: string, modelVersionId: string): Promise<void> {
    this.sql.write(() => {
      loadRunRow(this.sql, runId);
      assertModelVersionExists(this.sql, modelVersionId);
      this.sql.run('UPDATE pipeline_runs SET model_version_id = ? WHERE id = ?', modelVersionId, runId);
    });
  }

  async startStep(stepRun: StepRun): Promise<StepRun> {
    return this.sql.write(() => {
      this.claimSlot(stepRun);
      insertStepRunRow(this.sql, stepRun, 'running');
      return loadStepRun(this.sql, stepRun.id);
    });
  }

  async renewLease(runId: string, leaseExpiresAt: string, stepRunIds: string[] = []): Promise<boolean> {
    return this.sql.write(() => {
      const result = this.sql.run(
        `UPDATE pipeline_runs SET lease_expires_at = ? WHERE id = ? AND status IN ('pending', 'running')`,
        leaseExpiresAt,
        runId,
      );
      if (stepRunIds.length > 0) {
        this.sql.run(
          `UPDATE step_runs SET lease_expires_at = ?
           WHERE run_id = ? AND status = 'running' AND id IN (SELECT value FROM json_each(?))`,
          leaseExpiresAt,
          runId,
          json(stepRunIds),
        );
      }
      return result.changes > 0;
    });
  }

  /** The conditions of startStep and recordCachedStep (see RunRepository.startStep); inside the write. */
  private claimSlot(stepRun: StepRun): void {
    const run = this.sql.get<{ status: RunStatus }>('SELECT status FROM pipeline_runs WHERE id = ?', stepRun.runId);
    if (run !== undefined) assertRunOpen(stepRun, run.status);
    if (stepRun.leaseExpiresAt === undefined) return;
    const rows = this.sql.all<StepRunRow>(
      `SELECT * FROM step_runs WHERE run_id = ? AND step_id = ? AND status IN ('running', 'completed', 'cached')`,
      stepRun.runId,
      stepRun.stepId,
    );
    const now = nowIso();
    for (const row of rows) {
      const verdict = slotVerdict(row.status, row.lease_expires_at ?? undefined, now);
      if (verdict === 'done') throw stepAlreadyDone(stepRun, row.id, row.status);
      if (verdict === 'live') throw stepInProgress(stepRun, row.id, row.lease_expires_at ?? undefined);
    }
    for (const row of rows) {
      // Running, lease expired: its executor is gone; end it so the new attempt is the only one.
      this.sql.run(
        `UPDATE step_runs SET status = 'failed', ended_at = ?, error = ?,
           duration_ms = MAX(0, ROUND((julianday(?) - julianday(started_at)) * 86400000))
         WHERE id = ? AND status = 'running'`,
        now,
        json(leaseExpiredError(row.id, stepRun.id)),
        now,
        row.id,
      );
    }
  }

  async completeStep(
    stepRunId: string,
    completion: StepRunCompletion,
  ): Promise<{ stepRun: StepRun; outputs: Record<string, ArtifactVersion> }> {
    return this.sql.write(() => {
      const row = this.runningStepRow(stepRunId, 'completed');
      const outputs: Record<string, ArtifactVersion> = {};
      for (const { outputName, artifact } of completion.outputs) {
        if (Object.hasOwn(outputs, outputName)) {
          throw storeErrors.outputListedTwice(stepRunId, outputName);
        }
        const version = insertArtifactVersion(
          this.sql,
          mergeRecords<ArtifactVersionDraft>(artifact, {
            producerRunId: artifact.producerRunId ?? row.run_id,
            producerStepRunId: artifact.producerStepRunId ?? stepRunId,
          }),
          completion.endedAt,
        );
        this.sql.run(
          'INSERT INTO step_run_outputs (step_run_id, output_name, artifact_version_id) VALUES (?, ?, ?)',
          stepRunId,
          outputName,
          version.id,
        );
        outputs[outputName] = version;
      }
      const metadata =
        completion.metadata === undefined
          ? row.metadata
          : json(mergeRecords<Metadata>(parseJson<Metadata>(row.metadata), completion.metadata));
      this.sql.run(
        `UPDATE step_runs SET status = 'completed', ended_at = ?, duration_ms = ?, attempts = ?, metadata = ?,
           logs = COALESCE(?, logs)
         WHERE id = ?`,
        completion.endedAt,
        completion.durationMs,
        completion.attempts,
        metadata,
        completion.logs === undefined ? null : json(completion.logs),
        stepRunId,
      );
      return { stepRun: loadStepRun(this.sql, stepRunId), outputs };
    });
  }

  async recordCachedStep(stepRun: StepRun): Promise<StepRun> {
    return this.sql.write(() => {
      if (stepRun.cachedFrom === undefined) {
        throw storeErrors.cachedWithoutSource(stepRun.id);
      }
      loadStepRunRow(this.sql, stepRun.cachedFrom);
      this.claimSlot(stepRun);
      assertArtifactVersionsExist(this.sql, stepRun.outputs, 'output', stepRun.id);
      insertStepRunRow(
        this.sql,
        mergeRecords<StepRun>(stepRun, { endedAt: stepRun.endedAt ?? stepRun.startedAt }),
        'cached',
      );
      for (const [name, artifactVersionId] of Object.entries(stepRun.outputs)) {
        this.sql.run(
          'INSERT INTO step_run_outputs (step_run_id, output_name, artifact_version_id) VALUES (?, ?, ?)',
          stepRun.id,
          name,
          artifactVersionId,
        );
      }
      return loadStepRun(this.sql, stepRun.id);
    });
  }

  async endStep(
    stepRunId: string,
    status: Extract<StepRunStatus, 'failed' | 'cancelled'>,
    endedAt: string,
    details: { durationMs: number; attempts: number; error?: ErrorInfo; logs?: string[] },
  ): Promise<StepRun> {
    return this.sql.write(() => {
      this.runningStepRow(stepRunId, status);
      this.sql.run(
        `UPDATE step_runs SET status = ?, ended_at = ?, duration_ms = ?, attempts = ?, error = ?, logs = COALESCE(?, logs)
         WHERE id = ?`,
        status,
        endedAt,
        details.durationMs,
        details.attempts,
        details.error === undefined ? null : json(details.error),
        details.logs === undefined ? null : json(details.logs),
        stepRunId,
      );
      return loadStepRun(this.sql, stepRunId);
    });
  }

  async getStep(stepRunId: string): Promise<StepRun> {
    return loadStepRun(this.sql, stepRunId);
  }

  async listSteps(runId: string): Promise<StepRun[]> {
    const rows = this.sql.all<StepRunRow>('SELECT * FROM step_runs WHERE run_id = ? ORDER BY started_at, id', runId);
    return hydrateStepRuns(this.sql, rows);
  }

  async latestSteps(runId: string, stepIds: readonly string[]): Promise<Map<string, StepRun>> {
    const rows = [...new Set(stepIds)].flatMap((stepId) => {
      const row = this.sql.get<StepRunRow>(LATEST_STEP_RUN_SQL, runId, stepId);
      return row === undefined ? [] : [row];
    });
    return new Map(hydrateStepRuns(this.sql, rows).map((step) => [step.stepId, step]));
  }

  async findCacheHit(cacheKey: string): Promise<StepRun | undefined> {
    const row = this.sql.get<StepRunRow>(
      `SELECT * FROM step_runs WHERE cache_key = ? AND status = 'completed' ORDER BY ended_at DESC, id DESC LIMIT 1`,
      cacheKey,
    );
    return row === undefined ? undefined : hydrateStepRuns(this.sql, [row])[0];
  }

  async abandon(
    runIds: string[],
    status: 'failed' | 'cancelled',
    endedAt: string,
    error: ErrorInfo,
  ): Promise<string[]> {
    return abandonRuns(this.sql, runIds, status, endedAt, error);
  }

  private runningStepRow(stepRunId: string, requestedStatus: StepRunStatus): StepRunRow {
    const row = loadStepRunRow(this.sql, stepRunId);
    if (row.status !== 'running') {
      throw new ConflictError(
        `Step run "${stepRunId}" already ended as ${row.status}; only a running step run can become ${requestedStatus}`,
        { context: { stepRunId, status: row.status, requestedStatus } },
      );
    }
    return row;
  }
}
