import Database from 'better-sqlite3';
import { ConflictError, MetadataStoreDamagedError, MetadataStoreLockedError } from '../../errors.ts';
import { storeErrors } from '../store-errors.ts';
import type { Page, Tag } from '../types.ts';

export const BUSY_TIMEOUT_MS = 10_000;

export type TagKind = 'stack' | 'run' | 'artifact_version' | 'model' | 'model_version';

// ---------- Plumbing ----------

/** The connection with its prepared-statement cache; every query goes through here. */
export class Sql {
  private readonly statements = new Map<string, Database.Statement>();
  private readonly transaction: Database.Transaction<(fn: () => unknown) => unknown>;

  constructor(readonly db: Database.Database) {
    this.transaction = db.transaction((fn: () => unknown) => fn());
  }

  get<T>(sql: string, ...params: unknown[]): T | undefined {
    try {
      return this.statement(sql).get(...params) as T | undefined;
    } catch (error) {
      throw translateSqliteError(error, this.db.name);
    }
  }

  all<T>(sql: string, ...params: unknown[]): T[] {
    try {
      return this.statement(sql).all(...params) as T[];
    } catch (error) {
      throw translateSqliteError(error, this.db.name);
    }
  }

  run(sql: string, ...params: unknown[]): Database.RunResult {
    try {
      return this.statement(sql).run(...params);
    } catch (error) {
      throw translateSqliteError(error, this.db.name);
    }
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
      throw translateSqliteError(error, this.db.name);
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

/** How to get a usable metadata database back, for messages about a damaged one. */
export const RECOVERY_HINT =
  'restore a backup with "stackline restore FILE", or move the file aside to start with an empty store';

/**
 * SQLite errors as Stackline errors: constraint violations are conflicts, a lock held past the busy
 * timeout (SQLite retries until then) is {@link MetadataStoreLockedError}, a damaged or foreign file
 * is {@link MetadataStoreDamagedError} naming the file.
 */
export function translateSqliteError(error: unknown, file = 'the metadata database'): unknown {
  if (!(error instanceof Database.SqliteError)) return error;
  if (error.code === 'SQLITE_NOTADB' || error.code.startsWith('SQLITE_CORRUPT')) {
    return new MetadataStoreDamagedError(`Metadata database ${file} is damaged (${error.message}); ${RECOVERY_HINT}.`, {
      cause: error,
      context: { file, sqliteCode: error.code },
    });
  }
  if (error.code.startsWith('SQLITE_CONSTRAINT')) {
    return new ConflictError(`Metadata write rejected by a database constraint: ${error.message}`, {
      cause: error,
      context: { sqliteCode: error.code },
    });
  }
  if (error.code.startsWith('SQLITE_BUSY') || error.code.startsWith('SQLITE_LOCKED')) {
    return new MetadataStoreLockedError(
      `Metadata database ${file} is locked by another process and stayed locked while retried; try again when that process finishes`,
      { cause: error, context: { file, sqliteCode: error.code } },
    );
  }
  return error;
}

export function json(value: unknown): string {
  return JSON.stringify(value);
}

export function parseJson<T>(text: string): T {
  return JSON.parse(text) as T;
}

export function parseOptionalJson<T>(text: string | null): T | undefined {
  return text === null ? undefined : parseJson<T>(text);
}

export function insertTags(sql: Sql, kind: TagKind, id: string, tags: readonly Tag[]): void {
  for (const tag of tags) {
    sql.run('INSERT OR IGNORE INTO tags (entity_kind, entity_id, tag) VALUES (?, ?, ?)', kind, id, tag);
  }
}

export function tagCondition(kind: TagKind, column: string): string {
  return `${column} IN (SELECT entity_id FROM tags WHERE entity_kind = '${kind}' AND tag = ?)`;
}

// ---------- Pagination ----------

export type CursorKey = (string | number)[];

export function encodeCursor(key: CursorKey): string {
  return Buffer.from(json(key)).toString('base64url');
}

export function decodeCursor(cursor: string, shape: readonly ('string' | 'number')[]): CursorKey {
  let key: unknown;
  try {
    key = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    key = undefined;
  }
  if (!Array.isArray(key) || key.length !== shape.length || !key.every((part, index) => typeof part === shape[index])) {
    throw storeErrors.invalidCursor(cursor);
  }
  return key as CursorKey;
}

/** `rows` holds up to `limit + 1` rows; the extra one only says there is another page. */
export function toPage<R, T>(rows: R[], limit: number, map: (rows: R[]) => T[], keyOf: (row: R) => CursorKey): Page<T> {
  const hasMore = rows.length > limit;
  const pageRows = hasMore ? rows.slice(0, limit) : rows;
  const page: Page<T> = { items: map(pageRows) };
  const last = pageRows.at(-1);
  if (hasMore && last !== undefined) page.nextCursor = encodeCursor(keyOf(last));
  return page;
}

export function whereClause(conditions: string[]): string {
  return conditions.length === 0 ? '' : `WHERE ${conditions.join(' AND ')}`;
}

export function groupBy<T extends { owner: string }>(rows: T[]): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const row of rows) {
    const group = groups.get(row.owner);
    if (group === undefined) groups.set(row.owner, [row]);
    else group.push(row);
  }
  return groups;
}
