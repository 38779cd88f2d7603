import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { featureEngineering } from '../../examples/reference/feature-engineering.ts';
import { MODEL_NAME, training } from '../../examples/reference/training.ts';
import type { MetadataStore, ModelRepository } from '../../lib/metadata/metadata-store.ts';
import { runPipelineLocally } from '../../lib/runtime/local-orchestrator.ts';
import { createLocalTestEnv, type LocalTestEnv } from '../support/local-env.ts';

/** Two forests of clearly different quality on the reference features (macroF1 on the test split). */
const WORSE = { trees: 1, maxFeatures: 0.25, seed: 3 };
const BETTER = { trees: 25, maxFeatures: 0.75, seed: 7 };

/**
 * A store whose first two reads of the production holder wait for each other (so both gates decide
 * against the same, empty, production) and whose first two promotions to production run in the
 * order that used to break the gate: the better model's first, the worse one's second.
 */
function racingStore(store: MetadataStore): MetadataStore {
  const models = store.models;
  let readers: Array<() => void> = [];
  let promotions: Array<{ value: number; go: () => void }> = [];
  const metric = async (version: number) =>
    Number((await models.getVersion(MODEL_NAME, version)).metadata.macroF1 ?? Number.NaN);
  const racing: ModelRepository = Object.create(models, {
    getVersion: {
      value: async (model: string, ref: Parameters<ModelRepository['getVersion']>[1]) => {
        if (ref === 'production' && readers !== undefined) {
          await new Promise<void>((resolve) => {
            readers.push(resolve);
            if (readers.length === 2) {
              for (const release of readers) release();
              readers = undefined as never;
            }
          });
        }
        return models.getVersion(model, ref);
      },
    },
    setStage: {
      value: async (...args: Parameters<ModelRepository['setStage']>) => {
        const [, version, stage] = args;
        if (stage === 'production' && promotions !== undefined) {
          const value = await metric(version);
          await new Promise<void>((go) => {
            promotions.push({ value, go });
            if (promotions.length === 2) {
              const [first, second] = [...promotions].sort((a, b) => b.value - a.value);
              promotions = undefined as never;
              first!.go();
              // The worse promotion starts only after the better one has had time to commit.
              setTimeout(() => second!.go(), 200);
            }
          });
        }
        return models.setStage(...args);
      },
    },
  });
  return new Proxy(store, {
    get: (target, property) => (property === 'models' ? racing : Reflect.get(target, property, target)),
  });
}

describe('two promotion gates racing on one store', () => {
  let env: LocalTestEnv;
  beforeEach(async () => {
    env = await createLocalTestEnv();
    await runPipelineLocally(featureEngineering, env, { actor: 'bob' });
  });
  afterEach(async () => {
    await env.cleanup();
  });

  it('end with the better model in production, whichever promotes first', async () => {
    const raced = { ...env, metadata: racingStore(env.metadata) };

    const [worse, better] = await Promise.all([
      runPipelineLocally(training, raced, { actor: 'bob', params: WORSE }),
      runPipelineLocally(training, raced, { actor: 'bob', params: BETTER }),
    ]);

    expect([worse.run.status, better.run.status]).toEqual(['completed', 'completed']);
    const versionOf = async (runId: string) =>
      (await env.metadata.models.listVersions(MODEL_NAME)).items.find((v) => v.runIds[0] === runId)!;
    const [worseVersion, betteredVersion] = [await versionOf(worse.run.id), await versionOf(better.run.id)];
    expect(Number(betteredVersion.metadata.macroF1)).toBeGreaterThan(Number(worseVersion.metadata.macroF1));
    const production = await env.metadata.models.getVersion(MODEL_NAME, 'production');
    expect(production.number).toBe(betteredVersion.number);
    // The worse gate lost the compare-and-set, read the better holder and kept it.
    const history = (await env.metadata.models.history(MODEL_NAME)).items;
    expect(history.map((change) => [change.versionNumber, change.toStage, change.actor])).toEqual([
      [betteredVersion.number, 'production', `pipeline:iris_training run ${better.run.id}`],
    ]);
    const gateLogs = (await env.metadata.runs.listSteps(worse.run.id)).find((s) => s.stepName === 'promotion_gate')!;
    expect(gateLogs.logs?.join('\n')).toMatch(/production changed while deciding .*held by version/);
  });
});

describe('a pipeline the stack does not name as a promoter', () => {
  let env: LocalTestEnv;
  beforeEach(async () => {
    env = await createLocalTestEnv();
    await runPipelineLocally(featureEngineering, env, { actor: 'bob' });
  });
  afterEach(async () => {
    await env.cleanup();
  });

  it('fails its gate with a refusal naming the pipeline and the setting, and promotes nothing', async () => {
    const result = await runPipelineLocally(training, { ...env, promoters: ['nightly_retrain'] }, { actor: 'bob' });

    expect(result.run.status).toBe('failed');
    expect(result.run.error?.type).toBe('StepFailedError');
    const gate = (await env.metadata.runs.listSteps(result.run.id)).find((s) => s.stepName === 'promotion_gate')!;
    expect(gate.error).toMatchObject({ type: 'PipelineNotPromoterError' });
    expect(gate.error?.message).toContain(
      'Pipeline "iris_training" may not promote to production on this stack (promoters: nightly_retrain)',
    );
    expect((await env.metadata.models.history(MODEL_NAME)).items).toEqual([]);
  });
});
