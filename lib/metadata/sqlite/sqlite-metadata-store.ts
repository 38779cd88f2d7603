import { mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { MetadataStoreDamagedError } from '../../errors.ts';
import { nowIso } from '../../util/ids.ts';
import { mergeRecords } from '../../util/merge-records.ts';
import type {
  ArtifactRepository,
  MetadataStore,
  ModelRepository,
  RunRepository,
  StackRepository,
} from '../metadata-store.ts';
import { storeErrors } from '../store-errors.ts';
import type { ErrorInfo, Metadata, MetadataTarget } from '../types.ts';
import { migrate } from './migrations.ts';
import { abandonRuns, metadataTable } from './rows.ts';
import { BUSY_TIMEOUT_MS, json, parseJson, RECOVERY_HINT, Sql, translateSqliteError } from './sql.ts';
import { SqliteArtifactRepository } from './sqlite-artifact-repository.ts';
import { SqliteModelRepository } from './sqlite-model-repository.ts';
import { SqliteRunRepository } from './sqlite-run-repository.ts';
import { SqliteStackRepository } from './sqlite-stack-repository.ts';

/** Page cache per connection, in KiB (`PRAGMA cache_size` takes KiB as a negative number). */
export const PAGE_CACHE_KIB = 2000;

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
   * @throws MetadataStoreDamagedError when the file is empty (0 bytes: a fresh database would
   *   silently replace all history) or not a readable SQLite database.
   * @throws MetadataStoreLockedError when another process holds it locked past the busy timeout.
   */
  static open(path: string, options: { busyTimeoutMs?: number } = {}): SqliteMetadataStore {
    const inMemory = path === ':memory:' || path === '';
    const busyTimeoutMs = options.busyTimeoutMs ?? BUSY_TIMEOUT_MS;
    if (!inMemory) {
      mkdirSync(dirname(path), { recursive: true });
      if (isEmptyFile(path)) {
        throw new MetadataStoreDamagedError(
          `Metadata database ${path} is empty (0 bytes), so its history is lost; ${RECOVERY_HINT}.`,
          { context: { file: path } },
        );
      }
    }
    const db = new Database(path, { timeout: busyTimeoutMs });
    try {
      db.pragma(`busy_timeout = ${busyTimeoutMs}`);
      if (!inMemory) db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      // SQLite's own default page cache (2 MiB), not better-sqlite3's build default of 16 MiB: that
      // cache filled with the database, so a process's memory grew with the store's history (a
      // 1,000-step run peaked 15 MiB higher on a 280 MB store). Pages it no longer holds are read
      // from the OS's file cache.
      db.pragma(`cache_size = -${PAGE_CACHE_KIB}`);
      db.pragma('foreign_keys = ON');
      migrate(db, inMemory ? 'in memory' : `"${path}"`);
    } catch (error) {
      db.close();
      throw translateSqliteError(error, path);
    }
    return new SqliteMetadataStore(db);
  }

  /**
   * Copies the database to `file` with SQLite's online backup: consistent even while other
   * processes write, and without blocking them for more than a page batch.
   */
  async backup(file: string): Promise<void> {
    await this.sql.db.backup(file);
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
        throw storeErrors.targetNotFound(label, id, target);
      }
      const merged = json(mergeRecords<Metadata>(parseJson<Metadata>(row.metadata), values));
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

/**
 * Whether `path` is a 0-byte file. A database another process has just created is empty for the
 * moment before its first write, so an empty file is looked at again for up to a second.
 */
function isEmptyFile(path: string): boolean {
  for (let attempt = 0; attempt < 5; attempt++) {
    if (statSync(path, { throwIfNoEntry: false })?.size !== 0) return false;
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200);
  }
  return true;
}
