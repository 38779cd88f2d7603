/**
 * Alice's inference pipeline: scores the incoming batch with whatever version of
 * `iris_classifier` holds `production` at run time, through the same preprocessing module the
 * training side used, writes a predictions data set and records the results on that model version.
 */
import { RandomForestClassifier } from 'ml-random-forest';
import { externalArtifact, pipeline, step } from 'stackline';
import { z } from 'zod';
import { accuracy, applyScaler, Dataset } from '../shared/preprocessing.ts';
import { ForestModel, MODEL_NAME, Preprocessor } from './training.ts';

export const Predictions = z.object({
  modelVersion: z.number().int(),
  rows: z.array(z.object({ features: z.array(z.number()), predicted: z.string(), actual: z.string().nullable() })),
});

const predict = step(
  {
    name: 'predict',
    inputs: { batch: Dataset },
    outputs: { predictions: { schema: Predictions, artifact: 'iris_predictions', tags: ['team:iris-classification'] } },
    // Resolved when the step runs; the resolved version is part of the cache key, so a promotion
    // makes the next run recompute instead of serving the old model's predictions.
    model: { model: MODEL_NAME, version: 'production' },
  },
  async ({ inputs, context }) => {
    const model = context.model!;
    const forest = RandomForestClassifier.load(ForestModel.parse(await model.loadArtifact('iris_model')) as never);
    const preprocessor = Preprocessor.parse(await model.loadArtifact('iris_preprocessor'));
    const predicted = forest.predict(applyScaler(preprocessor.scaler, inputs.batch.features));
    const batchAccuracy = accuracy(predicted, inputs.batch.labels);
    await model.logMetadata({
      lastInference: { runId: context.runId, rows: predicted.length, batchAccuracy, at: new Date().toISOString() },
    });
    context.log(
      `v${model.number} scored ${predicted.length} rows, batch accuracy ${(batchAccuracy * 100).toFixed(1)}%`,
    );
    return {
      predictions: {
        modelVersion: model.number,
        rows: inputs.batch.features.map((features, i) => ({
          features,
          predicted: preprocessor.classes[predicted[i]!]!,
          actual: preprocessor.classes[inputs.batch.labels[i]!] ?? null,
        })),
      },
    };
  },
);

export const inference = pipeline(
  {
    name: 'iris_inference',
    description: 'Score the incoming batch with the production model',
    tags: ['team:iris-classification', 'environment:local'],
    // On AWS: a new production model scores the incoming batch with no one at a keyboard.
    triggers: [{ stackline: 'model-stage-changed', model: MODEL_NAME, stage: 'production' }],
  },
  () => {
    predict({ batch: externalArtifact('iris_incoming_batch', Dataset) });
  },
);
