import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { describeStatus } from '../../lib/cli/commands/runs.ts';
import { Stackline } from '../../lib/client.ts';
import { SqliteMetadataStore } from '../../lib/metadata/sqlite/sqlite-metadata-store.ts';
import { reapAbandonedRuns } from '../../lib/runtime/reaper.ts';
import { runCli, startCli, waitFor } from '../support/cli.ts';

let home: string;
beforeEach(async () => {
  home = await mkdtemp(join(tmpdir(), 'stackline-live-'));
});
afterEach(async () => {
  await rm(home, { recursive: true, force: true });
});

describe('runs whose process is killed', () => {
  it('kill -9 during a step: the run shows its executor lost, and the next open reaps it with its step run', async () => {
    const marker = join(home, 'started');
    const { child, exited } = startCli(home, ['run', 'test/fixtures/pipelines/hang.ts'], { HANG_MARKER: marker });
    await waitFor(() => existsSync(marker));
    child.kill('SIGKILL');
    expect((await exited).signal).toBe('SIGKILL');

    // Read without opening the project (which would reap): still `running`, shown as executor lost.
    const raw = SqliteMetadataStore.open(join(home, 'metadata.db'));
    const [stale] = (await raw.runs.list()).items;
    expect(stale!.status).toBe('running');
    expect(describeStatus(stale!)).toBe('running (executor lost)');
    expect(await reapAbandonedRuns(raw, { dryRun: true })).toEqual([
      expect.objectContaining({ runId: stale!.id, reason: 'process-gone' }),
    ]);
    await raw.close();

    // …and opening the project reaps it.
    const sl = await Stackline.open({ home });
    const runs = (await sl.stack.metadata.runs.list()).items;
    expect(runs.map((r) => r.status)).toEqual(['failed']);
    expect(runs[0]!.error?.type).toBe('ExecutorLost');
    expect(runs[0]!.executor).toMatchObject({ kind: 'process', pid: child.pid });
    const steps = await sl.stack.metadata.runs.listSteps(runs[0]!.id);
    expect(steps.map((s) => s.status)).toEqual(['failed']);
    await sl.close();

    const listed = await runCli(home, 'runs', 'list');
    expect(listed.stdout).toContain('failed (executor lost)');
    expect((await runCli(home, 'runs', 'reap')).stdout).toBe('No abandoned runs.\n');
  });

  it('runs cancel signals the local process running the run, which records it cancelled', async () => {
    const marker = join(home, 'started');
    const { exited } = startCli(home, ['run', 'test/fixtures/pipelines/hang.ts'], { HANG_MARKER: marker });
    await waitFor(() => existsSync(marker));
    const runs = (await runCli(home, 'runs', 'list', '--json')).json().runs;
    expect(runs[0].status).toBe('running');

    const cancelled = await runCli(home, 'runs', 'cancel', runs[0].id, '--json');

    expect(cancelled.code).toBe(0);
    expect(cancelled.json()).toMatchObject({ runId: runs[0].id, status: 'cancelled', how: 'signalled' });
    expect((await exited).code).toBe(130);
    const shown = (await runCli(home, 'runs', 'show', runs[0].id, '--json')).json();
    expect(shown.steps.map((s: { status: string }) => s.status)).toEqual(['cancelled']);
    const again = await runCli(home, 'runs', 'cancel', runs[0].id);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('already finished (cancelled)');
  });
});
