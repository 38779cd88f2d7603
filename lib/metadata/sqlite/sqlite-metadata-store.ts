import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { ConflictError, NotFoundError, ValidationError } from '../../errors.ts';
import { newId, nowIso } from '../../util/ids.ts';
import type {
  ArtifactRepository,
  MetadataStore,
  ModelRepository,
  PromoteOptions,
  RunRepository,
  StackRepository,
} from '../metadata-store.ts';
import { assertVersionLabel, normalizeTimestamp, pageLimit, uniqueTags } from '../store-rules.ts';
import {
  type ArtifactSummary,
  type ArtifactVersion,
  type ArtifactVersionDraft,
  type ErrorInfo,
  EXCLUSIVE_STAGES,
  type Metadata,
  type MetadataTarget,
  MODEL_STAGES,
  type ModelArtifactLink,
  type ModelArtifactRole,
  type ModelRecord,
  type ModelStage,
  type ModelVersion,
  type ModelVersionRef,
  type Page,
  type PageRequest,
  type PipelineRun,
  type RunFilter,
  type RunStatus,
  type StackRecord,
  type StageChange,
  type StepRun,
  type StepRunCompletion,
  type StepRunStatus,
  type Tag,
  type TagFilter,
} from '../types.ts';
import { migrate } from './migrations.ts';

const BUSY_TIMEOUT_MS = 10_000;

type TagKind = 'stack' | 'run' | 'artifact_version' | 'model' | 'model_version';

/**
 * The embedded {@link MetadataStore}: one SQLite file (better-sqlite3) per local stack. Safe for
 * several processes on the same file: WAL journaling, a 10 s busy timeout, and every write in a
 * `BEGIN IMMEDIATE` transaction, so version numbers (artifact versions, model versions) are
 * allocated as `MAX + 1` under the write lock and never duplicated. The schema is migrated on open
 * (see `migrations.ts`).
 *
 * Behaviour the interface leaves open, decided here (and held by the conformance suite):
 * - `models.getVersion` resolves a string as `latest`, then a stage, then an alias, then a version
 *   name; aliases and version names that would read as one of the others are refused.
 * - `models.setStage` to the stage the version already has is a no-op returning `[]`.
 * - `models.removeAlias` records an alias change whose `versionNumber` and `previousVersion` are both
 *   the version that lost the alias.
 *
 * @example
 * ```ts
 * const store = SqliteMetadataStore.open('.stackline/metadata.db');
 * const run = await store.runs.get(runId);
 * await store.close();
 * ```
 */
export class SqliteMetadataStore implements MetadataStore {
  readonly kind = 'sqlite';
  readonly stacks: StackRepository;
  readonly runs: RunRepository;
  readonly artifacts: ArtifactRepository;
  readonly models: ModelRepository;
  private readonly sql: Sql;

  private constructor(db: Database.Database) {
    this.sql = new Sql(db);
    this.stacks = new SqliteStackRepository(this.sql);
    this.runs = new SqliteRunRepository(this.sql);
    this.artifacts = new SqliteArtifactRepository(this.sql);
    this.models = new SqliteModelRepository(this.sql);
  }

  /**
   * Opens (creating if needed) the database at `path` — `':memory:'` for a private in-memory
   * store — and migrates it to the current schema.
   *
   * @throws StacklineError when the file was written by a newer Stackline.
   */
  static open(path: string): SqliteMetadataStore {
    const inMemory = path === ':memory:' || path === '';
    if (!inMemory) mkdirSync(dirname(path), { recursive: true });
    const db = new Database(path, { timeout: BUSY_TIMEOUT_MS });
    try {
      db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
      if (!inMemory) db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.pragma('foreign_keys = ON');
      migrate(db, inMemory ? 'in memory' : `"${path}"`);
    } catch (error) {
      db.close();
      throw error;
    }
    return new SqliteMetadataStore(db);
  }

  /**
   * Synchronous {@link RunRepository.abandon}, for `process.on('exit')` handlers, which cannot wait
   * for a promise. Marks each listed run still `pending`/`running` (and its running step runs) as
   * `status`; returns the ids of the runs it changed.
   */
  abandonSync(runIds: string[], status: 'failed' | 'cancelled', endedAt: string, error: ErrorInfo): string[] {
    return abandonRuns(this.sql, runIds, status, endedAt, error);
  }

  async logMetadata(target: MetadataTarget, values: Metadata): Promise<void> {
    const { table, key, id, label, touch } = metadataTable(target);
    this.sql.write(() => {
      const row = this.sql.get<{ metadata: string }>(`SELECT metadata FROM ${table} WHERE ${key} = ?`, id);
      if (row === undefined) {
        throw new NotFoundError(`${label} "${id}" not found`, { context: { target } });
      }
      const merged = json({ ...parseJson<Metadata>(row.metadata), ...values });
      if (touch) {
        this.sql.run(`UPDATE ${table} SET metadata = ?, updated_at = ? WHERE ${key} = ?`, merged, nowIso(), id);
      } else {
        this.sql.run(`UPDATE ${table} SET metadata = ? WHERE ${key} = ?`, merged, id);
      }
    });
  }

  async close(): Promise<void> {
    if (this.sql.db.open) this.sql.db.close();
  }
}

// ---------- Plumbing ----------

/** The connection with its prepared-statement cache; every query goes through here. */
class Sql {
  private readonly statements = new Map<string, Database.Statement>();
  private readonly transaction: Database.Transaction<(fn: () => unknown) => unknown>;

