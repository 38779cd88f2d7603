/**
 * withEventPublishing over a real SQLite store: platform events follow committed writes only.
 * The publisher here records what it is given (an in-memory EventPublisher, the interface's
 * second implementation); EventBridgePublisher itself is exercised against moto in the deploy tier.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type EventPublisher, type PlatformEvent, withEventPublishing } from '../../../lib/events/platform-events.ts';
import type { MetadataStore } from '../../../lib/metadata/metadata-store.ts';
import { createLocalTestEnv, type LocalTestEnv } from '../../support/local-env.ts';

let env: LocalTestEnv;
// biome-ignore lint/suspicious/noExplicitAny: the details' union is narrowed by the assertions themselves
let published: Array<PlatformEvent & { detail: any }>;
let failures: unknown[];
let failing: boolean;
let store: MetadataStore;

beforeEach(async () => {
  env = await createLocalTestEnv();
  published = [];
  failures = [];
  failing = false;
  const publisher: EventPublisher = {
    async publish(events) {
      if (failing) throw new Error('bus unavailable');
      published.push(...events);
    },
  };
  store = withEventPublishing(env.metadata, publisher, 'dev', (error) => failures.push(error));
});
afterEach(async () => {
  await env.cleanup();
});

async function createRun(id: string) {
  return store.runs.create({
    id,
    pipeline: 'training',
    status: 'running',
    stack: 'dev',
    parameters: {},
    config: {},
    tags: ['team:ml'],
    metadata: {},
    createdBy: 'alice',
    startedAt: new Date().toISOString(),
  });
}

describe('withEventPublishing', () => {
  it('publishes Run Status Changed after a run finishes, with its stack, pipeline, status and tags', async () => {
    await createRun('run_a');
    expect(published).toEqual([]);
    await store.runs.finish('run_a', 'completed', '2026-12-01T00:00:00.000Z');
    expect(published).toEqual([
      {
        detailType: 'Run Status Changed',
        detail: {
          stack: 'dev',
          runId: 'run_a',
          pipeline: 'training',
          status: 'completed',
          tags: ['team:ml'],
          endedAt: '2026-12-01T00:00:00.000Z',
        },
      },
    ]);
  });

  it('publishes for each run abandon actually ended, and nothing for a write that failed', async () => {
    await createRun('run_b');
    await store.runs.abandon(['run_b'], 'cancelled', new Date().toISOString(), { type: 'X', message: 'stop' });
    expect(published.map((e) => [e.detailType, e.detail.status])).toEqual([['Run Status Changed', 'cancelled']]);
    // Finishing a finished run is refused by the store: no event.
    await expect(store.runs.finish('run_b', 'completed', new Date().toISOString())).rejects.toThrow();
    expect(published).toHaveLength(1);
  });

  it('publishes Model Version Stage Changed for the promoted version and the displaced holder', async () => {
    await store.models.createVersion('iris');
    await store.models.createVersion('iris');
    await store.models.setStage('iris', 1, 'staging', { actor: 'alice' });
    await store.models.setStage('iris', 2, 'staging', { actor: 'bob', force: true, reason: 'better' });
    const moves = published.map((e) => [e.detail.version, e.detail.fromStage, e.detail.toStage, e.detail.actor]);
    expect(moves[0]).toEqual([1, null, 'staging', 'alice']);
    expect(moves.slice(1)).toHaveLength(2);
    expect(moves.slice(1)).toEqual(
      expect.arrayContaining([
        [1, 'staging', 'archived', 'bob'],
        [2, null, 'staging', 'bob'],
      ]),
    );
    expect(published.every((e) => e.detailType === 'Model Version Stage Changed')).toBe(true);
    // Rules match on the environment: the event names the stack the store serves.
    expect(published.every((e) => e.detail.stack === 'dev')).toBe(true);
  });

  it('keeps a committed write when publishing fails, and reports the failure', async () => {
    await createRun('run_c');
    failing = true;
    const run = await store.runs.finish('run_c', 'failed', new Date().toISOString());
    expect(run.status).toBe('failed');
    expect((await env.metadata.runs.get('run_c')).status).toBe('failed');
    expect(failures.map((e) => (e as Error).message)).toEqual(['bus unavailable']);
  });

  it('passes every other call through to the store', async () => {
    await createRun('run_d');
    expect((await store.runs.get('run_d')).pipeline).toBe('training');
    expect((await store.runs.list()).items.map((r) => r.id)).toEqual(['run_d']);
  });
});
