import { NotFoundError } from '../../errors.ts';
import { faultPoint } from '../../util/fault-points.ts';
import { newId } from '../../util/ids.ts';
import { storeErrors } from '../store-errors.ts';
import { uniqueTags } from '../store-rules.ts';
import type {
  ArtifactVersion,
  ArtifactVersionDraft,
  ErrorInfo,
  ExecutorIdentity,
  MetadataTarget,
  ModelRecord,
  ModelStage,
  PipelineRun,
  RunStatus,
  StackRecord,
  StageChange,
  StepRun,
  StepRunStatus,
} from '../types.ts';

import { insertTags, json, parseJson, parseOptionalJson, type Sql } from './sql.ts';

// ---------- Rows and mapping ----------

export interface StackRow {
  name: string;
  components: string;
  description: string | null;
  tags: string;
  created_at: string;
  updated_at: string;
}

export interface RunRow {
  id: string;
  pipeline: string;
  status: RunStatus;
  stack: string;
  parameters: string;
  config: string;
  tags: string;
  metadata: string;
  created_by: string;
  started_at: string;
  ended_at: string | null;
  error: string | null;
  model_version_id: string | null;
  executor: string | null;
  lease_expires_at: string | null;
}

export interface StepRunRow {
  id: string;
  run_id: string;
  step_id: string;
  step_name: string;
  status: StepRunStatus;
  cache_key: string;
  code_hash: string;
  parameters: string;
  started_at: string;
  ended_at: string | null;
  duration_ms: number | null;
  attempts: number;
  error: string | null;
  cached_from: string | null;
  metadata: string;
  logs: string | null;
  executor: string | null;
  lease_expires_at: string | null;
}

export interface ArtifactVersionRow {
  id: string;
  name: string;
  version: number;
  content_hash: string;
  uri: string;
  size: number;
  materializer: string;
  data_type: string;
  metadata: string;
  tags: string;
  producer_run_id: string | null;
  producer_step_run_id: string | null;
  created_at: string;
}

export interface ModelRow {
  name: string;
  description: string | null;
  tags: string;
  metadata: string;
  latest_version: number;
  created_at: string;
  updated_at: string;
  /** JSON of a PromotionGate; NULL when the model has none. */
  promotion_gate: string | null;
}

export interface ModelVersionRow {
  id: string;
  model: string;
  number: number;
  name: string | null;
  description: string | null;
  stage: ModelStage | null;
  tags: string;
  metadata: string;
  created_at: string;
  updated_at: string;
}

export interface StageChangeRow {
  seq: number;
  id: string;
  model: string;
  version_number: number;
  kind: StageChange['kind'];
  from_stage: ModelStage | null;
  to_stage: ModelStage | null;
  alias: string | null;
  previous_version: number | null;
  actor: string;
  reason: string | null;
  at: string;
}

