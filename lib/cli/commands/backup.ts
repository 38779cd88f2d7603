import { randomUUID } from 'node:crypto';
import { existsSync, renameSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { ConflictError, MetadataStoreDamagedError, MetadataStoreLockedError, NotFoundError } from '../../errors.ts';
import { LATEST_SCHEMA_VERSION } from '../../metadata/sqlite/migrations.ts';
import { SqliteMetadataStore } from '../../metadata/sqlite/sqlite-metadata-store.ts';
import { resolveHome } from '../../stacks/project.ts';
import { type CliIo, checkOutputFile, printJson } from '../io.ts';

/** The metadata database of the project in `io`'s home: the registry and the default stack's store. */
function metadataFile(io: CliIo): string {
  return join(resolveHome(io.cwd, io.env), 'metadata.db');
}

/**
 * `stackline backup <file>`: copies the project's metadata database with SQLite's online backup,
 * consistent while runs write to it. Refuses to overwrite an existing file.
 */
export async function backupCommand(file: string, options: { json?: boolean }, io: CliIo): Promise<void> {
  const target = resolve(io.cwd, file);
  checkOutputFile(target, { option: 'backup file' });
  if (existsSync(target)) {
    throw new ConflictError(`Backup file ${target} already exists; choose another name or remove it first.`, {
      context: { file: target },
    });
  }
  const source = metadataFile(io);
  if (!existsSync(source)) {
    throw new NotFoundError(`There is no metadata database to back up at ${source}; run "stackline init" first.`, {
      context: { file: source },
    });
  }
  const store = SqliteMetadataStore.open(source);
  try {
    await store.backup(target);
  } finally {
    await store.close();
  }
  const size = statSync(target).size;
  if (options.json) printJson(io, { source, backup: target, size });
  else io.stdout.write(`Backed up ${source} to ${target} (${size} bytes).\n`);
}

/**
 * `stackline restore <file>`: replaces the project's metadata database with a backup, after
 * checking the backup is an intact Stackline database. The database it replaces is kept beside it
 * (`metadata.db.replaced-<time>`), so a restore can itself be undone. Refuses while another
 * process holds the database's write lock.
 */
export async function restoreCommand(file: string, options: { json?: boolean }, io: CliIo): Promise<void> {
  const source = resolve(io.cwd, file);
  assertRestorable(source);
  const target = metadataFile(io);
  assertNotInUse(target);
  const staging = `${target}.restoring-${randomUUID()}`;
  const backup = new Database(source, { readonly: true, fileMustExist: true });
  try {
    await backup.backup(staging);
  } finally {
    backup.close();
  }
  let replaced: string | undefined;
  if (existsSync(target)) {
    replaced = `${target}.replaced-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    // The write-ahead log belongs to the database it sits beside: it moves with it.
    for (const suffix of ['', '-wal', '-shm']) {
      if (existsSync(target + suffix)) renameSync(target + suffix, replaced + suffix);
    }
  }
  renameSync(staging, target);
  if (options.json) printJson(io, { restored: target, from: source, replaced: replaced ?? null });
  else {
    io.stdout.write(
      `Restored ${target} from ${source}${replaced ? ` (the previous database is kept as ${replaced})` : ''}.\n`,
    );
  }
}

function assertRestorable(source: string): void {
  const info = statSync(source, { throwIfNoEntry: false });
  if (!info?.isFile()) {
    throw new NotFoundError(`Backup file ${source} does not exist.`, { context: { file: source } });
  }
  const refuse = (why: string, cause?: unknown) =>
    new MetadataStoreDamagedError(`Backup file ${source} cannot be restored: ${why}.`, {
      cause,
      context: { file: source },
    });
  if (info.size === 0) throw refuse('it is empty (0 bytes)');
  let db: Database.Database;
  try {
    db = new Database(source, { readonly: true, fileMustExist: true });
  } catch (error) {
    throw refuse((error as Error).message, error);
  }
  try {
    const check = db.pragma('integrity_check', { simple: true });
    if (check !== 'ok') throw refuse(`SQLite's integrity check says "${String(check)}"`);
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version < 1) throw refuse('it is not a Stackline metadata database');
    if (version > LATEST_SCHEMA_VERSION) {
      throw refuse(`it has schema version ${version}, newer than this Stackline knows (${LATEST_SCHEMA_VERSION})`);
    }
  } catch (error) {
    if (error instanceof MetadataStoreDamagedError) throw error;
    throw refuse((error as Error).message, error);
  } finally {
    db.close();
  }
}

/** Takes the database's write lock for a moment, without waiting: a restore under a running process would corrupt it. */
function assertNotInUse(target: string): void {
  if (!existsSync(target) || statSync(target).size === 0) return;
  let db: Database.Database;
  try {
    db = new Database(target, { fileMustExist: true, timeout: 0 });
  } catch {
    return; // Unreadable: nothing can be using it.
  }
  try {
    db.exec('BEGIN IMMEDIATE');
    db.exec('ROLLBACK');
  } catch (error) {
    if ((error as { code?: string }).code?.startsWith('SQLITE_BUSY')) {
      throw new MetadataStoreLockedError(
        `Metadata database ${target} is in use by another process; stop it before restoring.`,
        { cause: error, context: { file: target } },
      );
    }
    // Damaged: replacing it is the point.
  } finally {
    db.close();
  }
}
