/**
 * The reference scenario, end to end on the local default stack:
 *   1. Bob engineers features (iris_feature_engineering);
 *   2. Bob trains twice — a deliberately weak forest, then a proper one — and the promotion gate
 *      moves the better version to production;
 *   3. Alice scores the incoming batch with whatever holds production (iris_inference), and the
 *      results land as metadata on that model version.
 * Run it with `npm run scenario` (state goes to ./.stackline, or $STACKLINE_HOME).
 */
import { Stackline } from 'stackline';
import type { z } from 'zod';
import { progressPrinter } from '../../lib/cli/progress.ts';
import { featureEngineering } from './feature-engineering.ts';
import { inference, type Predictions } from './inference.ts';
import { MODEL_NAME, training } from './training.ts';

const io = { stdout: process.stdout, stderr: process.stderr, cwd: process.cwd(), env: process.env };
const onEvent = progressPrinter(io);
const sl = await Stackline.open();
try {
  const plan = [
    () => sl.run(featureEngineering, { onEvent }),
    () => sl.run(training, { params: { trees: 1, maxFeatures: 0.5, seed: 3 }, tags: ['experiment:baseline'], onEvent }),
    () => sl.run(training, { params: { trees: 25 }, tags: ['experiment:forest-25'], onEvent }),
    () => sl.run(inference, { onEvent }),
  ];
  const trained: string[] = [];
  for (const start of plan) {
    const { run } = await start();
    if (run.status !== 'completed') {
      console.error(`\n${run.pipeline} ${run.status}: ${run.error?.message}`);
      process.exit(1);
    }
    if (run.pipeline === training.name) trained.push(run.modelVersionId!);
  }
  await printSummary(trained);
} finally {
  await sl.close();
}

async function printSummary(trainedVersionIds: string[]) {
  const { metadata } = sl.stack;
  const versions = (await metadata.models.listVersions(MODEL_NAME, { limit: 10 })).items.reverse();
  const lines = [`\nModel ${MODEL_NAME} on stack "${sl.stack.name}"`];
  lines.push('  version  stage       macroF1  accuracy  trained this run');
  for (const v of versions) {
    const f1 = typeof v.metadata.macroF1 === 'number' ? v.metadata.macroF1.toFixed(3) : '-';
    const acc = typeof v.metadata.accuracy === 'number' ? v.metadata.accuracy.toFixed(3) : '-';
    lines.push(
      `  v${String(v.number).padEnd(7)} ${(v.stage ?? '-').padEnd(11)} ${f1.padEnd(8)} ${acc.padEnd(9)} ${trainedVersionIds.includes(v.id) ? 'yes' : ''}`,
    );
  }
  const history = (await metadata.models.history(MODEL_NAME, { limit: 1000 })).items.slice(-3);
  lines.push('  recent stage changes:');
  for (const h of history)
    lines.push(
      `    v${h.versionNumber} ${h.kind === 'stage' ? `${h.fromStage ?? 'none'} → ${h.toStage}` : `${h.kind} ${h.alias}`} by ${h.actor}${h.reason ? ` (${h.reason})` : ''}`,
    );

  const production = await sl.getModelVersion(MODEL_NAME, 'production');
  const predictions = await sl.getArtifactVersion('iris_predictions');
  const value = await sl.loadArtifact<z.output<typeof Predictions>>('iris_predictions');
  const inferenceResult = production.metadata.lastInference as { rows: number; batchAccuracy: number } | undefined;
  lines.push(
    `\nPredictions: iris_predictions v${predictions.version}, ${value.rows.length} rows scored by v${value.modelVersion}`,
  );
  lines.push(`  stored at ${predictions.uri}`);
  if (inferenceResult)
    lines.push(
      `  logged on v${production.number}: batch accuracy ${(inferenceResult.batchAccuracy * 100).toFixed(1)}% over ${inferenceResult.rows} rows`,
    );
  lines.push(
    `\nNext: npx stackline model versions ${MODEL_NAME} · npx stackline model compare ${MODEL_NAME} 1 production · npx stackline runs list`,
  );
  console.log(lines.join('\n'));
}
