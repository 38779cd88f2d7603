import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Stackline } from '../../lib/index.ts';
import { runCli } from '../support/cli.ts';

const exec = promisify(execFile);
let home: string;
beforeEach(async () => {
  home = await mkdtemp(join(tmpdir(), 'stackline-examples-'));
});
afterEach(async () => {
  await rm(home, { recursive: true, force: true });
});

async function node(args: string[]) {
  return exec(process.execPath, args, { env: { ...process.env, STACKLINE_HOME: home, NO_COLOR: '1' } });
}

describe('examples', () => {
  it('quickstart: trains and evaluates a real classifier, and the second run is fully cached', async () => {
    const first = (await runCli(home, 'run', 'examples/iris/pipeline.ts', '--json')).json();
    expect(first.status).toBe('completed');
    const accuracy = (await runCli(home, 'artifacts', 'load', 'evaluate.metrics', '--json')).json().accuracy;
    expect(accuracy).toBeGreaterThan(0.85);
    const second = (await runCli(home, 'run', 'examples/iris/pipeline.ts', '--json')).json();
    expect(second.steps.map((s: { status: string }) => s.status)).toEqual(Array(5).fill('cached'));
  });

  it('reference scenario: promotes the better version and scores the incoming batch with it', async () => {
    const { stdout } = await node(['--import', 'tsx', 'examples/reference/run.ts']);
    expect(stdout).toMatch(/v1\s+archived/);
    expect(stdout).toMatch(/v2\s+production/);
    expect(stdout).toMatch(/Predictions: iris_predictions v1, 15 rows scored by v2/);

    const sl = await Stackline.open({ home });
    try {
      const production = await sl.getModelVersion('iris_classifier', 'production');
      expect(production.number).toBe(2);
      expect(Number(production.metadata.macroF1)).toBeGreaterThan(
        Number((await sl.getModelVersion('iris_classifier', 1)).metadata.macroF1),
      );
      expect(production.artifacts.map((a) => `${a.role}:${a.artifactName}`).sort()).toEqual([
        'data:iris_metrics',
        'data:iris_scaler',
        'data:iris_test_features',
        'data:iris_train_features',
        'deployment:iris_preprocessor',
        'model:iris_checkpoint',
        'model:iris_model',
      ]);
      expect(production.metadata.lastInference).toMatchObject({ rows: 15 });
      const predictions = await sl.loadArtifact<{
        modelVersion: number;
        rows: Array<{ predicted: string; actual: string }>;
      }>('iris_predictions');
      expect(predictions.modelVersion).toBe(2);
      expect(predictions.rows.filter((r) => r.predicted === r.actual).length).toBeGreaterThanOrEqual(13);
      const history = (await sl.stack.metadata.models.history('iris_classifier')).items;
      expect(history.map((h) => `v${h.versionNumber}:${h.fromStage ?? 'none'}->${h.toStage}`)).toEqual([
        'v1:none->production',
        'v1:production->archived',
        'v2:none->production',
      ]);
    } finally {
      await sl.close();
    }

    // A second run reuses the cache and keeps production where it is (no better candidate).
    const again = await node(['--import', 'tsx', 'examples/reference/run.ts']);
    expect(again.stderr).toMatch(/↺ predict cached/);
    expect(again.stdout).toMatch(/v2\s+production/);
  });
});
