/**
 * Bob's training pipeline. Every run creates a new version of the `iris_classifier` model and
 * links to it: the feature artifacts it read (data), the trained forest and a checkpoint (model),
 * the preprocessing bundle inference needs (deployment) and the evaluation metrics. The last step
 * is a promotion gate: the new version goes to `production` only if it beats the current
 * production version on the named metric.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { ConfusionMatrix } from 'ml-confusion-matrix';
import { RandomForestClassifier } from 'ml-random-forest';
import { externalArtifact, pipeline, StageHeldError, step } from 'stackline';
import { z } from 'zod';
import { MLJS_MODEL } from '../shared/mljs-materializer.ts';
import { accuracy, Dataset, FEATURE_NAMES, macroF1, Scaler } from '../shared/preprocessing.ts';

export const MODEL_NAME = 'iris_classifier';

/** `RandomForestClassifier#toJSON()`, stored by the `mljs-model` materializer (it holds ±Infinity). */
export const ForestModel = z.looseObject({
  name: z.literal('RFClassifier'),
  baseModel: z.record(z.string(), z.unknown()),
});
export const Preprocessor = z.object({
  scaler: Scaler,
  featureNames: z.array(z.string()),
  classes: z.array(z.string()),
});
export const Metrics = z.object({
  accuracy: z.number().min(0).max(1),
  macroF1: z.number().min(0).max(1),
  testRows: z.number().int(),
  confusionMatrix: z.array(z.array(z.number())),
});

const train = step(
  {
    name: 'train_forest',
    inputs: { train: Dataset },
    parameters: z.object({
      trees: z.number().int().min(1).max(500),
      maxFeatures: z.number().gt(0).max(1),
      seed: z.number().int(),
    }),
    outputs: {
      model: { schema: ForestModel, materializer: MLJS_MODEL, artifact: 'iris_model', modelRole: 'model' },
      checkpoint: { schema: z.string(), materializer: 'file', artifact: 'iris_checkpoint', modelRole: 'model' },
    },
    retries: { maxRetries: 1, backoffMs: 250 },
    resources: { memoryMb: 1024 },
  },
  async ({ inputs, params, context }) => {
    const forest = new RandomForestClassifier({
      nEstimators: params.trees,
      maxFeatures: params.maxFeatures,
      seed: params.seed,
      replacement: true,
      // Out-of-bag estimates fail on tiny forests (a row never left out) and are not used here.
      noOOB: true,
    });
    forest.train(inputs.train.features, inputs.train.labels);
    // The library's types describe the model as interfaces; the value itself is plain JSON.
    const model = forest.toJSON() as unknown as z.input<typeof ForestModel>;
    const checkpoint = join(context.tmpDir, 'forest.json.gz');
    await writeFile(checkpoint, gzipSync(JSON.stringify({ params, trainedRows: inputs.train.labels.length, model })));
    context.log(`trained ${params.trees} trees on ${inputs.train.labels.length} rows`);
    return { model, checkpoint };
  },
);

const evaluate = step(
  {
    name: 'evaluate',
    inputs: { model: ForestModel, test: Dataset },
    outputs: { metrics: { schema: Metrics, artifact: 'iris_metrics', modelRole: 'data' } },
  },
  ({ inputs }) => {
    const forest = RandomForestClassifier.load(inputs.model as never);
    const predicted = forest.predict(inputs.test.features);
    return {
      metrics: {
        accuracy: accuracy(predicted, inputs.test.labels),
        macroF1: macroF1(predicted, inputs.test.labels, inputs.test.classes.length),
        testRows: predicted.length,
        confusionMatrix: ConfusionMatrix.fromLabels(inputs.test.labels, predicted).getMatrix(),
      },
    };
  },
);

const packagePreprocessor = step(
  {
    name: 'package_preprocessor',
    inputs: { scaler: Scaler, test: Dataset },
    outputs: { preprocessor: { schema: Preprocessor, artifact: 'iris_preprocessor', modelRole: 'deployment' } },
  },
  ({ inputs }) => ({
    preprocessor: { scaler: inputs.scaler, featureNames: [...FEATURE_NAMES], classes: inputs.test.classes },
  }),
);

const Decision = z.object({
  promoted: z.boolean(),
  candidate: z.number().int(),
  incumbent: z.number().int().nullable(),
  metric: z.string(),
  candidateValue: z.number(),
  incumbentValue: z.number().nullable(),
});

