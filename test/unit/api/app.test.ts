import { Validator } from '@seriousme/openapi-schema-validator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURE_MODEL } from '../../support/api-fixture.ts';
import { type ApiHarness, createApiHarness } from '../../support/api-harness.ts';

let api: ApiHarness;
beforeAll(async () => {
  api = await createApiHarness();
});
afterAll(() => api.close());

const historyLength = async () => (await api.metadata.models.history(FIXTURE_MODEL, { limit: 1000 })).items.length;

describe('OpenAPI document', () => {
  it('is served without a token and is a valid OpenAPI 3.1 document', async () => {
    const res = await api.request('get', '/openapi.json', { token: null });
    expect(res.status).toBe(200);
    const doc = await res.json();
    expect(doc.openapi).toBe('3.1.0');
    const validator = new Validator();
    const result = await validator.validate(doc);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');
  });

  it('makes production promotion its own path, apart from other stage moves', async () => {
    const doc = await (await api.request('get', '/openapi.json')).json();
    expect(Object.keys(doc.paths)).toContain('/models/{model}/versions/{version}/production');
    expect(
      doc.paths['/models/{model}/versions/{version}/stage'].post.requestBody.content['application/json'].schema,
    ).toBeDefined();
  });
});

describe('authentication and roles', () => {
  it('refuses a request without a token with 401 and a JSON error', async () => {
    const res = await api.request('get', '/runs', { token: null });
    expect(res.status).toBe(401);
    expect((await res.json()).error).toMatchObject({ status: 401, code: 'UNAUTHENTICATED' });
  });

  it('refuses an unknown token with 401', async () => {
    const res = await api.request('get', '/runs', { token: 'slt_not-a-token' });
    expect(res.status).toBe(401);
  });

  it('refuses production promotion to a member with 403 and changes nothing', async () => {
    const before = await historyLength();
    const res = await api.request('post', `/models/${FIXTURE_MODEL}/versions/2/production`, { body: {} });
    expect(res.status).toBe(403);
    expect((await res.json()).error.message).toMatch(/alice \(role member\) may not promote a version to production/);
    expect(await historyLength()).toBe(before);
    expect((await api.metadata.models.getVersion(FIXTURE_MODEL, 'production')).number).toBe(1);
  });

  it('refuses force to a member, even for staging', async () => {
    const res = await api.request('post', `/models/${FIXTURE_MODEL}/versions/2/stage`, {
      body: { stage: 'staging', force: true },
    });
    expect(res.status).toBe(403);
  });

  it('lets a member move a version to staging, recorded with the token name as actor', async () => {
    const res = await api.request('post', `/models/${FIXTURE_MODEL}/versions/2/stage`, {
      body: { stage: 'staging', reason: 'review' },
    });
    expect(res.status).toBe(200);
    const { changes } = await res.json();
    expect(changes).toEqual([expect.objectContaining({ versionNumber: 2, toStage: 'staging', actor: 'alice' })]);
  });

  it('answers 409 naming the holder when staging is held and force is not given', async () => {
    const res = await api.request('post', `/models/${FIXTURE_MODEL}/versions/3/stage`, { body: { stage: 'staging' } });
    expect(res.status).toBe(409);
    const { error } = await res.json();
    expect(error).toMatchObject({ status: 409, code: 'CONFLICT', holder: 2 });
    expect(error.message).toMatch(/version 2 holds stage "staging"/);
  });

  it('ignores an actor the body claims: the change records the authenticated caller', async () => {
    const res = await api.request('post', `/models/${FIXTURE_MODEL}/versions/3/stage`, {
      body: { stage: 'archived', actor: 'mallory' },
    });
    // strict bodies refuse the unknown field outright
    expect(res.status).toBe(400);
    expect((await res.json()).error.issues[0].message).toMatch(/actor/);
  });

  it('lets a release manager promote to production with force; the old holder is archived', async () => {
    const res = await api.request('post', `/models/${FIXTURE_MODEL}/versions/3/production`, {
      token: api.tokens.releaseManager,
      body: { force: true, reason: 'better accuracy' },
    });
    expect(res.status).toBe(200);
    const { changes } = await res.json();
    expect(
      changes.map((c: { versionNumber: number; toStage: string; actor: string }) => [
        c.versionNumber,
        c.toStage,
        c.actor,
      ]),
    ).toEqual(
      expect.arrayContaining([
        [1, 'archived', 'rita'],
        [3, 'production', 'rita'],
      ]),
    );
  });

  it('keeps protected aliases for release managers and lets members set others', async () => {
    const denied = await api.request('put', `/models/${FIXTURE_MODEL}/aliases/champion`, { body: { version: 3 } });
    expect(denied.status).toBe(403);
    const allowed = await api.request('put', `/models/${FIXTURE_MODEL}/aliases/challenger`, { body: { version: 2 } });
    expect(allowed.status).toBe(200);
    expect(await allowed.json()).toMatchObject({ alias: 'challenger', versionNumber: 2, actor: 'alice' });
    const byManager = await api.request('put', `/models/${FIXTURE_MODEL}/aliases/champion`, {
      token: api.tokens.releaseManager,
      body: { version: 3 },
    });
    expect(byManager.status).toBe(200);
  });
});

