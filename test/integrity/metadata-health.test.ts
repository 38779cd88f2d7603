import { existsSync } from 'node:fs';
import { mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { exitCodeFor } from '../../lib/cli/exit-codes.ts';
import { Stackline } from '../../lib/client.ts';
import { MetadataStoreDamagedError, MetadataStoreLockedError } from '../../lib/errors.ts';
import { SqliteMetadataStore } from '../../lib/metadata/sqlite/sqlite-metadata-store.ts';
import { runCli } from '../support/cli.ts';

describe('metadata database health', () => {
  let home: string;
  let db: string;

  beforeEach(async () => {
    home = await mkdtemp(join(tmpdir(), 'stackline-health-'));
    db = join(home, 'metadata.db');
    const sl = await Stackline.open({ home });
    await sl.saveArtifact('health.value', { kept: true });
    await sl.close();
  });

  afterEach(async () => {
    await rm(home, { recursive: true, force: true });
  });

  const oneLine = (text: string) => expect(text.trim().split('\n')).toHaveLength(1);

  it('refuses an empty (0-byte) database with one line naming the file and how to recover', async () => {
    await truncate(db, 0);
    for (const suffix of ['-wal', '-shm']) await rm(db + suffix, { force: true });
    const result = await runCli(home, 'artifacts', 'list');
    expect(result.code).toBe(3);
    oneLine(result.stderr);
    expect(result.stderr).toContain(db);
    expect(result.stderr).toContain('stackline restore');
    // Still refused the next time: nothing was created over it.
    expect((await runCli(home, 'artifacts', 'list')).code).toBe(3);
  });

  it('refuses a damaged database with one line naming the file, and no stack trace', async () => {
    for (const suffix of ['-wal', '-shm']) await rm(db + suffix, { force: true });
    await writeFile(db, Buffer.from('this is not an SQLite database, only some garbage bytes'.repeat(100)));
    const result = await runCli(home, 'runs', 'list', '--json');
    expect(result.code).toBe(3);
    expect(result.json().error).toMatchObject({ type: 'MetadataStoreDamagedError' });
    expect(result.json().error.message).toContain(db);
    expect(result.stdout).not.toMatch(/\n\s+at /);
  });

  it('backs up and restores the database, keeping the one it replaces', async () => {
    const backup = join(home, 'backup.db');
    const saved = await runCli(home, 'backup', backup);
    expect(saved.code).toBe(0);
    expect((await runCli(home, 'backup', backup)).code).toBe(2); // never overwrites a file
    await truncate(db, 0);
    for (const suffix of ['-wal', '-shm']) await rm(db + suffix, { force: true });
    const restored = await runCli(home, 'restore', backup, '--json');
    expect(restored.code).toBe(0);
    expect(existsSync(restored.json().replaced)).toBe(true);
    const sl = await Stackline.open({ home });
    try {
      expect(await sl.loadArtifact('health.value')).toEqual({ kept: true });
    } finally {
      await sl.close();
    }
  });

  it('refuses to restore a file that is not an intact Stackline database', async () => {
    const bogus = join(home, 'bogus.db');
    await writeFile(bogus, 'not a database at all, just text that is long enough to look like a file');
    const result = await runCli(home, 'restore', bogus);
    expect(result.code).toBe(3);
    oneLine(result.stderr);
    expect(result.stderr).toContain(bogus);
    const sl = await Stackline.open({ home });
    await sl.close(); // the current database is untouched
  });

  it('retries a locked database, then reports it as locked (its own error and exit code), not as a usage error', async () => {
    const store = SqliteMetadataStore.open(db, { busyTimeoutMs: 200 });
    const holder = new Database(db);
    holder.exec('BEGIN IMMEDIATE');
    try {
      try {
        const started = Date.now();
        const error = await store.models.create({ name: 'locked_model' }).catch((e: unknown) => e);
        expect(Date.now() - started).toBeGreaterThanOrEqual(150); // it waited (SQLite's busy retries)
        expect(error).toBeInstanceOf(MetadataStoreLockedError);
        expect((error as Error).message).toContain(db);
        expect(exitCodeFor(error)).toBe(4);
      } finally {
        await store.close();
      }
    } finally {
      holder.exec('ROLLBACK');
      holder.close();
    }
    expect(exitCodeFor(new MetadataStoreDamagedError('x'))).toBe(3);
  });
});
