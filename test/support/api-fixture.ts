import type { ArtifactStore } from '../../lib/artifacts/artifact-store.ts';
import type { MetadataStore } from '../../lib/metadata/metadata-store.ts';
import { newId } from '../../lib/util/ids.ts';

export const FIXTURE_MODEL = 'iris_classifier';

/**
 * Seeds a store the way pipelines leave it: a feature run writing `iris.features`, then `versions`
 * training runs, each completed, reading the features, writing `iris.model` (real bytes in the
 * artifact store) and producing one model version with an `accuracy` metric and a linked `model`
 * artifact. Version 1 is put in production unless `production: false`.
 */
export async function seedApiFixture(
  metadata: MetadataStore,
  artifacts: ArtifactStore,
  versions = 3,
  options: { model?: string; production?: boolean } = {},
) {
  const model = options.model ?? FIXTURE_MODEL;
  const at = (n: number) => new Date(Date.UTC(2026, 10, 1, 10, n)).toISOString();
  const features = await artifacts.put('sepal,petal\n1,2\n');
  const featureRun = await metadata.runs.create({
    id: newId('run'),
    pipeline: 'iris_features',
    status: 'running',
    stack: 'default',
    parameters: {},
    config: {},
    tags: ['team:ml'],
    metadata: {},
    createdBy: 'bob',
    startedAt: at(0),
  });
  const featureStep = await metadata.runs.startStep({
    id: newId('srun'),
    runId: featureRun.id,
    stepId: 'engineer',
    stepName: 'engineer',
    status: 'running',
    cacheKey: 'ck-features',
    codeHash: 'h1',
    parameters: {},
    startedAt: at(0),
    attempts: 1,
    inputs: {},
    outputs: {},
    metadata: {},
  });
  const { outputs } = await metadata.runs.completeStep(featureStep.id, {
    endedAt: at(1),
    durationMs: 60_000,
    attempts: 1,
    logs: ['read 150 rows', 'wrote features'],
    outputs: [
      {
        outputName: 'features',
        artifact: {
          name: 'iris.features',
          ...features,
          materializer: 'string',
          dataType: 'string',
          metadata: {},
          tags: [],
          producerRunId: featureRun.id,
          producerStepRunId: featureStep.id,
        },
      },
    ],
  });
  await metadata.runs.finish(featureRun.id, 'completed', at(1));
  const featureVersion = outputs.features!;

  const modelVersions = [];
  for (let i = 1; i <= versions; i++) {
    const run = await metadata.runs.create({
      id: newId('run'),
      pipeline: 'iris_training',
      status: 'running',
      stack: 'default',
      parameters: { trees: i },
      config: {},
      tags: [`experiment:e${i}`],
      metadata: {},
      createdBy: 'bob',
      startedAt: at(1 + i),
    });
    const step = await metadata.runs.startStep({
      id: newId('srun'),
      runId: run.id,
      stepId: 'train',
      stepName: 'train',
      status: 'running',
      cacheKey: `ck-${model}-${i}`,
      codeHash: 'h2',
      parameters: { trees: i },
      startedAt: at(1 + i),
      attempts: 1,
      inputs: { features: featureVersion.id },
      outputs: {},
      metadata: {},
    });
    const blob = await artifacts.put(`model bytes v${i}`);
    const done = await metadata.runs.completeStep(step.id, {
      endedAt: at(2 + i),
      durationMs: 1000,
      attempts: 1,
      logs: [`training ${i} trees`],
      outputs: [
        {
          outputName: 'model',
          artifact: {
            name: 'iris.model',
            ...blob,
            materializer: 'string',
            dataType: 'string',
            metadata: {},
            tags: [],
            producerRunId: run.id,
            producerStepRunId: step.id,
          },
        },
      ],
    });
    const mv = await metadata.models.createVersion(model, {
      runId: run.id,
      metadata: { accuracy: 0.9 + i / 100 },
    });
    await metadata.models.linkArtifact(mv.id, 'model', done.outputs.model!);
    await metadata.runs.setModelVersion(run.id, mv.id);
    await metadata.runs.finish(run.id, 'completed', at(2 + i));
    modelVersions.push(mv);
  }
  if (options.production ?? true) await metadata.models.setStage(model, 1, 'production', { actor: 'seed' });
  return { featureRun, featureVersion, modelVersions };
}
