import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StacklineError, ValidationError } from '../../../lib/errors.ts';
import { LATEST_SCHEMA_VERSION, MIGRATIONS } from '../../../lib/metadata/sqlite/migrations.ts';
import { PAGE_CACHE_KIB, SqliteMetadataStore } from '../../../lib/metadata/sqlite/sqlite-metadata-store.ts';
import { LATEST_STEP_RUN_SQL } from '../../../lib/metadata/sqlite/sqlite-run-repository.ts';
import { describeMetadataStoreConformance, runDraft, stepDraft } from '../../conformance/metadata-store.conformance.ts';

describeMetadataStoreConformance('SqliteMetadataStore in memory', async () => {
  const store = SqliteMetadataStore.open(':memory:');
  return { store, cleanup: () => store.close() };
});

describeMetadataStoreConformance('SqliteMetadataStore on a file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'stackline-metadata-'));
  const store = SqliteMetadataStore.open(join(dir, 'metadata.db'));
  return {
    store,
    cleanup: async () => {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

describe('SqliteMetadataStore', () => {
  let dir: string;
  let path: string;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stackline-metadata-'));
    path = join(dir, 'metadata.db');
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("keeps SQLite's 2 MiB page cache, not better-sqlite3's 16 MiB, so memory does not grow with the store's history", async () => {
    const store = SqliteMetadataStore.open(path);
    try {
      const db = (store as unknown as { sql: { db: Database.Database } }).sql.db;
      expect(db.pragma('cache_size', { simple: true })).toBe(-PAGE_CACHE_KIB);
      expect(PAGE_CACHE_KIB).toBe(2000);
    } finally {
      await store.close();
    }
  });

  it("finds a step's latest run with an index search, not a scan of the run's step runs", async () => {
    const store = SqliteMetadataStore.open(path);
    try {
      const db = (store as unknown as { sql: { db: Database.Database } }).sql.db;
      const plan = db.prepare(`EXPLAIN QUERY PLAN ${LATEST_STEP_RUN_SQL}`).all('run', 'step') as Array<{
        detail: string;
      }>;
      expect(plan.map((row) => row.detail)).toEqual([
        'SEARCH step_runs USING INDEX step_runs_latest_by_run_step (run_id=? AND step_id=?)',
      ]);
    } finally {
      await store.close();
    }
  });

  function userVersion(file: string): number {
    const db = new Database(file, { readonly: true });
    try {
      return db.pragma('user_version', { simple: true }) as number;
    } finally {
      db.close();
    }
  }

  describe('migrations', () => {
    it('numbers migrations 1, 2, 3… and makes the last one the latest schema version', () => {
      expect(MIGRATIONS.map((migration) => migration.version)).toEqual(MIGRATIONS.map((_, index) => index + 1));
      expect(LATEST_SCHEMA_VERSION).toBe(MIGRATIONS.length);
    });

    it('gives a fresh database the latest schema version', async () => {
      const store = SqliteMetadataStore.open(path);
      await store.close();

      expect(userVersion(path)).toBe(LATEST_SCHEMA_VERSION);
    });

    it('reopens an up-to-date database without migrating it again and keeps its data', async () => {
      const first = SqliteMetadataStore.open(path);
      await first.models.createVersion('churn');
      await first.close();

      const second = SqliteMetadataStore.open(path);
      try {
        expect((await second.models.get('churn')).latestVersion).toBe(1);
        expect(userVersion(path)).toBe(LATEST_SCHEMA_VERSION);
      } finally {
        await second.close();
      }
    });

    it('refuses a database written by a newer Stackline with a StacklineError naming both versions', async () => {
      const store = SqliteMetadataStore.open(path);
      await store.close();
      const future = LATEST_SCHEMA_VERSION + 1;
      const raw = new Database(path);
      raw.pragma(`user_version = ${future}`);
      raw.close();

      let error: unknown;
      try {
        SqliteMetadataStore.open(path);
      } catch (caught) {
        error = caught;
      }

      expect(error).toBeInstanceOf(StacklineError);
      const message = (error as StacklineError).message;
      expect(message).toContain(path);
      expect(message).toContain(`schema version ${future}`);
      expect(message).toContain(`up to ${LATEST_SCHEMA_VERSION}`);
      expect(message).toMatch(/upgrade Stackline/);
      expect((error as StacklineError).context).toMatchObject({
        schemaVersion: future,
        supportedVersion: LATEST_SCHEMA_VERSION,
      });
      expect(userVersion(path)).toBe(future);
    });
  });

  it('opens file databases in WAL mode', async () => {
    const store = SqliteMetadataStore.open(path);
    await store.close();

    const raw = new Database(path, { readonly: true });
    try {
      expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
    } finally {
      raw.close();
    }
  });

  it('creates the directory of a file database when it is missing', async () => {
    const nested = join(dir, 'a', 'b', 'metadata.db');
    const store = SqliteMetadataStore.open(nested);
    await store.close();

    expect(userVersion(nested)).toBe(LATEST_SCHEMA_VERSION);
  });

  it('abandonSync marks unfinished runs before returning, as a process exit handler needs', async () => {
    const store = SqliteMetadataStore.open(':memory:');
    try {
      const run = await store.runs.create(runDraft({ createdBy: 'test', startedAt: '2026-01-01T00:00:00.000Z' }));
      const step = await store.runs.startStep(
        stepDraft(run.id, { cacheKey: 'k', codeHash: 'h', startedAt: '2026-01-01T00:00:01.000Z' }),
      );

      const changed = store.abandonSync([run.id], 'failed', '2026-01-01T00:00:03.500Z', {
        type: 'Error',
        message: 'process exited',
      });

      expect(changed).toEqual([run.id]);
      expect((await store.runs.get(run.id)).status).toBe('failed');
      expect(await store.runs.getStep(step.id)).toMatchObject({
        status: 'failed',
        endedAt: '2026-01-01T00:00:03.500Z',
        durationMs: 2500,
      });
    } finally {
      await store.close();
    }
  });

  it('rejects a page cursor it did not issue with ValidationError', async () => {
    const store = SqliteMetadataStore.open(':memory:');
    try {
      await expect(store.runs.list({ cursor: 'not-a-cursor' })).rejects.toBeInstanceOf(ValidationError);
      await expect(store.artifacts.listVersions('x', { cursor: 'WyJhIl0' })).rejects.toBeInstanceOf(ValidationError);
      await expect(store.runs.list({ limit: 0 })).rejects.toBeInstanceOf(ValidationError);
    } finally {
      await store.close();
    }
  });

  it('4 processes allocating 25 versions each of one artifact and one model get numbers 1 to 100, each once', async () => {
    const store = SqliteMetadataStore.open(path);
    await store.close();
    const fixture = fileURLToPath(new URL('./fixtures/allocate-versions.ts', import.meta.url));

    const workers = Array.from({ length: 4 }, (_, index) =>
      startWorker(spawn(process.execPath, ['--import', 'tsx', fixture, path, '25', `worker-${index}`])),
    );
    await Promise.all(workers.map((worker) => worker.ready));
    const startAt = Date.now() + 200;
    for (const worker of workers) worker.child.stdin?.write(`go ${startAt}\n`);
    const results = await Promise.all(workers.map((worker) => worker.result));

    const artifactVersions = results.flatMap((result) => result.artifactVersions).sort((a, b) => a - b);
    const modelVersions = results.flatMap((result) => result.modelVersions).sort((a, b) => a - b);
    const oneTo100 = Array.from({ length: 100 }, (_, index) => index + 1);
    expect(artifactVersions).toEqual(oneTo100);
    expect(modelVersions).toEqual(oneTo100);
    const check = SqliteMetadataStore.open(path);
    try {
      expect((await check.artifacts.getVersion('shared.artifact')).version).toBe(100);
      expect((await check.models.get('shared-model')).latestVersion).toBe(100);
    } finally {
      await check.close();
    }
  });
});

interface WorkerResult {
  worker: string;
  artifactVersions: number[];
  modelVersions: number[];
}

/** Collects a worker's output: `ready` once it has opened the store, then one JSON line of results. */
function startWorker(child: ChildProcess): {
  child: ChildProcess;
  ready: Promise<void>;
  result: Promise<WorkerResult>;
} {
  let stdout = '';
  let stderr = '';
  let markReady: () => void = () => {};
  const ready = new Promise<void>((resolve) => {
    markReady = resolve;
  });
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    if (stdout.includes('ready\n')) markReady();
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const result = new Promise<WorkerResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      markReady();
      const last = stdout.trim().split('\n').at(-1) ?? '';
      if (code !== 0 || !last.startsWith('{')) {
        reject(new Error(`Worker exited with code ${code}: ${stderr || stdout}`));
        return;
      }
      resolve(JSON.parse(last) as WorkerResult);
    });
  });
  return { child, ready, result };
}