/** How often a gate re-reads and decides again when another gate changed production first. */
const MAX_GATE_ATTEMPTS = 5;

/**
 * Logs the metrics on this run's model version and promotes it when it beats production.
 * Never cached: production may have changed since an identical earlier run.
 *
 * The promotion is a compare-and-set: the gate decides against the holder it read and promotes with
 * `expectedHolder` set to it (never `force`). When another gate got there first, the store refuses
 * with StageHeldError; the gate then reads the new holder and decides again, so two gates racing end
 * with the better model in production, whichever finishes first.
 */
const promotionGate = step(
  {
    name: 'promotion_gate',
    inputs: { metrics: Metrics },
    parameters: z.object({ metric: z.enum(['accuracy', 'macroF1']), minImprovement: z.number().min(0) }),
    outputs: { decision: Decision },
    cache: false,
  },
  async ({ inputs, params, context }) => {
    const candidate = context.runModelVersion!;
    const { confusionMatrix, ...scalars } = inputs.metrics;
    await candidate.logMetadata({ ...scalars, confusionMatrix });
    const candidateValue = inputs.metrics[params.metric];
    for (let attempt = 1; ; attempt++) {
      const incumbent = await context.models.find(candidate.model, 'production');
      const incumbentValue = incumbent ? Number(incumbent.metadata[params.metric]) : null;
      const promoted = incumbentValue === null || candidateValue > incumbentValue + params.minImprovement;
      if (promoted) {
        try {
          await context.models.promote(candidate.model, candidate.number, 'production', {
            expectedHolder: incumbent?.number ?? null,
            reason: incumbent
              ? `${params.metric} ${candidateValue.toFixed(4)} beats v${incumbent.number} (${incumbentValue!.toFixed(4)})`
              : `first version with ${params.metric} ${candidateValue.toFixed(4)}`,
          });
        } catch (error) {
          if (!(error instanceof StageHeldError) || attempt === MAX_GATE_ATTEMPTS) throw error;
          context.log(`production changed while deciding (${error.message}); deciding again`);
          continue;
        }
      }
      context.log(
        promoted
          ? `promoted v${candidate.number} to production`
          : `kept v${incumbent!.number} in production (${params.metric} ${candidateValue.toFixed(4)} ≤ ${incumbentValue!.toFixed(4)})`,
      );
      return {
        decision: {
          promoted,
          candidate: candidate.number,
          incumbent: incumbent?.number ?? null,
          metric: params.metric,
          candidateValue,
          incumbentValue,
        },
      };
    }
  },
);

export const training = pipeline(
  {
    name: 'iris_training',
    description: 'Train a random forest on the engineered iris features and gate its promotion',
    parameters: z.object({
      trees: z.number().int().min(1).max(500).default(25),
      maxFeatures: z.number().gt(0).max(1).default(0.75),
      seed: z.number().int().default(7),
      metric: z.enum(['accuracy', 'macroF1']).default('macroF1'),
      minImprovement: z.number().min(0).default(0),
    }),
    tags: ['team:iris-classification', 'environment:local'],
    model: { name: MODEL_NAME, description: 'Iris species classifier', tags: ['team:iris-classification'] },
    // On AWS: retrain every Monday morning, and whenever the data team announces fresh data.
    schedule: { cron: '0 6 ? * MON *', timeZone: 'Europe/Paris', flexibleWindowMinutes: 15, parameters: { trees: 25 } },
    triggers: [
      {
        event: { source: 'iris.data', detailType: 'Iris Data Refreshed' },
        parameters: { trees: { path: '$.detail.trees' }, seed: { path: '$.detail.seed' } },
      },
    ],
  },
  ({ trees, maxFeatures, seed, metric, minImprovement }) => {
    const trainSet = externalArtifact('iris_train_features', Dataset);
    const testSet = externalArtifact('iris_test_features', Dataset);
    const scaler = externalArtifact('iris_scaler', Scaler);
    const { model } = train({ train: trainSet }, { params: { trees, maxFeatures, seed } });
    const { metrics } = evaluate({ model, test: testSet });
    packagePreprocessor({ scaler, test: testSet });
    promotionGate({ metrics }, { params: { metric, minImprovement } });
  },
);
