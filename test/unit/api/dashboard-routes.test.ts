import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PREVIEW_MAX_BYTES } from '../../../lib/api/dashboard-schemas.ts';
import { type ApiHarness, createApiHarness } from '../../support/api-harness.ts';

let api: ApiHarness;
beforeAll(async () => {
  api = await createApiHarness();
});
afterAll(() => api.close());

/** Stores bytes and records a version of `name` written by `materializer`, outside any run. */
async function saveVersion(name: string, materializer: string, content: string | Buffer) {
  const stored = await api.artifacts.put(content);
  return api.metadata.artifacts.createVersion({
    name,
    ...stored,
    materializer,
    dataType: materializer,
    metadata: {},
    tags: [],
  });
}

describe('GET /whoami', () => {
  it('names the token holder and role, as the API records them', async () => {
    expect(await (await api.request('get', '/whoami')).json()).toEqual({ actor: 'alice', role: 'member' });
    const rm = await api.request('get', '/whoami', { token: api.tokens.releaseManager });
    expect(await rm.json()).toEqual({ actor: 'rita', role: 'release-manager' });
  });

  it('answers 401 without a token', async () => {
    expect((await api.request('get', '/whoami', { token: null })).status).toBe(401);
  });
});

describe('GET /runs/{runId}/explain', () => {
  it('explains every step run of the run', async () => {
    const runId = api.seeded.featureRun.id;
    const res = await api.request('get', `/runs/${runId}/explain`);
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body.items.map((e: { stepId: string }) => e.stepId)).toEqual(['engineer']);
    expect(body.items[0].summary).toMatch(/^miss/);
  });

  it('answers 404 for an unknown run', async () => {
    expect((await api.request('get', '/runs/run_nope/explain')).status).toBe(404);
  });
});

describe('GET /runs/{runId}/artifacts', () => {
  it("names the versions the run's steps read and wrote", async () => {
    const run = (await api.request('get', '/runs?pipeline=iris_training&limit=1').then((r) => r.json())).items[0];
    const body = await (await api.request('get', `/runs/${run.id}/artifacts`)).json();
    expect(body.items.map((v: { name: string }) => v.name).sort()).toEqual(['iris.features', 'iris.model']);
  });
});

describe('GET /artifacts/{artifact}/versions/{version}/preview', () => {
  it('shows an array of objects as a table of rows', async () => {
    const rows = [
      { id: 1, label: 'setosa' },
      { id: 2, label: 'virginica', score: 0.9 },
    ];
    const v = await saveVersion('preview.rows', 'json', JSON.stringify(rows));
    const body = await (await api.request('get', `/artifacts/preview.rows/versions/${v.version}/preview`)).json();
    expect(body).toEqual({
      kind: 'table',
      columns: ['id', 'label', 'score'],
      rows: [
        [1, 'setosa', null],
        [2, 'virginica', 0.9],
      ],
      totalRows: 2,
    });
  });

  it('shows other JSON as a value and strings as text', async () => {
    const json = await saveVersion('preview.json', 'json', '{"accuracy":0.95}');
    expect(await (await api.request('get', `/artifacts/preview.json/versions/${json.version}/preview`)).json()).toEqual(
      { kind: 'json', value: { accuracy: 0.95 } },
    );
    const text = await (await api.request('get', '/artifacts/iris.features/versions/1/preview')).json();
    expect(text).toEqual({ kind: 'text', text: 'sepal,petal\n1,2\n', truncated: false });
  });

  it('reads at most PREVIEW_MAX_BYTES and says it truncated', async () => {
    const big = JSON.stringify(Array.from({ length: 20_000 }, (_, i) => ({ i })));
    const v = await saveVersion('preview.big', 'json', big);
    const body = await (await api.request('get', `/artifacts/preview.big/versions/${v.version}/preview`)).json();
    expect(body.kind).toBe('text');
    expect(body.truncated).toBe(true);
    expect(body.text.length).toBe(PREVIEW_MAX_BYTES);
  });

  it('gives binaries by size and hash only', async () => {
    const v = await saveVersion('preview.bin', 'binary', Buffer.from([0, 1, 2, 255]));
    const body = await (await api.request('get', `/artifacts/preview.bin/versions/${v.version}/preview`)).json();
    expect(body).toEqual({ kind: 'binary', size: 4, contentHash: v.contentHash, materializer: 'binary' });
  });
});
