import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { pipeline, step } from '../../../lib/index.ts';
import type { MetadataStore } from '../../../lib/metadata/metadata-store.ts';
import { runPipelineLocally } from '../../../lib/runtime/local-orchestrator.ts';
import { createLocalTestEnv, type LocalTestEnv } from '../../support/local-env.ts';

let env: LocalTestEnv;
beforeEach(async () => {
  env = await createLocalTestEnv();
});
afterEach(async () => {
  await env.cleanup();
});

const first = step({ name: 'first', outputs: { n: z.number() } }, () => ({ n: 1 }));
const next = step({ name: 'next', inputs: { n: z.number() }, outputs: { n: z.number() } }, ({ inputs }) => ({
  n: inputs.n + 1,
}));

function linear(steps: number) {
  return pipeline({ name: `cost_${steps}` }, () => {
    let { n } = first();
    for (let i = 1; i < steps; i++) ({ n } = next({ n }, { id: `s${String(i).padStart(4, '0')}` }));
  });
}

interface Cost {
  calls: number;
  /** JSON bytes of every argument passed to and every value returned by the store. */
  bytes: number;
}

/** The metadata store with every repository call counted and its traffic measured. */
function metered(metadata: MetadataStore, cost: Cost): MetadataStore {
  const size = (value: unknown) =>
    value === undefined ? 0 : (JSON.stringify(value, (_k, v) => (v instanceof Map ? [...v] : v))?.length ?? 0);
  const repository = <T extends object>(target: T): T =>
    new Proxy(target, {
      get(object, property) {
        const value = Reflect.get(object, property, object);
        if (typeof value !== 'function') return value;
        return async (...args: unknown[]) => {
          cost.calls++;
          cost.bytes += size(args);
          const result = await (value as (...a: unknown[]) => Promise<unknown>).apply(object, args);
          cost.bytes += size(result);
          return result;
        };
      },
    });
  return new Proxy(metadata, {
    get(object, property) {
      const value = Reflect.get(object, property, object);
      return ['runs', 'artifacts', 'models', 'stacks'].includes(String(property)) ? repository(value) : value;
    },
  });
}

async function costOf(steps: number, keepResults: boolean): Promise<Cost> {
  const cost: Cost = { calls: 0, bytes: 0 };
  const result = await runPipelineLocally(
    linear(steps),
    { ...env, metadata: metered(env.metadata, cost) },
    {
      cache: false,
      keepResults,
    },
  );
  expect(result.run.status).toBe('completed');
  return cost;
}

describe('what one more step costs the local orchestrator', () => {
  // Step ids have the same length at every size, so a step's records do too: any growth of the
  // per-step figures below is work that scales with the pipeline (reading the run's step list,
  // re-writing the run, its configuration snapshot, per step), not with the step.
  for (const keepResults of [true, false]) {
    it(`is the same number of store calls and bytes at 20, 80 and 320 steps (keepResults: ${keepResults})`, async () => {
      const [a, b, c] = [await costOf(20, keepResults), await costOf(80, keepResults), await costOf(320, keepResults)];
      const callsPerStep = [(b.calls - a.calls) / 60, (c.calls - b.calls) / 240];
      const bytesPerStep = [(b.bytes - a.bytes) / 60, (c.bytes - b.bytes) / 240];
      expect(callsPerStep[1]).toBe(callsPerStep[0]);
      expect(Number.isInteger(callsPerStep[0])).toBe(true);
      // Ids and timestamps vary by a few characters; a per-step O(steps) cost would add hundreds.
      expect(Math.abs(bytesPerStep[1]! - bytesPerStep[0]!)).toBeLessThan(bytesPerStep[0]! * 0.02);
    });
  }
});