export function toStack(row: StackRow): StackRecord {
  const stack: StackRecord = {
    name: row.name,
    components: parseJson(row.components),
    tags: parseJson(row.tags),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
  if (row.description !== null) stack.description = row.description;
  return stack;
}

export function toRun(row: RunRow): PipelineRun {
  const run: PipelineRun = {
    id: row.id,
    pipeline: row.pipeline,
    status: row.status,
    stack: row.stack,
    parameters: parseJson(row.parameters),
    config: parseJson(row.config),
    tags: parseJson(row.tags),
    metadata: parseJson(row.metadata),
    createdBy: row.created_by,
    startedAt: row.started_at,
  };
  if (row.ended_at !== null) run.endedAt = row.ended_at;
  const error = parseOptionalJson<ErrorInfo>(row.error);
  if (error !== undefined) run.error = error;
  if (row.model_version_id !== null) run.modelVersionId = row.model_version_id;
  const executor = parseOptionalJson<ExecutorIdentity>(row.executor);
  if (executor !== undefined) run.executor = executor;
  if (row.lease_expires_at !== null) run.leaseExpiresAt = row.lease_expires_at;
  return run;
}

export function toStepRun(row: StepRunRow, inputs: Record<string, string>, outputs: Record<string, string>): StepRun {
  const stepRun: StepRun = {
    id: row.id,
    runId: row.run_id,
    stepId: row.step_id,
    stepName: row.step_name,
    status: row.status,
    cacheKey: row.cache_key,
    codeHash: row.code_hash,
    parameters: parseJson(row.parameters),
    startedAt: row.started_at,
    attempts: row.attempts,
    inputs,
    outputs,
    metadata: parseJson(row.metadata),
  };
  if (row.ended_at !== null) stepRun.endedAt = row.ended_at;
  if (row.duration_ms !== null) stepRun.durationMs = row.duration_ms;
  const error = parseOptionalJson<ErrorInfo>(row.error);
  if (error !== undefined) stepRun.error = error;
  if (row.cached_from !== null) stepRun.cachedFrom = row.cached_from;
  const logs = parseOptionalJson<string[]>(row.logs);
  if (logs !== undefined) stepRun.logs = logs;
  const executor = parseOptionalJson<ExecutorIdentity>(row.executor);
  if (executor !== undefined) stepRun.executor = executor;
  if (row.lease_expires_at !== null) stepRun.leaseExpiresAt = row.lease_expires_at;
  return stepRun;
}

export function toArtifactVersion(row: ArtifactVersionRow): ArtifactVersion {
  const version: ArtifactVersion = {
    id: row.id,
    name: row.name,
    version: row.version,
    contentHash: row.content_hash,
    uri: row.uri,
    size: row.size,
    materializer: row.materializer,
    dataType: row.data_type,
    metadata: parseJson(row.metadata),
    tags: parseJson(row.tags),
    createdAt: row.created_at,
  };
  if (row.producer_run_id !== null) version.producerRunId = row.producer_run_id;
  if (row.producer_step_run_id !== null) version.producerStepRunId = row.producer_step_run_id;
  return version;
}

export function toModel(row: ModelRow): ModelRecord {
  const model: ModelRecord = {
    name: row.name,
    tags: parseJson(row.tags),
    metadata: parseJson(row.metadata),
    latestVersion: row.latest_version,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
  if (row.description !== null) model.description = row.description;
  if (row.promotion_gate !== null) model.promotionGate = parseJson(row.promotion_gate);
  return model;
}

export function toStageChange(row: StageChangeRow): StageChange {
  const change: StageChange = {
    id: row.id,
    model: row.model,
    versionNumber: row.version_number,
    kind: row.kind,
    actor: row.actor,
    at: row.at,
  };
  if (row.from_stage !== null) change.fromStage = row.from_stage;
  if (row.to_stage !== null) change.toStage = row.to_stage;
  if (row.alias !== null) change.alias = row.alias;
  if (row.previous_version !== null) change.previousVersion = row.previous_version;
  if (row.reason !== null) change.reason = row.reason;
  return change;
}

export function metadataTable(target: MetadataTarget): {
  table: string;
  key: string;
  id: string;
  label: string;
  touch: boolean;
} {
  switch (target.kind) {
    case 'run':
      return { table: 'pipeline_runs', key: 'id', id: target.id, label: 'Run', touch: false };
    case 'step_run':
      return { table: 'step_runs', key: 'id', id: target.id, label: 'Step run', touch: false };
    case 'artifact_version':
      return { table: 'artifact_versions', key: 'id', id: target.id, label: 'Artifact version', touch: false };
    case 'model_version':
      return { table: 'model_versions', key: 'id', id: target.id, label: 'Model version', touch: true };
    case 'model':
      return { table: 'models', key: 'name', id: target.name, label: 'Model', touch: true };
  }
}

// ---------- Shared reads and writes ----------

export function loadRunRow(sql: Sql, id: string): RunRow {
  const row = sql.get<RunRow>('SELECT * FROM pipeline_runs WHERE id = ?', id);
  if (row === undefined) throw storeErrors.runNotFound(id);
  return row;
}

export function loadStepRunRow(sql: Sql, id: string): StepRunRow {
  const row = sql.get<StepRunRow>('SELECT * FROM step_runs WHERE id = ?', id);
  if (row === undefined) throw storeErrors.stepRunNotFound(id);
  return row;
}

export function namedIds(rows: { owner: string; name: string; artifact_version_id: string }[]) {
  const byOwner = new Map<string, Record<string, string>>();
  for (const row of rows) {
    let record = byOwner.get(row.owner);
    if (record === undefined) {
      record = {};
      byOwner.set(row.owner, record);
    }
    record[row.name] = row.artifact_version_id;
  }
  return byOwner;
}

/** Step runs with their inputs and outputs, two queries for the whole batch. */
export function hydrateStepRuns(sql: Sql, rows: StepRunRow[]): StepRun[] {
  if (rows.length === 0) return [];
  if (rows.length === 1) {
    const row = rows[0]!;
    const inputs = sql.all<{ owner: string; name: string; artifact_version_id: string }>(
      'SELECT step_run_id AS owner, input_name AS name, artifact_version_id FROM step_run_inputs WHERE step_run_id = ? ORDER BY rowid',
      row.id,
    );
    const outputs = sql.all<{ owner: string; name: string; artifact_version_id: string }>(
      'SELECT step_run_id AS owner, output_name AS name, artifact_version_id FROM step_run_outputs WHERE step_run_id = ? ORDER BY rowid',
      row.id,
    );
    return [toStepRun(row, namedIds(inputs).get(row.id) ?? {}, namedIds(outputs).get(row.id) ?? {})];
  }
  const ids = json(rows.map((row) => row.id));
  const inputs = namedIds(
    sql.all(
      'SELECT step_run_id AS owner, input_name AS name, artifact_version_id FROM step_run_inputs WHERE step_run_id IN (SELECT value FROM json_each(?)) ORDER BY rowid',
      ids,
    ),
  );
  const outputs = namedIds(
    sql.all(
      'SELECT step_run_id AS owner, output_name AS name, artifact_version_id FROM step_run_outputs WHERE step_run_id IN (SELECT value FROM json_each(?)) ORDER BY rowid',
      ids,
    ),
  );
  return rows.map((row) => toStepRun(row, inputs.get(row.id) ?? {}, outputs.get(row.id) ?? {}));
}

export function loadStepRun(sql: Sql, id: string): StepRun {
  return hydrateStepRuns(sql, [loadStepRunRow(sql, id)])[0]!;
}

export function assertArtifactVersionsExist(
  sql: Sql,
  ids: Record<string, string>,
  role: string,
  stepRunId: string,
): void {
  for (const [name, id] of Object.entries(ids)) {
    if (sql.get('SELECT 1 FROM artifact_versions WHERE id = ?', id) === undefined) {
      throw new NotFoundError(`Artifact version "${id}" (${role} "${name}" of step run "${stepRunId}") not found`, {
        context: { stepRunId, [role]: name, artifactVersionId: id },
      });
    }
  }
}

export function insertStepRunRow(sql: Sql, stepRun: StepRun, status: StepRunStatus): void {
  if (sql.get('SELECT 1 FROM pipeline_runs WHERE id = ?', stepRun.runId) === undefined) {
    throw storeErrors.runOfStepRunNotFound(stepRun.runId, stepRun.id);
  }
  if (sql.get('SELECT 1 FROM step_runs WHERE id = ?', stepRun.id) !== undefined) {
    throw storeErrors.alreadyExists('Step run', stepRun.id, { stepRunId: stepRun.id });
  }
  assertArtifactVersionsExist(sql, stepRun.inputs, 'input', stepRun.id);
  sql.run(
    `INSERT INTO step_runs (id, run_id, step_id, step_name, status, cache_key, code_hash, parameters, started_at,
       ended_at, duration_ms, attempts, error, cached_from, metadata, logs, executor, lease_expires_at)
     VALUES (@id, @runId, @stepId, @stepName, @status, @cacheKey, @codeHash, @parameters, @startedAt,
       @endedAt, @durationMs, @attempts, @error, @cachedFrom, @metadata, @logs, @executor, @leaseExpiresAt)`,
    {
      id: stepRun.id,
      runId: stepRun.runId,
      stepId: stepRun.stepId,
      stepName: stepRun.stepName,
      status,
      cacheKey: stepRun.cacheKey,
      codeHash: stepRun.codeHash,
      parameters: json(stepRun.parameters),
      startedAt: stepRun.startedAt,
      endedAt: stepRun.endedAt ?? null,
      durationMs: stepRun.durationMs ?? null,
      attempts: stepRun.attempts,
      error: stepRun.error === undefined ? null : json(stepRun.error),
      cachedFrom: stepRun.cachedFrom ?? null,
      metadata: json(stepRun.metadata),
      logs: stepRun.logs === undefined ? null : json(stepRun.logs),
      executor: stepRun.executor === undefined ? null : json(stepRun.executor),
      leaseExpiresAt: stepRun.leaseExpiresAt ?? null,
    },
  );
  for (const [name, artifactVersionId] of Object.entries(stepRun.inputs)) {
    sql.run(
      'INSERT INTO step_run_inputs (step_run_id, input_name, artifact_version_id) VALUES (?, ?, ?)',
      stepRun.id,
      name,
      artifactVersionId,
    );
  }
}

/** Must run inside {@link Sql.write}: the version number is only safe under the write lock. */
export function insertArtifactVersion(sql: Sql, draft: ArtifactVersionDraft, createdAt: string): ArtifactVersion {
  const id = draft.id ?? newId('av');
  if (sql.get('SELECT 1 FROM artifact_versions WHERE id = ?', id) !== undefined) {
    throw storeErrors.alreadyExists('Artifact version', id, { artifactVersionId: id });
  }
  const next = sql.get<{ version: number }>(
    'SELECT COALESCE(MAX(version), 0) + 1 AS version FROM artifact_versions WHERE name = ?',
    draft.name,
  )!;
  const tags = uniqueTags(draft.tags);
  const row: ArtifactVersionRow = {
    id,
    name: draft.name,
    version: next.version,
    content_hash: draft.contentHash,
    uri: draft.uri,
    size: draft.size,
    materializer: draft.materializer,
    data_type: draft.dataType,
    metadata: json(draft.metadata),
    tags: json(tags),
    producer_run_id: draft.producerRunId ?? null,
    producer_step_run_id: draft.producerStepRunId ?? null,
    created_at: createdAt,
  };
  sql.run(
    `INSERT INTO artifact_versions (id, name, version, content_hash, uri, size, materializer, data_type, metadata, tags,
       producer_run_id, producer_step_run_id, created_at)
     VALUES (@id, @name, @version, @content_hash, @uri, @size, @materializer, @data_type, @metadata, @tags,
       @producer_run_id, @producer_step_run_id, @created_at)`,
    row,
  );
  faultPoint('artifact-version:allocated');
  insertTags(sql, 'artifact_version', id, tags);
  return toArtifactVersion(row);
}

export function abandonRuns(
  sql: Sql,
  runIds: string[],
  status: 'failed' | 'cancelled',
  endedAt: string,
  error: ErrorInfo,
): string[] {
  const errorJson = json(error);
  return sql.write(() => {
    const changed: string[] = [];
    for (const runId of runIds) {
      const result = sql.run(
        `UPDATE pipeline_runs SET status = ?, ended_at = ?, error = ? WHERE id = ? AND status IN ('pending', 'running')`,
        status,
        endedAt,
        errorJson,
        runId,
      );
      if (result.changes === 0) continue;
      changed.push(runId);
      sql.run(
        `UPDATE step_runs
         SET status = ?, ended_at = ?, error = ?,
             duration_ms = MAX(0, ROUND((julianday(?) - julianday(started_at)) * 86400000))
         WHERE run_id = ? AND status = 'running'`,
        status,
        endedAt,
        errorJson,
        endedAt,
        runId,
      );
    }
    return changed;
  });
}

export function assertModelVersionExists(sql: Sql, id: string): void {
  if (sql.get('SELECT 1 FROM model_versions WHERE id = ?', id) === undefined) {
    throw storeErrors.modelVersionNotFound(id);
  }
}