  constructor(readonly db: Database.Database) {
    this.transaction = db.transaction((fn: () => unknown) => fn());
  }

  get<T>(sql: string, ...params: unknown[]): T | undefined {
    return this.statement(sql).get(...params) as T | undefined;
  }

  all<T>(sql: string, ...params: unknown[]): T[] {
    return this.statement(sql).all(...params) as T[];
  }

  run(sql: string, ...params: unknown[]): Database.RunResult {
    return this.statement(sql).run(...params);
  }

  /**
   * Runs `fn` in a `BEGIN IMMEDIATE` transaction (a savepoint when already inside one). Taking the
   * write lock up front is what makes read-then-write sequences (MAX + 1, check-then-insert) safe
   * across processes; a deferred transaction would fail to upgrade its lock instead of waiting.
   */
  write<T>(fn: () => T): T {
    try {
      return this.transaction.immediate(fn) as T;
    } catch (error) {
      throw translateSqliteError(error);
    }
  }

  private statement(sql: string): Database.Statement {
    let statement = this.statements.get(sql);
    if (statement === undefined) {
      statement = this.db.prepare(sql);
      this.statements.set(sql, statement);
    }
    return statement;
  }
}

function translateSqliteError(error: unknown): unknown {
  if (!(error instanceof Database.SqliteError)) return error;
  if (error.code.startsWith('SQLITE_CONSTRAINT')) {
    return new ConflictError(`Metadata write rejected by a database constraint: ${error.message}`, {
      cause: error,
      context: { sqliteCode: error.code },
    });
  }
  if (error.code.startsWith('SQLITE_BUSY')) {
    return new ConflictError(
      `Metadata database is locked by another process (waited up to ${BUSY_TIMEOUT_MS / 1000} s); retry when it finishes`,
      { cause: error, context: { sqliteCode: error.code } },
    );
  }
  return error;
}

function json(value: unknown): string {
  return JSON.stringify(value);
}

function parseJson<T>(text: string): T {
  return JSON.parse(text) as T;
}

function parseOptionalJson<T>(text: string | null): T | undefined {
  return text === null ? undefined : parseJson<T>(text);
}

function insertTags(sql: Sql, kind: TagKind, id: string, tags: readonly Tag[]): void {
  for (const tag of tags) {
    sql.run('INSERT OR IGNORE INTO tags (entity_kind, entity_id, tag) VALUES (?, ?, ?)', kind, id, tag);
  }
}

function tagCondition(kind: TagKind, column: string): string {
  return `${column} IN (SELECT entity_id FROM tags WHERE entity_kind = '${kind}' AND tag = ?)`;
}

// ---------- Pagination ----------

type CursorKey = (string | number)[];

function encodeCursor(key: CursorKey): string {
  return Buffer.from(json(key)).toString('base64url');
}

function decodeCursor(cursor: string, shape: readonly ('string' | 'number')[]): CursorKey {
  let key: unknown;
  try {
    key = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    key = undefined;
  }
  if (!Array.isArray(key) || key.length !== shape.length || !key.every((part, index) => typeof part === shape[index])) {
    throw new ValidationError(`Invalid page cursor "${cursor}"; pass back the nextCursor of the previous page`, {
      context: { cursor },
    });
  }
  return key as CursorKey;
}

/** `rows` holds up to `limit + 1` rows; the extra one only says there is another page. */
function toPage<R, T>(rows: R[], limit: number, map: (rows: R[]) => T[], keyOf: (row: R) => CursorKey): Page<T> {
  const hasMore = rows.length > limit;
  const pageRows = hasMore ? rows.slice(0, limit) : rows;
  const page: Page<T> = { items: map(pageRows) };
  const last = pageRows.at(-1);
  if (hasMore && last !== undefined) page.nextCursor = encodeCursor(keyOf(last));
  return page;
}

// ---------- Rows and mapping ----------

interface StackRow {
  name: string;
  components: string;
  description: string | null;
  tags: string;
  created_at: string;
  updated_at: string;
}

interface RunRow {
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
}

interface StepRunRow {
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
}