describe('errors', () => {
  it('answers 400 naming each bad field by its path', async () => {
    const res = await api.request('get', '/runs?status=done&limit=0');
    expect(res.status).toBe(400);
    const { error } = await res.json();
    expect(error.issues.map((i: { path: string }) => i.path).sort()).toEqual(['limit', 'status']);
  });

  it('answers 400 for a malformed JSON body', async () => {
    const res = await api.request('patch', `/models/${FIXTURE_MODEL}/versions/1/metadata`, { rawBody: '{"values":' });
    expect(res.status).toBe(400);
    expect((await res.json()).error.code).toBe('VALIDATION');
  });

  it('answers 404 for an unknown run and an unknown route', async () => {
    expect((await api.request('get', '/runs/run_missing')).status).toBe(404);
    expect((await api.request('get', '/nowhere')).status).toBe(404);
  });
});

describe('reading', () => {
  it('filters and pages runs like the CLI', async () => {
    const first = await (await api.request('get', '/runs?pipeline=iris_training&limit=2')).json();
    expect(first.items).toHaveLength(2);
    expect(first.items.every((r: { pipeline: string }) => r.pipeline === 'iris_training')).toBe(true);
    const rest = await (
      await api.request('get', `/runs?pipeline=iris_training&limit=2&cursor=${first.nextCursor}`)
    ).json();
    expect(rest.items).toHaveLength(1);
    expect(rest.nextCursor).toBeNull();
    const tagged = await (await api.request('get', '/runs?tag=experiment:e2')).json();
    expect(tagged.items).toHaveLength(1);
    const late = await (await api.request('get', '/runs?since=2026-11-01T10:03:00Z&until=2026-11-01T10:03:00Z')).json();
    expect(late.items.map((r: { parameters: { trees: number } }) => r.parameters.trees)).toEqual([2]);
  });

  it('gives lineage from the model artifact back to the features it was trained on', async () => {
    const res = await api.request('get', '/artifacts/iris.model/versions/1/lineage');
    const lineage = await res.json();
    expect(lineage.producer.stepId).toBe('train');
    expect(lineage.producerInputs.map((v: { name: string }) => v.name)).toEqual(['iris.features']);
    const features = await (await api.request('get', '/artifacts/iris.features/versions/1/lineage')).json();
    expect(features.consumers).toHaveLength(3);
  });

  it('hands out a signed download link that serves the bytes, and refuses a tampered one', async () => {
    const link = await (await api.request('get', '/artifacts/iris.model/versions/2/download')).json();
    const path = link.url.replace('http://localhost', '');
    const bytes = await api.app.request(path);
    expect(bytes.status).toBe(200);
    expect(await bytes.text()).toBe('model bytes v2');
    const flipped = path.replace(/.$/, (c: string) => (c === '0' ? '1' : '0'));
    const tampered = await api.app.request(flipped);
    expect(tampered.status).toBe(401);
  });
});

describe('compare-and-set plumbing', () => {
  it('passes expectedHolder, force, reason and the authenticated actor to the store unchanged', async () => {
    const calls: unknown[][] = [];
    const { createApiApp } = await import('../../../lib/api/app.ts');
    const models = new Proxy(api.metadata.models, {
      get(target, key, receiver) {
        if (key === 'setStage')
          return async (...args: unknown[]) => {
            calls.push(args);
            return [];
          };
        return Reflect.get(target, key, receiver);
      },
    });
    const app = createApiApp({
      metadata: {
        ...api.metadata,
        kind: api.metadata.kind,
        models,
        stacks: api.metadata.stacks,
        runs: api.metadata.runs,
        artifacts: api.metadata.artifacts,
        logMetadata: api.metadata.logMetadata.bind(api.metadata),
        close: async () => {},
      },
      artifacts: api.artifacts,
      stacks: api.metadata.stacks,
      downloads: { issue: async () => ({ url: 'x', expiresAt: 'y' }) },
      authenticate: () => ({ actor: 'rita', role: 'release-manager' }),
    });
    const post = (path: string, body: unknown) =>
      app.request(path, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    expect(
      (await post(`/models/${FIXTURE_MODEL}/versions/2/production`, { expectedHolder: 1, reason: 'r' })).status,
    ).toBe(200);
    expect(
      (await post(`/models/${FIXTURE_MODEL}/versions/2/stage`, { stage: 'staging', expectedHolder: null, force: true }))
        .status,
    ).toBe(200);
    expect(calls).toEqual([
      [FIXTURE_MODEL, 2, 'production', { actor: 'rita', reason: 'r', expectedHolder: 1 }],
      [FIXTURE_MODEL, 2, 'staging', { actor: 'rita', force: true, expectedHolder: null }],
    ]);
  });
});

describe('compare-and-set over HTTP', () => {
  it('refuses a promotion whose expectedHolder is stale with 409 naming the holder, changing nothing', async () => {
    const holder = (await api.metadata.models.getVersion(FIXTURE_MODEL, 'production')).number;
    const before = await historyLength();
    const stale = holder === 1 ? 2 : 1;
    const candidate = [1, 2, 3].find((n) => n !== holder && n !== stale)!;
    const res = await api.request('post', `/models/${FIXTURE_MODEL}/versions/${candidate}/production`, {
      token: api.tokens.releaseManager,
      body: { expectedHolder: stale, force: true },
    });
    expect(res.status).toBe(409);
    expect((await res.json()).error.holder).toBe(holder);
    expect(await historyLength()).toBe(before);
  });
});

describe('POST /runs without pipelines', () => {
  it('answers 404 naming how to serve pipelines, and records nothing', async () => {
    const before = (await api.metadata.runs.list({ limit: 1000 })).items.length;
    const res = await api.request('post', '/runs', { body: { pipeline: 'iris_training' } });
    expect(res.status).toBe(404);
    expect((await res.json()).error.message).toContain('stackline serve --pipelines FILE');
    expect((await api.metadata.runs.list({ limit: 1000 })).items.length).toBe(before);
  });
});
