/** `POST /runs` on the local stack: the pipelines `stackline serve --pipelines` loaded, started in-process. */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalRunStarter } from '../../../lib/api/runs/local-run-starter.ts';
import { createMaterializerRegistry } from '../../../lib/artifacts/registry.ts';
import { pipelineDefinitionHash } from '../../../lib/orchestrators/deployed-pipelines.ts';
import { defaultStackComponents } from '../../../lib/stacks/stack-config.ts';
import { simple } from '../../fixtures/pipelines/simple.ts';
import { type ApiHarness, createApiHarness } from '../../support/api-harness.ts';

let api: ApiHarness;
let starter: LocalRunStarter;
beforeAll(async () => {
  const pipelines = new Map([[simple.name, simple]]);
  // The starter needs the harness's stores, which exist only once it is made: late-bound.
  let runs: LocalRunStarter | undefined;
  api = await createApiHarness({
    app: { runs: { start: (request, trigger) => runs!.start(request, trigger) } },
  });
  runs = new LocalRunStarter(pipelines, {
    name: 'default',
    components: defaultStackComponents(),
    metadata: api.metadata,
    artifacts: api.artifacts,
    materializers: createMaterializerRegistry({ cacheDir: join(api.dir, 'materialized') }),
    close: async () => {},
  });
  starter = runs;
});
afterAll(async () => {
  await starter.close();
  await api.close();
});

const runCount = async () => (await api.metadata.runs.list({ limit: 1000 })).items.length;

async function finished(runId: string) {
  for (let i = 0; i < 200; i++) {
    const run = await api.metadata.runs.get(runId);
    if (run.status !== 'running') return run;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`run ${runId} did not finish`);
}

describe('POST /runs (local stack)', () => {
  it('starts a known pipeline and records the caller as its trigger and creator', async () => {
    const res = await api.request('post', '/runs', { body: { pipeline: 'simple', params: { count: 4 } } });
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body).toMatchObject({ pipeline: 'simple', trigger: 'trigger:user alice', executionArn: null });
    const run = await finished(body.runId);
    expect(run).toMatchObject({ status: 'completed', createdBy: 'alice', parameters: { count: 4 } });
    expect(run.tags).toContain('trigger:user alice');
  });

  it('accepts the matching definition hash and refuses another with 409 DEFINITION_DRIFT, starting nothing', async () => {
    const ok = await api.request('post', '/runs', {
      body: { pipeline: 'simple', definitionSha256: pipelineDefinitionHash(simple) },
    });
    expect(ok.status).toBe(200);
    await finished((await ok.json()).runId);
    const before = await runCount();
    const drift = await api.request('post', '/runs', {
      body: { pipeline: 'simple', definitionSha256: 'a'.repeat(64) },
    });
    expect(drift.status).toBe(409);
    const { error } = await drift.json();
    expect(error.code).toBe('DEFINITION_DRIFT');
    expect(error.message).toContain('local definition aaaaaaaaaaaa');
    expect(await runCount()).toBe(before);
  });

  it('answers 404 naming the known pipelines for an unknown one', async () => {
    const res = await api.request('post', '/runs', { body: { pipeline: 'nope' } });
    expect(res.status).toBe(404);
    expect((await res.json()).error.message).toContain('known: simple');
  });

  it('answers 400 for bad parameters, another stack or an unknown key, and records no run', async () => {
    const before = await runCount();
    const badParams = await api.request('post', '/runs', { body: { pipeline: 'simple', params: { count: 0 } } });
    expect(badParams.status).toBe(400);
    const otherStack = await api.request('post', '/runs', { body: { pipeline: 'simple', stack: 'prod' } });
    expect(otherStack.status).toBe(400);
    expect((await otherStack.json()).error.message).toContain('serves stack "default", not "prod"');
    const actor = await api.request('post', '/runs', { body: { pipeline: 'simple', actor: 'mallory' } });
    expect(actor.status).toBe(400);
    expect(await runCount()).toBe(before);
  });

  it('requires a token', async () => {
    expect((await api.request('post', '/runs', { token: null, body: { pipeline: 'simple' } })).status).toBe(401);
  });
});
