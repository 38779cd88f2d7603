/**
 * Bob's feature-engineering pipeline: loads the iris data set, holds back an "incoming" batch
 * (the rows inference will see later), splits the rest, fits the scaler on the training part and
 * writes named feature artifacts that the training pipeline reads.
 */
import { pipeline, step } from 'stackline';
import { z } from 'zod';
import { applyScaler, Dataset, fitScaler, loadIrisDataset, Scaler, splitTrainTest } from '../shared/preprocessing.ts';

const load = step({ name: 'load_iris', outputs: { dataset: Dataset } }, () => ({ dataset: loadIrisDataset() }));

const holdOut = step(
  {
    name: 'hold_out_incoming',
    inputs: { dataset: Dataset },
    parameters: z.object({ fraction: z.number().gt(0).lt(1), seed: z.number().int() }),
    outputs: {
      rest: Dataset,
      incoming: { schema: Dataset, artifact: 'iris_incoming_batch', tags: ['stage:incoming'] },
    },
  },
  ({ inputs, params }) => {
    const { train: rest, test: incoming } = splitTrainTest(inputs.dataset, params.fraction, params.seed);
    return { rest, incoming };
  },
);

const split = step(
  {
    name: 'split',
    inputs: { dataset: Dataset },
    parameters: z.object({ testFraction: z.number().gt(0).lt(1), seed: z.number().int() }),
    outputs: { train: Dataset, test: Dataset },
  },
  ({ inputs, params }) => splitTrainTest(inputs.dataset, params.testFraction, params.seed),
);

const scale = step(
  {
    name: 'fit_and_apply_scaler',
    inputs: { train: Dataset, test: Dataset },
    outputs: {
      scaler: { schema: Scaler, artifact: 'iris_scaler' },
      train: { schema: Dataset, artifact: 'iris_train_features' },
      test: { schema: Dataset, artifact: 'iris_test_features' },
    },
  },
  ({ inputs, context }) => {
    const scaler = fitScaler(inputs.train.features);
    context.log(`scaler fitted on ${inputs.train.features.length} rows`);
    return {
      scaler,
      train: { ...inputs.train, features: applyScaler(scaler, inputs.train.features) },
      test: { ...inputs.test, features: applyScaler(scaler, inputs.test.features) },
    };
  },
);

export const featureEngineering = pipeline(
  {
    name: 'iris_feature_engineering',
    description: 'Split iris, hold back an incoming batch, fit and apply the scaler',
    parameters: z.object({
      incomingFraction: z.number().gt(0).lt(1).default(0.1),
      testFraction: z.number().gt(0).lt(1).default(0.3),
      seed: z.number().int().default(42),
    }),
    tags: ['team:iris-classification', 'environment:local'],
  },
  ({ incomingFraction, testFraction, seed }) => {
    const { dataset } = load();
    const { rest } = holdOut({ dataset }, { params: { fraction: incomingFraction, seed } });
    const { train, test } = split({ dataset: rest }, { params: { testFraction, seed: seed + 1 } });
    scale({ train, test });
  },
);
