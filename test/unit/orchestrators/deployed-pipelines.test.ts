import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { pipeline, step } from '../../../lib/index.ts';
import {
  assertGraphIndependentOf,
  pipelineDefinitionHash,
  stateMachineName,
} from '../../../lib/orchestrators/deployed-pipelines.ts';

const count = step(
  { name: 'deployed_count', parameters: z.object({ n: z.number() }), outputs: { n: z.number() } },
  ({ params }) => ({ n: params.n }),
);
const double = step(
  { name: 'deployed_double', inputs: { n: z.number() }, outputs: { n: z.number() } },
  ({ inputs }) => ({ n: inputs.n * 2 }),
);

const fixed = pipeline({ name: 'fixed', parameters: z.object({ n: z.number().default(1) }) }, ({ n }) => {
  const { n: counted } = count({}, { params: { n } });
  double({ n: counted });
});
const shaped = pipeline(
  { name: 'shaped', parameters: z.object({ twice: z.boolean().default(false) }) },
  ({ twice }) => {
    const { n } = count({}, { params: { n: 1 } });
    const once = double({ n });
    if (twice) double({ n: once.n }, { id: 'again' });
  },
);

describe('deployed pipelines', () => {
  it('names state machines <prefix><pipeline>', () => {
    expect(stateMachineName('iris_training')).toBe('stackline-iris_training');
    expect(stateMachineName('iris_training', 'stackline-dev-')).toBe('stackline-dev-iris_training');
  });

  it('hashes the compiled definition: stable, and different for a different graph', () => {
    const hash = pipelineDefinitionHash(fixed);
    expect(hash).toMatch(/^[0-9a-f]{64}$/);
    expect(pipelineDefinitionHash(fixed)).toBe(hash);
    expect(pipelineDefinitionHash(fixed, { n: 5 })).toBe(hash);
    expect(pipelineDefinitionHash(shaped, { twice: true })).not.toBe(pipelineDefinitionHash(shaped));
  });

  it('accepts parameter values, and rejects parameters that change the deployed graph', () => {
    expect(() => assertGraphIndependentOf(fixed, { n: 7 })).not.toThrow();
    expect(() => assertGraphIndependentOf(shaped, { twice: false })).not.toThrow();
    expect(() => assertGraphIndependentOf(shaped, { twice: true })).toThrow(
      /Pipeline "shaped": these parameters change the pipeline's graph, but a deployed state machine runs the graph built from the default parameters/,
    );
  });
});
