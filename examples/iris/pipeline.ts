/**
 * A first Stackline pipeline: load the iris data set, split it, standardize features, train a
 * random forest and evaluate it. Run it twice: the second run reuses every step from the cache.
 *
 *   npx stackline run examples/iris/pipeline.ts
 *   npx stackline run examples/iris/pipeline.ts --param trees=50
 */
import { ConfusionMatrix } from 'ml-confusion-matrix';
import { RandomForestClassifier } from 'ml-random-forest';
import { pipeline, step } from 'stackline';
import { z } from 'zod';
import { MLJS_MODEL } from '../shared/mljs-materializer.ts';
import {
  accuracy,
  applyScaler,
  Dataset,
  fitScaler,
  loadIrisDataset,
  Scaler,
  splitTrainTest,
} from '../shared/preprocessing.ts';

/** `RandomForestClassifier#toJSON()`, stored by the `mljs-model` materializer (it holds ±Infinity). */
const ForestModel = z.looseObject({ name: z.literal('RFClassifier'), baseModel: z.record(z.string(), z.unknown()) });
const Metrics = z.object({
  accuracy: z.number().min(0).max(1),
  confusionMatrix: z.array(z.array(z.number())),
  testRows: z.number(),
});

export const loadData = step({ name: 'load_iris', outputs: { dataset: Dataset } }, ({ context }) => {
  const dataset = loadIrisDataset();
  context.log(`${dataset.features.length} rows, classes ${dataset.classes.join(', ')}`);
  return { dataset };
});

export const split = step(
  {
    name: 'split',
    inputs: { dataset: Dataset },
    parameters: z.object({ testFraction: z.number().gt(0).lt(1).default(0.3), seed: z.number().int().default(42) }),
    outputs: { train: Dataset, test: Dataset },
  },
  ({ inputs, params }) => splitTrainTest(inputs.dataset, params.testFraction, params.seed),
);

export const standardize = step(
  {
    name: 'standardize',
    inputs: { train: Dataset, test: Dataset },
    outputs: { scaler: Scaler, train: Dataset, test: Dataset },
  },
  ({ inputs }) => {
    const scaler = fitScaler(inputs.train.features);
    return {
      scaler,
      train: { ...inputs.train, features: applyScaler(scaler, inputs.train.features) },
      test: { ...inputs.test, features: applyScaler(scaler, inputs.test.features) },
    };
  },
);

export const trainForest = step(
  {
    name: 'train_forest',
    inputs: { train: Dataset },
    parameters: z.object({ trees: z.number().int().min(1).max(500).default(25), seed: z.number().int().default(7) }),
    outputs: { model: { schema: ForestModel, materializer: MLJS_MODEL } },
    retries: { maxRetries: 1, backoffMs: 200 },
  },
  ({ inputs, params }) => {
    const forest = new RandomForestClassifier({
      nEstimators: params.trees,
      seed: params.seed,
      maxFeatures: 0.75,
      replacement: true,
      // Out-of-bag estimates fail on tiny forests (a row never left out) and are not used here.
      noOOB: true,
    });
    forest.train(inputs.train.features, inputs.train.labels);
    // The library's types describe the model as interfaces; the value itself is plain JSON.
    return { model: forest.toJSON() as unknown as z.input<typeof ForestModel> };
  },
);

export const evaluate = step(
  { name: 'evaluate', inputs: { model: ForestModel, test: Dataset }, outputs: { metrics: Metrics } },
  ({ inputs, context }) => {
    const forest = RandomForestClassifier.load(inputs.model as never);
    const predicted = forest.predict(inputs.test.features);
    const matrix = ConfusionMatrix.fromLabels(inputs.test.labels, predicted);
    const metrics = {
      accuracy: accuracy(predicted, inputs.test.labels),
      confusionMatrix: matrix.getMatrix(),
      testRows: predicted.length,
    };
    context.log(`accuracy ${(metrics.accuracy * 100).toFixed(1)}% on ${metrics.testRows} held-out rows`);
    return { metrics };
  },
);

export const irisTraining = pipeline(
  {
    name: 'iris_training',
    description: 'Train and evaluate a random forest on the iris data set',
    parameters: z.object({
      trees: z.number().int().min(1).max(500).default(25),
      testFraction: z.number().gt(0).lt(1).default(0.3),
    }),
    tags: ['team:examples', 'dataset:iris'],
  },
  ({ trees, testFraction }) => {
    const { dataset } = loadData();
    const { train, test } = split({ dataset }, { params: { testFraction } });
    const scaled = standardize({ train, test });
    const { model } = trainForest({ train: scaled.train }, { params: { trees } });
    evaluate({ model, test: scaled.test });
  },
);
