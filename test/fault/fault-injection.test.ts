import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stackline } from '../../lib/client.ts';

/**
 * The reference scenario, SIGKILLed at named points (lib/util/fault-points.ts) — during steps,
 * between a blob write and its record, inside artifact and model version allocation, during a
 * promotion, around a run's creation and end — each kill followed by the next process, which reaps
 * what the dead one left and runs the scenario again. Then one clean run, and the invariants.
 */
const FAULT_POINTS = [
  'step:started:1',
  'step:attempt:1',
  'step:returned:1',
  'blob:written:1',
  'artifact-version:allocated:1',
  'step:completed:1',
  'step:started:2',
  'blob:written:2',
  'artifact-version:allocated:2',
  'run:finishing:1',
  'run:created:2',
  'model-version:allocated:1',
  'step:attempt:2',
  'blob:written:3',
  'step:returned:3',
  'stage:promoting:1',
  'artifact-version:allocated:3',
  'step:completed:2',
  'run:finishing:2',
  'run:created:3',
  'model-version:allocated:2',
  'step:started:3',
  'run:created:4',
  'run:finishing:3',
  'run:created:1',
  'model-version:allocated:1',
  'step:started:1',
  'step:returned:1',
  'artifact-version:allocated:1',
  'step:completed:1',
  'run:finishing:4',
  'step:attempt:2',
];

interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  runs: Array<{ pipeline: string; status: string; steps: Record<string, string> }>;
  stderr: string;
}

function runScenario(home: string, faultPoint?: string): Promise<ChildResult> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/fault/scenario-child.ts'], {
    env: {
      ...process.env,
      STACKLINE_HOME: home,
      NO_COLOR: '1',
      ...(faultPoint ? { STACKLINE_FAULT_POINT: faultPoint } : { STACKLINE_FAULT_POINT: '' }),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve) =>
    child.on('exit', (code, signal) =>
      resolve({
        code,
        signal,
        stderr,
        runs: stdout
          .split('\n')
          .filter(Boolean)
          .map((line) => JSON.parse(line)),
      }),
    ),
  );
}

let home: string;
let kills = 0;
let reusedAfterKill = 0;
const missed: string[] = [];
let final: ChildResult;

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'stackline-fault-'));
  for (const point of FAULT_POINTS) {
    const result = await runScenario(home, point);
    if (result.signal === 'SIGKILL') kills++;
    else if (result.code === 0) missed.push(point);
    else if (result.code !== 0)
      throw new Error(`The scenario failed at ${point} without being killed:\n${result.stderr}`);
    reusedAfterKill += result.runs.flatMap((r) => Object.values(r.steps)).filter((s) => s === 'cached').length;
  }
  final = await runScenario(home);
}, 300_000);

afterAll(async () => {
  await rm(home, { recursive: true, force: true });
});

describe('the reference scenario killed with SIGKILL at 30+ points', () => {
  it('loses nothing: no run left running, every blob re-hashes, versions contiguous, the re-run reuses what completed', async () => {
    const lost: string[] = [];
    expect(final.code, final.stderr).toBe(0);
    expect(final.runs.map((r) => r.status)).toEqual(['completed', 'completed', 'completed', 'completed']);

    const sl = await Stackline.open({ home });
    try {
      const { metadata, artifacts } = sl.stack;
      let runs = 0;
      let cursor: string | undefined;
      do {
        const page = await metadata.runs.list({ limit: 200, ...(cursor ? { cursor } : {}) });
        for (const run of page.items) {
          runs++;
          if (run.status === 'running' || run.status === 'pending') lost.push(`run ${run.id} is ${run.status}`);
          for (const step of await metadata.runs.listSteps(run.id))
            if (step.status === 'running') lost.push(`step run ${step.id} (${step.stepId}) is running`);
        }
        cursor = page.nextCursor;
      } while (cursor);

      let versionsChecked = 0;
      for (const summary of (await metadata.artifacts.list({ limit: 1000 })).items) {
        const versions = (await metadata.artifacts.listVersions(summary.name, { limit: 1000 })).items;
        const numbers = versions.map((v) => v.version).sort((a, b) => a - b);
        if (numbers.some((n, i) => n !== i + 1)) lost.push(`${summary.name} versions ${numbers.join(',')}`);
        for (const version of versions) {
          versionsChecked++;
          if (!(await artifacts.exists(version.contentHash))) {
            lost.push(`${summary.name} v${version.version}: blob missing`);
            continue;
          }
          const hash = `sha256:${createHash('sha256')
            .update(await artifacts.getBytes(version.contentHash))
            .digest('hex')}`;
          if (hash !== version.contentHash) lost.push(`${summary.name} v${version.version}: blob re-hashes to ${hash}`);
        }
      }
      const models = (await metadata.models.list()).items;
      for (const model of models) {
        const numbers = (await metadata.models.listVersions(model.name, { limit: 1000 })).items
          .map((v) => v.number)
          .sort((a, b) => a - b);
        if (numbers.some((n, i) => n !== i + 1)) lost.push(`model ${model.name} versions ${numbers.join(',')}`);
        if (numbers.length !== model.latestVersion)
          lost.push(`model ${model.name} latestVersion ${model.latestVersion}`);
      }

      console.log(
        `fault injection: ${kills} kills, ${lost.length} lost (${runs} runs, ${versionsChecked} artifact versions re-hashed, ${reusedAfterKill} steps reused from the cache by re-runs${missed.length ? `; not reached: ${missed.join(', ')}` : ''})`,
      );
      expect(lost).toEqual([]);
      expect(kills).toBeGreaterThanOrEqual(30);
      expect(versionsChecked).toBeGreaterThan(10);
    } finally {
      await sl.close();
    }
    // The final re-run reuses every step that does not depend on the newest model version.
    expect(final.runs[0]!.steps).toEqual({
      load_iris: 'cached',
      hold_out_incoming: 'cached',
      split: 'cached',
      fit_and_apply_scaler: 'cached',
    });
    expect(final.runs[1]!.steps.train_forest).toBe('cached');
    expect(reusedAfterKill).toBeGreaterThan(0);
  });
});
