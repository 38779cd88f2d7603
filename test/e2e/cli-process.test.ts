import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCli, startCli, waitFor } from '../support/cli.ts';

let home: string;
beforeEach(async () => {
  home = await mkdtemp(join(tmpdir(), 'stackline-proc-'));
});
afterEach(async () => {
  await rm(home, { recursive: true, force: true });
});

describe('the stackline binary', () => {
  it('runs a TypeScript pipeline file directly and exits 0', async () => {
    const { exited } = startCli(home, ['run', 'test/fixtures/pipelines/simple.ts', '--json']);
    const result = await exited;
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout).status).toBe('completed');
  });

  it('runs a step isolated in a worker thread, which loads the TypeScript pipeline file on its own', async () => {
    const { exited } = startCli(home, [
      'run',
      'test/fixtures/isolation/stubborn-steps.ts',
      '--pipeline',
      'isolated_echo',
      '--json',
    ]);
    const result = await exited;
    expect(result.code).toBe(0);
    const steps = JSON.parse(result.stdout).steps.map((s: { name: string; status: string }) => [s.name, s.status]);
    expect(steps).toEqual([
      ['make_inputs', 'completed'],
      ['isolated_echo', 'completed'],
    ]);
  });

  it('marks the run cancelled, not running, when interrupted with SIGINT mid-step', async () => {
    const marker = join(home, 'started');
    const { child, exited } = startCli(home, ['run', 'test/fixtures/pipelines/hang.ts'], { HANG_MARKER: marker });
    await waitFor(() => existsSync(marker));
    child.kill('SIGINT');
    const result = await exited;
    expect(result.code).toBe(130);
    expect(result.stderr).toContain('SIGINT: cancelling the run');
    const runs = (await runCli(home, 'runs', 'list', '--json')).json().runs;
    expect(runs).toHaveLength(1);
    expect(runs[0].status).toBe('cancelled');
    const shown = (await runCli(home, 'runs', 'show', runs[0].id, '--json')).json();
    expect(shown.steps.map((s: { status: string }) => s.status)).toEqual(['cancelled']);
  });

  it('is interrupted by SIGINT mid-run when no step ever waits (the event loop still turns)', async () => {
    const { child, exited } = startCli(home, ['run', 'test/fixtures/pipelines/never-waits.ts', '--no-cache']);
    let progress = '';
    child.stderr.on('data', (d) => (progress += d));
    await waitFor(() => progress.includes('next_20 completed'));
    child.kill('SIGINT');
    const result = await exited;
    expect(result.code).toBe(130);
    const runs = (await runCli(home, 'runs', 'list', '--json')).json().runs;
    expect(runs.map((r: { status: string }) => r.status)).toEqual(['cancelled']);
    const steps = (await runCli(home, 'runs', 'show', runs[0].id, '--json')).json().steps;
    const ran = steps.filter((s: { status: string }) => s.status === 'completed');
    expect(ran.length).toBeGreaterThan(20);
    expect(ran.length).toBeLessThan(3000);
    expect(steps.filter((s: { status: string }) => s.status === 'running')).toEqual([]);
  }, 60_000);
});