interface ArtifactVersionRow {
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

interface ModelRow {
  name: string;
  description: string | null;
  tags: string;
  metadata: string;
  latest_version: number;
  created_at: string;
  updated_at: string;
}

interface ModelVersionRow {
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

interface StageChangeRow {
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

function toStack(row: StackRow): StackRecord {
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

function toRun(row: RunRow): PipelineRun {
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
  return run;
}

function toStepRun(row: StepRunRow, inputs: Record<string, string>, outputs: Record<string, string>): StepRun {
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
  return stepRun;
}

function toArtifactVersion(row: ArtifactVersionRow): ArtifactVersion {
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

function toModel(row: ModelRow): ModelRecord {
  const model: ModelRecord = {
    name: row.name,
    tags: parseJson(row.tags),
    metadata: parseJson(row.metadata),
    latestVersion: row.latest_version,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
  if (row.description !== null) model.description = row.description;
  return model;
}

function toStageChange(row: StageChangeRow): StageChange {
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

function metadataTable(target: MetadataTarget): {
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

function loadRunRow(sql: Sql, id: string): RunRow {
  const row = sql.get<RunRow>('SELECT * FROM pipeline_runs WHERE id = ?', id);
  if (row === undefined) throw new NotFoundError(`Run "${id}" not found`, { context: { runId: id } });
  return row;
}

function loadStepRunRow(sql: Sql, id: string): StepRunRow {
  const row = sql.get<StepRunRow>('SELECT * FROM step_runs WHERE id = ?', id);
  if (row === undefined) throw new NotFoundError(`Step run "${id}" not found`, { context: { stepRunId: id } });
  return row;
}

function namedIds(rows: { owner: string; name: string; artifact_version_id: string }[]) {
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
function hydrateStepRuns(sql: Sql, rows: StepRunRow[]): StepRun[] {
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

function loadStepRun(sql: Sql, id: string): StepRun {
  return hydrateStepRuns(sql, [loadStepRunRow(sql, id)])[0]!;
}

function assertArtifactVersionsExist(sql: Sql, ids: Record<string, string>, role: string, stepRunId: string): void {
  for (const [name, id] of Object.entries(ids)) {
    if (sql.get('SELECT 1 FROM artifact_versions WHERE id = ?', id) === undefined) {
      throw new NotFoundError(`Artifact version "${id}" (${role} "${name}" of step run "${stepRunId}") not found`, {
        context: { stepRunId, [role]: name, artifactVersionId: id },
      });
    }
  }
}

function insertStepRunRow(sql: Sql, stepRun: StepRun, status: StepRunStatus): void {
  if (sql.get('SELECT 1 FROM pipeline_runs WHERE id = ?', stepRun.runId) === undefined) {
    throw new NotFoundError(`Run "${stepRun.runId}" of step run "${stepRun.id}" not found; create the run first`, {
      context: { runId: stepRun.runId, stepRunId: stepRun.id },
    });
  }
  if (sql.get('SELECT 1 FROM step_runs WHERE id = ?', stepRun.id) !== undefined) {
    throw new ConflictError(`Step run "${stepRun.id}" already exists`, { context: { stepRunId: stepRun.id } });
  }
  assertArtifactVersionsExist(sql, stepRun.inputs, 'input', stepRun.id);
  sql.run(
    `INSERT INTO step_runs (id, run_id, step_id, step_name, status, cache_key, code_hash, parameters, started_at,
       ended_at, duration_ms, attempts, error, cached_from, metadata, logs)
     VALUES (@id, @runId, @stepId, @stepName, @status, @cacheKey, @codeHash, @parameters, @startedAt,
       @endedAt, @durationMs, @attempts, @error, @cachedFrom, @metadata, @logs)`,
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
function insertArtifactVersion(sql: Sql, draft: ArtifactVersionDraft, createdAt: string): ArtifactVersion {
  const id = draft.id ?? newId('av');
  if (sql.get('SELECT 1 FROM artifact_versions WHERE id = ?', id) !== undefined) {
    throw new ConflictError(`Artifact version "${id}" already exists`, { context: { artifactVersionId: id } });
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
  insertTags(sql, 'artifact_version', id, tags);
  return toArtifactVersion(row);
}

function abandonRuns(
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

// ---------- Stacks ----------

class SqliteStackRepository implements StackRepository {
  constructor(private readonly sql: Sql) {}

  async put(stack: Omit<StackRecord, 'createdAt' | 'updatedAt'>): Promise<StackRecord> {
    return this.sql.write(() => {
      const now = nowIso();
      const tags = uniqueTags(stack.tags);
      this.sql.run(
        `INSERT INTO stacks (name, components, description, tags, created_at, updated_at)
         VALUES (@name, @components, @description, @tags, @now, @now)
         ON CONFLICT (name) DO UPDATE SET components = excluded.components, description = excluded.description,
           tags = excluded.tags, updated_at = excluded.updated_at`,
        {
          name: stack.name,
          components: json(stack.components),
          description: stack.description ?? null,
          tags: json(tags),
          now,
        },
      );
      this.sql.run(`DELETE FROM tags WHERE entity_kind = 'stack' AND entity_id = ?`, stack.name);
      insertTags(this.sql, 'stack', stack.name, tags);
      return toStack(this.sql.get<StackRow>('SELECT * FROM stacks WHERE name = ?', stack.name)!);
    });
  }

  async get(name: string): Promise<StackRecord> {
    const stack = await this.find(name);
    if (stack === undefined) throw new NotFoundError(`Stack "${name}" not found`, { context: { stack: name } });
    return stack;
  }

  async find(name: string): Promise<StackRecord | undefined> {
    const row = this.sql.get<StackRow>('SELECT * FROM stacks WHERE name = ?', name);
    return row === undefined ? undefined : toStack(row);
  }

  async list(filter: TagFilter = {}): Promise<Page<StackRecord>> {
    const limit = pageLimit(filter.limit);
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.tag !== undefined) {
      where.push(tagCondition('stack', 'name'));
      params.push(filter.tag);
    }
    if (filter.cursor !== undefined) {
      where.push('name > ?');
      params.push(...decodeCursor(filter.cursor, ['string']));
    }
    const rows = this.sql.all<StackRow>(
      `SELECT * FROM stacks ${whereClause(where)} ORDER BY name LIMIT ?`,
      ...params,
      limit + 1,
    );
    return toPage(
      rows,
      limit,
      (page) => page.map(toStack),
      (row) => [row.name],
    );
  }

  async delete(name: string): Promise<void> {
    this.sql.write(() => {
      const result = this.sql.run('DELETE FROM stacks WHERE name = ?', name);
      if (result.changes === 0) throw new NotFoundError(`Stack "${name}" not found`, { context: { stack: name } });
      this.sql.run(`DELETE FROM tags WHERE entity_kind = 'stack' AND entity_id = ?`, name);
    });
  }
}

function whereClause(conditions: string[]): string {
  return conditions.length === 0 ? '' : `WHERE ${conditions.join(' AND ')}`;
}

// ---------- Runs and step runs ----------

class SqliteRunRepository implements RunRepository {
  constructor(private readonly sql: Sql) {}

  async create(run: PipelineRun): Promise<PipelineRun> {
    return this.sql.write(() => {
      if (this.sql.get('SELECT 1 FROM pipeline_runs WHERE id = ?', run.id) !== undefined) {
        throw new ConflictError(`Run "${run.id}" already exists`, { context: { runId: run.id } });
      }
      if (run.modelVersionId !== undefined) assertModelVersionExists(this.sql, run.modelVersionId);
      const tags = uniqueTags(run.tags);
      this.sql.run(
        `INSERT INTO pipeline_runs (id, pipeline, status, stack, parameters, config, tags, metadata, created_by,
           started_at, ended_at, error, model_version_id)
         VALUES (@id, @pipeline, @status, @stack, @parameters, @config, @tags, @metadata, @createdBy,
           @startedAt, @endedAt, @error, @modelVersionId)`,
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
        throw new ConflictError(`Run "${id}" already finished as ${row.status}; it cannot become ${status}`, {
          context: { runId: id, status: row.status, requestedStatus: status },
        });
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
      insertStepRunRow(this.sql, stepRun, 'running');
      return loadStepRun(this.sql, stepRun.id);
    });
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
          throw new ValidationError(`Step run "${stepRunId}" lists output "${outputName}" twice`, {
            context: { stepRunId, output: outputName },
          });
        }
        const version = insertArtifactVersion(
          this.sql,
          {
            ...artifact,
            producerRunId: artifact.producerRunId ?? row.run_id,
            producerStepRunId: artifact.producerStepRunId ?? stepRunId,
          },
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
          : json({ ...parseJson<Metadata>(row.metadata), ...completion.metadata });
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
        throw new ValidationError(`Cached step run "${stepRun.id}" must name the step run it reuses (cachedFrom)`, {
          context: { stepRunId: stepRun.id },
        });
      }
      loadStepRunRow(this.sql, stepRun.cachedFrom);
      assertArtifactVersionsExist(this.sql, stepRun.outputs, 'output', stepRun.id);
      insertStepRunRow(this.sql, { ...stepRun, endedAt: stepRun.endedAt ?? stepRun.startedAt }, 'cached');
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

// ---------- Artifacts ----------

class SqliteArtifactRepository implements ArtifactRepository {
  constructor(private readonly sql: Sql) {}

  async createVersion(draft: ArtifactVersionDraft): Promise<ArtifactVersion> {
    return this.sql.write(() => insertArtifactVersion(this.sql, draft, nowIso()));
  }

  async getVersion(name: string, version: number | 'latest' = 'latest'): Promise<ArtifactVersion> {
    if (version === 'latest') {
      const row = this.sql.get<ArtifactVersionRow>(
        'SELECT * FROM artifact_versions WHERE name = ? ORDER BY version DESC LIMIT 1',
        name,
      );
      if (row === undefined) {
        throw new NotFoundError(`Artifact "${name}" has no versions`, { context: { artifact: name, version } });
      }
      return toArtifactVersion(row);
    }
    const row = this.sql.get<ArtifactVersionRow>(
      'SELECT * FROM artifact_versions WHERE name = ? AND version = ?',
      name,
      version,
    );
    if (row === undefined) {
      throw new NotFoundError(`Artifact "${name}" has no version ${version}`, { context: { artifact: name, version } });
    }
    return toArtifactVersion(row);
  }

  async getVersionById(id: string): Promise<ArtifactVersion> {
    const row = this.sql.get<ArtifactVersionRow>('SELECT * FROM artifact_versions WHERE id = ?', id);
    if (row === undefined) {
      throw new NotFoundError(`Artifact version "${id}" not found`, { context: { artifactVersionId: id } });
    }
    return toArtifactVersion(row);
  }

  /** In the order asked for; unknown ids are skipped. */
  async getVersionsByIds(ids: string[]): Promise<ArtifactVersion[]> {
    if (ids.length === 0) return [];
    const rows = this.sql.all<ArtifactVersionRow>(
      'SELECT * FROM artifact_versions WHERE id IN (SELECT value FROM json_each(?))',
      json(ids),
    );
    const byId = new Map(rows.map((row) => [row.id, toArtifactVersion(row)]));
    return ids.flatMap((id) => byId.get(id) ?? []);
  }

  /**
   * One summary per artifact name, by name. A summary's tags are the union of its versions' tags,
   * and the tag filter keeps names with at least one version carrying the tag.
   */
  async list(filter: TagFilter = {}): Promise<Page<ArtifactSummary>> {
    const limit = pageLimit(filter.limit);
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.tag !== undefined) {
      where.push(
        `name IN (SELECT av.name FROM tags t JOIN artifact_versions av ON av.id = t.entity_id
                  WHERE t.entity_kind = 'artifact_version' AND t.tag = ?)`,
      );
      params.push(filter.tag);
    }
    if (filter.cursor !== undefined) {
      where.push('name > ?');
      params.push(...decodeCursor(filter.cursor, ['string']));
    }
    const rows = this.sql.all<{ name: string; latest: number; count: number; updated: string }>(
      `SELECT name, MAX(version) AS latest, COUNT(*) AS count, MAX(created_at) AS updated
       FROM artifact_versions ${whereClause(where)} GROUP BY name ORDER BY name LIMIT ?`,
      ...params,
      limit + 1,
    );
    return toPage(
      rows,
      limit,
      (page) => this.summaries(page),
      (row) => [row.name],
    );
  }

  async listVersions(name: string, filter: TagFilter = {}): Promise<Page<ArtifactVersion>> {
    const limit = pageLimit(filter.limit);
    const where = ['name = ?'];
    const params: unknown[] = [name];
    if (filter.tag !== undefined) {
      where.push(tagCondition('artifact_version', 'id'));
      params.push(filter.tag);
    }
    if (filter.cursor !== undefined) {
      where.push('version < ?');
      params.push(...decodeCursor(filter.cursor, ['number']));
    }
    const rows = this.sql.all<ArtifactVersionRow>(
      `SELECT * FROM artifact_versions ${whereClause(where)} ORDER BY version DESC LIMIT ?`,
      ...params,
      limit + 1,
    );
    return toPage(
      rows,
      limit,
      (page) => page.map(toArtifactVersion),
      (row) => [row.version],
    );
  }

  async consumers(artifactVersionId: string): Promise<StepRun[]> {
    const rows = this.sql.all<StepRunRow>(
      `SELECT s.* FROM step_runs s JOIN step_run_inputs i ON i.step_run_id = s.id
       WHERE i.artifact_version_id = ? ORDER BY s.started_at, s.id`,
      artifactVersionId,
    );
    return hydrateStepRuns(this.sql, rows);
  }

  async addTags(artifactVersionId: string, tags: Tag[]): Promise<void> {
    this.sql.write(() => {
      const row = this.sql.get<{ tags: string }>('SELECT tags FROM artifact_versions WHERE id = ?', artifactVersionId);
      if (row === undefined) {
        throw new NotFoundError(`Artifact version "${artifactVersionId}" not found`, {
          context: { artifactVersionId },
        });
      }
      const merged = uniqueTags([...parseJson<Tag[]>(row.tags), ...tags]);
      this.sql.run('UPDATE artifact_versions SET tags = ? WHERE id = ?', json(merged), artifactVersionId);
      insertTags(this.sql, 'artifact_version', artifactVersionId, tags);
    });
  }

  private summaries(rows: { name: string; latest: number; count: number; updated: string }[]): ArtifactSummary[] {
    const tagRows = this.sql.all<{ name: string; tags: string }>(
      'SELECT name, tags FROM artifact_versions WHERE name IN (SELECT value FROM json_each(?)) ORDER BY name, version',
      json(rows.map((row) => row.name)),
    );
    const tagsByName = new Map<string, Set<Tag>>();
    for (const { name, tags } of tagRows) {
      const set = tagsByName.get(name) ?? new Set<Tag>();
      for (const tag of parseJson<Tag[]>(tags)) set.add(tag);
      tagsByName.set(name, set);
    }
    return rows.map((row) => ({
      name: row.name,
      latestVersion: row.latest,
      versionCount: row.count,
      tags: [...(tagsByName.get(row.name) ?? [])],
      updatedAt: row.updated,
    }));
  }
}

// ---------- Models ----------

function assertModelVersionExists(sql: Sql, id: string): void {
  if (sql.get('SELECT 1 FROM model_versions WHERE id = ?', id) === undefined) {
    throw new NotFoundError(`Model version "${id}" not found`, { context: { modelVersionId: id } });
  }
}

class SqliteModelRepository implements ModelRepository {
  constructor(private readonly sql: Sql) {}

  async create(model: { name: string; description?: string; tags?: Tag[]; metadata?: Metadata }): Promise<ModelRecord> {
    return this.sql.write(() => {
      if (this.findModelRow(model.name) !== undefined) {
        throw new ConflictError(`Model "${model.name}" already exists`, { context: { model: model.name } });
      }
      return toModel(this.insertModel(model));
    });
  }

  async ensure(model: { name: string; description?: string; tags?: Tag[] }): Promise<ModelRecord> {
    return this.sql.write(() => toModel(this.findModelRow(model.name) ?? this.insertModel(model)));
  }

  async get(name: string): Promise<ModelRecord> {
    return toModel(this.modelRow(name));
  }

  async list(filter: TagFilter = {}): Promise<Page<ModelRecord>> {
    const limit = pageLimit(filter.limit);
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.tag !== undefined) {
      where.push(tagCondition('model', 'name'));
      params.push(filter.tag);
    }
    if (filter.cursor !== undefined) {
      where.push('name > ?');
      params.push(...decodeCursor(filter.cursor, ['string']));
    }
    const rows = this.sql.all<ModelRow>(
      `SELECT * FROM models ${whereClause(where)} ORDER BY name LIMIT ?`,
      ...params,
      limit + 1,
    );
    return toPage(
      rows,
      limit,
      (page) => page.map(toModel),
      (row) => [row.name],
    );
  }

  async createVersion(
    model: string,
    init: { name?: string; description?: string; tags?: Tag[]; metadata?: Metadata; runId?: string } = {},
  ): Promise<ModelVersion> {
    return this.sql.write(() => {
      const modelRow = this.findModelRow(model) ?? this.insertModel({ name: model });
      if (init.name !== undefined) {
        assertVersionLabel(model, 'version name', init.name);
        const taken = this.sql.get<{ number: number }>(
          'SELECT number FROM model_versions WHERE model = ? AND name = ?',
          model,
          init.name,
        );
        if (taken !== undefined) {
          throw new ConflictError(
            `Model "${model}" already has a version named "${init.name}" (version ${taken.number})`,
            {
              context: { model, name: init.name, version: taken.number },
            },
          );
        }
      }
      if (init.runId !== undefined) loadRunRow(this.sql, init.runId);
      const id = newId('mv');
      const number = modelRow.latest_version + 1;
      const now = nowIso();
      const tags = uniqueTags(init.tags ?? []);
      this.sql.run(
        `INSERT INTO model_versions (id, model, number, name, description, stage, tags, metadata, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, NULL, ?, ?, ?, ?)`,
        id,
        model,
        number,
        init.name ?? null,
        init.description ?? null,
        json(tags),
        json(init.metadata ?? {}),
        now,
        now,
      );
      this.sql.run('UPDATE models SET latest_version = ?, updated_at = ? WHERE name = ?', number, now, model);
      insertTags(this.sql, 'model_version', id, tags);
      if (init.runId !== undefined) {
        this.sql.run('INSERT INTO model_version_runs (model_version_id, run_id) VALUES (?, ?)', id, init.runId);
      }
      return this.hydrate([this.versionRowById(id)])[0]!;
    });
  }

  /**
   * Strings resolve as `latest`, then a stage (`archived` → the highest-numbered archived version),
   * then an alias, then a version name.
   */
  async getVersion(model: string, ref: ModelVersionRef): Promise<ModelVersion> {
    this.modelRow(model);
    const row = this.resolve(model, ref);
    if (row !== undefined) return this.hydrate([row])[0]!;
    const context = { model, ref };
    if (typeof ref === 'number') throw new NotFoundError(`Model "${model}" has no version ${ref}`, { context });
    if (ref === 'latest')
      throw new NotFoundError(`Model "${model}" has no version "latest": it has no versions yet`, { context });
    if ((MODEL_STAGES as readonly string[]).includes(ref)) {
      throw new NotFoundError(`Model "${model}" has no version in stage "${ref}"`, { context });
    }
    throw new NotFoundError(`Model "${model}" has no version named or aliased "${ref}"`, { context });
  }

  async getVersionById(id: string): Promise<ModelVersion> {
    return this.hydrate([this.versionRowById(id)])[0]!;
  }

  async listVersions(model: string, filter: TagFilter & { stage?: ModelStage } = {}): Promise<Page<ModelVersion>> {
    const limit = pageLimit(filter.limit);
    this.modelRow(model);
    const where = ['model = ?'];
    const params: unknown[] = [model];
    if (filter.stage !== undefined) {
      where.push('stage = ?');
      params.push(filter.stage);
    }
    if (filter.tag !== undefined) {
      where.push(tagCondition('model_version', 'id'));
      params.push(filter.tag);
    }
    if (filter.cursor !== undefined) {
      where.push('number < ?');
      params.push(...decodeCursor(filter.cursor, ['number']));
    }
    const rows = this.sql.all<ModelVersionRow>(
      `SELECT * FROM model_versions ${whereClause(where)} ORDER BY number DESC LIMIT ?`,
      ...params,
      limit + 1,
    );
    return toPage(
      rows,
      limit,
      (page) => this.hydrate(page),
      (row) => [row.number],
    );
  }

  /** Links replace an earlier link of the same artifact name (a version has one artifact per name). */
  async linkArtifact(
    modelVersionId: string,
    role: ModelArtifactRole,
    artifactVersion: Pick<ArtifactVersion, 'id' | 'name'>,
  ): Promise<void> {
    this.sql.write(() => {
      this.versionRowById(modelVersionId);
      const stored = this.sql.get<{ name: string }>(
        'SELECT name FROM artifact_versions WHERE id = ?',
        artifactVersion.id,
      );
      if (stored === undefined) {
        throw new NotFoundError(`Artifact version "${artifactVersion.id}" not found`, {
          context: { modelVersionId, artifactVersionId: artifactVersion.id },
        });
      }
      if (stored.name !== artifactVersion.name) {
        throw new ValidationError(
          `Artifact version "${artifactVersion.id}" belongs to artifact "${stored.name}", not "${artifactVersion.name}"`,
          { context: { modelVersionId, artifactVersionId: artifactVersion.id, artifact: artifactVersion.name } },
        );
      }
      this.sql.run(
        `INSERT INTO model_version_artifacts (model_version_id, artifact_name, role, artifact_version_id)
         VALUES (?, ?, ?, ?)
         ON CONFLICT (model_version_id, artifact_name) DO UPDATE SET role = excluded.role,
           artifact_version_id = excluded.artifact_version_id`,
        modelVersionId,
        stored.name,
        role,
        artifactVersion.id,
      );
      this.touchVersion(modelVersionId, nowIso());
    });
  }

  async linkRun(modelVersionId: string, runId: string): Promise<void> {
    this.sql.write(() => {
      this.versionRowById(modelVersionId);
      loadRunRow(this.sql, runId);
      this.sql.run(
        'INSERT OR IGNORE INTO model_version_runs (model_version_id, run_id) VALUES (?, ?)',
        modelVersionId,
        runId,
      );
      this.touchVersion(modelVersionId, nowIso());
    });
  }

  /** Moving a version to the stage it already has changes nothing and returns `[]`. */
  async setStage(model: string, version: number, stage: ModelStage, options: PromoteOptions): Promise<StageChange[]> {
    if (!MODEL_STAGES.includes(stage)) {
      throw new ValidationError(`Unknown model stage "${stage}"; use one of ${MODEL_STAGES.join(', ')}`, {
        context: { model, version, stage },
      });
    }
    return this.sql.write(() => {
      const target = this.versionRowByNumber(model, version);
      if (target.stage === stage) return [];
      const at = nowIso();
      const changes: StageChange[] = [];
      if (EXCLUSIVE_STAGES.includes(stage)) {
        const holder = this.sql.get<ModelVersionRow>(
          'SELECT * FROM model_versions WHERE model = ? AND stage = ?',
          model,
          stage,
        );
        if (holder !== undefined) {
          if (options.force !== true) {
            throw new ConflictError(
              `Model "${model}" version ${holder.number} holds stage "${stage}"; archive it first or pass force to archive it while promoting version ${version}`,
              { context: { model, version, stage, holder: holder.number } },
            );
          }
          this.moveStage(holder, 'archived', at);
          changes.push(
            this.recordChange(model, holder.number, { kind: 'stage', from: stage, to: 'archived' }, options, at),
          );
        }
      }
      this.moveStage(target, stage, at);
      changes.push(
        this.recordChange(model, version, { kind: 'stage', from: target.stage ?? undefined, to: stage }, options, at),
      );
      return changes;
    });
  }

  async setAlias(
    model: string,
    alias: string,
    version: number,
    options: Omit<PromoteOptions, 'force'>,
  ): Promise<StageChange> {
    assertVersionLabel(model, 'alias', alias);
    return this.sql.write(() => {
      const target = this.versionRowByNumber(model, version);
      const at = nowIso();
      const previous = this.sql.get<{ id: string; number: number }>(
        `SELECT v.id, v.number FROM model_aliases a JOIN model_versions v ON v.id = a.model_version_id
         WHERE a.model = ? AND a.alias = ?`,
        model,
        alias,
      );
      this.sql.run(
        `INSERT INTO model_aliases (model, alias, model_version_id) VALUES (?, ?, ?)
         ON CONFLICT (model, alias) DO UPDATE SET model_version_id = excluded.model_version_id`,
        model,
        alias,
        target.id,
      );
      if (previous !== undefined) this.touchVersion(previous.id, at);
      this.touchVersion(target.id, at);
      return this.recordChange(model, version, { kind: 'alias', alias, previous: previous?.number }, options, at);
    });
  }

  /** Recorded as an alias change whose `versionNumber` and `previousVersion` are the version that lost it. */
  async removeAlias(model: string, alias: string, options: Omit<PromoteOptions, 'force'>): Promise<StageChange> {
    return this.sql.write(() => {
      this.modelRow(model);
      const holder = this.sql.get<{ id: string; number: number }>(
        `SELECT v.id, v.number FROM model_aliases a JOIN model_versions v ON v.id = a.model_version_id
         WHERE a.model = ? AND a.alias = ?`,
        model,
        alias,
      );
      if (holder === undefined) {
        throw new NotFoundError(`Model "${model}" has no alias "${alias}"`, { context: { model, alias } });
      }
      const at = nowIso();
      this.sql.run('DELETE FROM model_aliases WHERE model = ? AND alias = ?', model, alias);
      this.touchVersion(holder.id, at);
      return this.recordChange(
        model,
        holder.number,
        { kind: 'alias-removed', alias, previous: undefined },
        options,
        at,
      );
    });
  }

  async history(model: string, filter: PageRequest = {}): Promise<Page<StageChange>> {
    const limit = pageLimit(filter.limit);
    this.modelRow(model);
    const after = filter.cursor === undefined ? 0 : decodeCursor(filter.cursor, ['number'])[0]!;
    const rows = this.sql.all<StageChangeRow>(
      'SELECT * FROM stage_changes WHERE model = ? AND seq > ? ORDER BY seq LIMIT ?',
      model,
      after,
      limit + 1,
    );
    return toPage(
      rows,
      limit,
      (page) => page.map(toStageChange),
      (row) => [row.seq],
    );
  }

  private findModelRow(name: string): ModelRow | undefined {
    return this.sql.get<ModelRow>('SELECT * FROM models WHERE name = ?', name);
  }

  private modelRow(name: string): ModelRow {
    const row = this.findModelRow(name);
    if (row === undefined) throw new NotFoundError(`Model "${name}" not found`, { context: { model: name } });
    return row;
  }

  private insertModel(model: { name: string; description?: string; tags?: Tag[]; metadata?: Metadata }): ModelRow {
    const now = nowIso();
    const tags = uniqueTags(model.tags ?? []);
    const row: ModelRow = {
      name: model.name,
      description: model.description ?? null,
      tags: json(tags),
      metadata: json(model.metadata ?? {}),
      latest_version: 0,
      created_at: now,
      updated_at: now,
    };
    this.sql.run(
      `INSERT INTO models (name, description, tags, metadata, latest_version, created_at, updated_at)
       VALUES (@name, @description, @tags, @metadata, @latest_version, @created_at, @updated_at)`,
      row,
    );
    insertTags(this.sql, 'model', model.name, tags);
    return row;
  }

  private versionRowById(id: string): ModelVersionRow {
    const row = this.sql.get<ModelVersionRow>('SELECT * FROM model_versions WHERE id = ?', id);
    if (row === undefined)
      throw new NotFoundError(`Model version "${id}" not found`, { context: { modelVersionId: id } });
    return row;
  }

  private versionRowByNumber(model: string, number: number): ModelVersionRow {
    this.modelRow(model);
    const row = this.sql.get<ModelVersionRow>(
      'SELECT * FROM model_versions WHERE model = ? AND number = ?',
      model,
      number,
    );
    if (row === undefined) {
      throw new NotFoundError(`Model "${model}" has no version ${number}`, { context: { model, version: number } });
    }
    return row;
  }

  private resolve(model: string, ref: ModelVersionRef): ModelVersionRow | undefined {
    if (typeof ref === 'number') {
      return this.sql.get('SELECT * FROM model_versions WHERE model = ? AND number = ?', model, ref);
    }
    if (ref === 'latest') {
      return this.sql.get('SELECT * FROM model_versions WHERE model = ? ORDER BY number DESC LIMIT 1', model);
    }
    if ((MODEL_STAGES as readonly string[]).includes(ref)) {
      return this.sql.get(
        'SELECT * FROM model_versions WHERE model = ? AND stage = ? ORDER BY number DESC LIMIT 1',
        model,
        ref,
      );
    }
    return (
      this.sql.get<ModelVersionRow>(
        `SELECT v.* FROM model_aliases a JOIN model_versions v ON v.id = a.model_version_id
         WHERE a.model = ? AND a.alias = ?`,
        model,
        ref,
      ) ?? this.sql.get<ModelVersionRow>('SELECT * FROM model_versions WHERE model = ? AND name = ?', model, ref)
    );
  }

  private hydrate(rows: ModelVersionRow[]): ModelVersion[] {
    if (rows.length === 0) return [];
    const ids = json(rows.map((row) => row.id));
    const aliases = groupBy(
      this.sql.all<{ owner: string; alias: string }>(
        'SELECT model_version_id AS owner, alias FROM model_aliases WHERE model_version_id IN (SELECT value FROM json_each(?)) ORDER BY alias',
        ids,
      ),
    );
    const artifacts = groupBy(
      this.sql.all<{ owner: string; role: ModelArtifactRole; artifact_name: string; artifact_version_id: string }>(
        `SELECT model_version_id AS owner, role, artifact_name, artifact_version_id FROM model_version_artifacts
         WHERE model_version_id IN (SELECT value FROM json_each(?)) ORDER BY rowid`,
        ids,
      ),
    );
    const runs = groupBy(
      this.sql.all<{ owner: string; run_id: string }>(
        'SELECT model_version_id AS owner, run_id FROM model_version_runs WHERE model_version_id IN (SELECT value FROM json_each(?)) ORDER BY rowid',
        ids,
      ),
    );
    return rows.map((row) => {
      const version: ModelVersion = {
        id: row.id,
        model: row.model,
        number: row.number,
        aliases: (aliases.get(row.id) ?? []).map((entry) => entry.alias),
        tags: parseJson(row.tags),
        metadata: parseJson(row.metadata),
        artifacts: (artifacts.get(row.id) ?? []).map(
          (entry): ModelArtifactLink => ({
            role: entry.role,
            artifactName: entry.artifact_name,
            artifactVersionId: entry.artifact_version_id,
          }),
        ),
        runIds: (runs.get(row.id) ?? []).map((entry) => entry.run_id),
        createdAt: row.created_at,
        updatedAt: row.updated_at,
      };
      if (row.name !== null) version.name = row.name;
      if (row.description !== null) version.description = row.description;
      if (row.stage !== null) version.stage = row.stage;
      return version;
    });
  }

  private moveStage(row: ModelVersionRow, stage: ModelStage, at: string): void {
    this.sql.run('UPDATE model_versions SET stage = ?, updated_at = ? WHERE id = ?', stage, at, row.id);
  }

  private touchVersion(id: string, at: string): void {
    this.sql.run('UPDATE model_versions SET updated_at = ? WHERE id = ?', at, id);
  }

  private recordChange(
    model: string,
    versionNumber: number,
    change:
      | { kind: 'stage'; from: ModelStage | undefined; to: ModelStage }
      | { kind: 'alias' | 'alias-removed'; alias: string; previous: number | undefined },
    options: Omit<PromoteOptions, 'force'>,
    at: string,
  ): StageChange {
    const row: Omit<StageChangeRow, 'seq'> = {
      id: newId('sc'),
      model,
      version_number: versionNumber,
      kind: change.kind,
      from_stage: change.kind === 'stage' ? (change.from ?? null) : null,
      to_stage: change.kind === 'stage' ? change.to : null,
      alias: change.kind === 'stage' ? null : change.alias,
      previous_version: change.kind === 'stage' ? null : (change.previous ?? null),
      actor: options.actor,
      reason: options.reason ?? null,
      at,
    };
    const result = this.sql.run(
      `INSERT INTO stage_changes (id, model, version_number, kind, from_stage, to_stage, alias, previous_version, actor,
         reason, at)
       VALUES (@id, @model, @version_number, @kind, @from_stage, @to_stage, @alias, @previous_version, @actor,
         @reason, @at)`,
      row,
    );
    return toStageChange({ ...row, seq: Number(result.lastInsertRowid) });
  }
}

function groupBy<T extends { owner: string }>(rows: T[]): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const row of rows) {
    const group = groups.get(row.owner);
    if (group === undefined) groups.set(row.owner, [row]);
    else group.push(row);
  }
  return groups;
}
