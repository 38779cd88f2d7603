/**
 * `stackline serve` started for real, on the local stack after the reference scenario, called over
 * HTTP with fetch and with a Python notebook script that uses only `requests`.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalArtifactStore } from '../../lib/artifacts/local-artifact-store.ts';
import { SqliteMetadataStore } from '../../lib/metadata/sqlite/sqlite-metadata-store.ts';
import { seedApiFixture } from '../support/api-fixture.ts';
import { runCli } from '../support/cli.ts';

const run = promisify(execFile);
const MODEL = 'iris_classifier';
const PIPELINE_FILE = 'test/fixtures/pipelines/simple.ts';

let home: string;
let server: ChildProcess;
let url: string;
let member: string;
let releaseManager: string;
let metadata: SqliteMetadataStore;
let openapiPaths: Record<string, Record<string, unknown>>;
const routesHit = new Set<string>();

/** Matches a concrete path to its OpenAPI template, to record which documented routes were called. */
function recordRoute(method: string, path: string) {
  const pathname = path.split('?')[0]!;
  for (const template of Object.keys(openapiPaths ?? {})) {
    const pattern = new RegExp(`^${template.replace(/\{[^}]+\}/g, '[^/]+')}$`);
    if (pattern.test(pathname) && openapiPaths[template]![method.toLowerCase()]) {
      routesHit.add(`${method.toUpperCase()} ${template}`);
    }
  }
}

async function call(method: string, path: string, options: { token?: string | null; body?: unknown } = {}) {
  const token = options.token === undefined ? member : options.token;
  const res = await fetch(`${url}${path}`, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
  });
  recordRoute(method, path);
  const text = await res.text();
  // biome-ignore lint/suspicious/noExplicitAny: tests index into response bodies freely
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text };
}

async function startServe(): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(
    process.execPath,
    ['bin/stackline.js', 'serve', '--port', '0', '--json', '--pipelines', PIPELINE_FILE],
    {
      env: { ...process.env, STACKLINE_HOME: home, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const found = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      out += d;
      try {
        resolve(JSON.parse(out).url);
      } catch {
        // not the whole JSON object yet
      }
    });
    child.once('exit', (code) => reject(new Error(`stackline serve exited ${code}: ${err}`)));
  });
  return { child, url: found };
}

const historyOf = async (model: string) => (await metadata.models.history(model, { limit: 1000 })).items;

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'stackline-serve-'));
  await run(process.execPath, ['--import', 'tsx', 'examples/reference/run.ts'], {
    env: { ...process.env, STACKLINE_HOME: home },
  });
  metadata = SqliteMetadataStore.open(join(home, 'metadata.db'));
  const artifacts = new LocalArtifactStore(join(home, 'artifacts'));
  await seedApiFixture(metadata, artifacts, 20, { model: 'race', production: false });
  await seedApiFixture(metadata, artifacts, 20, { model: 'race_force', production: false });
  member = (await runCli(home, 'token', 'create', '--role', 'member', '--name', 'alice', '--json')).json().token;
  releaseManager = (
    await runCli(home, 'token', 'create', '--role', 'release-manager', '--name', 'rita', '--json')
  ).json().token;
  ({ child: server, url } = await startServe());
  openapiPaths = ((await (await fetch(`${url}/openapi.json`)).json()) as { paths: typeof openapiPaths }).paths;
}, 120_000);

afterAll(async () => {
  if (server && server.exitCode === null) {
    const exited = new Promise((resolve) => server.once('exit', resolve));
    server.kill('SIGTERM');
    await exited;
  }
  await metadata?.close();
  if (home) await rm(home, { recursive: true, force: true });
});

describe('stackline serve', () => {
  it('binds 127.0.0.1 by default', () => {
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  });

  it('requires a bearer token', async () => {
    expect((await call('GET', '/runs', { token: null })).status).toBe(401);
  });

  it('stores tokens hashed and lists them without the secret', async () => {
    const listed = await runCli(home, 'token', 'list', '--json');
    expect(listed.json().tokens.map((t: { name: string; role: string }) => [t.name, t.role])).toEqual([
      ['alice', 'member'],
      ['rita', 'release-manager'],
    ]);
    expect(listed.stdout).not.toContain(member);
  });

  it('refuses a revoked token', async () => {
    const temp = (await runCli(home, 'token', 'create', '--role', 'member', '--name', 'temp', '--json')).json().token;
    expect((await call('GET', '/models', { token: temp })).status).toBe(200);
    expect((await runCli(home, 'token', 'revoke', 'temp')).code).toBe(0);
    expect((await call('GET', '/models', { token: temp })).status).toBe(401);
  });
});

describe('the notebook path (Python, requests only)', () => {
  const notebook = async (token: string, version: number) => {
    const { stdout } = await run('python3', ['test/notebook/notebook.py', MODEL, String(version)], {
      env: { ...process.env, STACKLINE_API: url, STACKLINE_TOKEN: token },
    });
    return JSON.parse(stdout);
  };

  it('with a member token: reads runs, metrics and the model bytes, and the promotion gets 403 changing nothing', async () => {
    const before = await historyOf(MODEL);
    const holder = (await metadata.models.getVersion(MODEL, 'production')).number;
    const candidate = holder === 1 ? 2 : 1;
    const result = await notebook(member, candidate);
    expect(result.runs.length).toBeGreaterThanOrEqual(4);
    expect(result.production).toBe(holder);
    expect(result.metrics.macroF1).toBeGreaterThan(0.9);
    expect(result.artifact).toMatchObject({ name: expect.any(String), hashMatches: true });
    expect(result.artifact.bytes).toBeGreaterThan(0);
    expect(result.promotion.status).toBe(403);
    expect(await historyOf(MODEL)).toEqual(before);
    expect((await metadata.models.getVersion(MODEL, 'production')).number).toBe(holder);
  });

  it('with a release-manager token: the promotion succeeds and is recorded under the token name', async () => {
    const holder = (await metadata.models.getVersion(MODEL, 'production')).number;
    const candidate = holder === 1 ? 2 : 1;
    const result = await notebook(releaseManager, candidate);
    expect(result.promotion.status).toBe(200);
    expect((await metadata.models.getVersion(MODEL, 'production')).number).toBe(candidate);
    expect((await historyOf(MODEL)).slice(-2)).toEqual([
      expect.objectContaining({ versionNumber: holder, toStage: 'archived', actor: 'rita' }),
      expect.objectContaining({ versionNumber: candidate, toStage: 'production', actor: 'rita' }),
    ]);
  });
});

describe('concurrent promotions over HTTP', () => {
  it('20 promotions of different versions without force: one 200, nineteen 409 naming the holder', async () => {
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        call('POST', `/models/race/versions/${i + 1}/production`, { token: releaseManager, body: {} }),
      ),
    );
    const ok = results.filter((r) => r.status === 200);
    const conflicts = results.filter((r) => r.status === 409);
    expect(ok).toHaveLength(1);
    expect(conflicts).toHaveLength(19);
    const winner = ok[0]!.json.changes[0].versionNumber;
    expect((await metadata.models.getVersion('race', 'production')).number).toBe(winner);
    for (const c of conflicts) {
      expect(c.json.error.holder).toBe(winner);
      expect(c.json.error.message).toContain(`version ${winner} holds stage "production"`);
    }
    expect((await historyOf('race')).filter((h) => h.toStage === 'production')).toHaveLength(1);
  });

  it('20 forced promotions: one holder, and 20 production history rows each with the caller', async () => {
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        call('POST', `/models/race_force/versions/${i + 1}/production`, {
          token: releaseManager,
          body: { force: true },
        }),
      ),
    );
    expect(results.map((r) => r.status)).toEqual(Array(20).fill(200));
    const inProduction = (await metadata.models.listVersions('race_force', { stage: 'production', limit: 100 })).items;
    expect(inProduction).toHaveLength(1);
    const promotions = (await historyOf('race_force')).filter((h) => h.toStage === 'production');
    expect(promotions).toHaveLength(20);
    expect(new Set(promotions.map((h) => h.versionNumber)).size).toBe(20);
    expect(promotions.every((h) => h.actor === 'rita')).toBe(true);
  });
});

describe('every documented route', () => {
  it('answers each route of the OpenAPI document over HTTP', async () => {
    const runs = (await call('GET', '/runs?pipeline=iris_training&status=completed&limit=5')).json.items;
    const runId = runs[0].id;
    const detail = await call('GET', `/runs/${runId}`);
    expect(detail.json.run.id).toBe(runId);
    const steps = (await call('GET', `/runs/${runId}/steps`)).json.items;
    expect(steps.length).toBeGreaterThan(0);
    // The per-step snapshot, a blob in the artifact store, comes inline as before (the dashboard's DAG).
    const planned = Object.keys(detail.json.run.config.steps);
    expect(planned).toHaveLength(detail.json.run.config.stepsSnapshot.steps);
    expect(
      steps
        .map((s: { stepId: string }) => s.stepId.replace(/\[\d+\]$/, ''))
        .every((id: string) => planned.includes(id)),
    ).toBe(true);
    const logs = await call('GET', `/runs/${runId}/steps/${steps[0].id}/logs`);
    expect(logs.json.stepRunId).toBe(steps[0].id);
    expect((await call('PATCH', `/runs/${runId}/metadata`, { body: { values: { reviewed: true } } })).status).toBe(200);
    expect((await metadata.runs.get(runId)).metadata.reviewed).toBe(true);
    const explained = (await call('GET', `/runs/${runId}/explain`)).json.items;
    expect(explained.map((e: { stepRunId: string }) => e.stepRunId).sort()).toEqual(
      steps.map((s: { id: string }) => s.id).sort(),
    );
    expect((await call('GET', `/runs/${runId}/artifacts`)).json.items.length).toBeGreaterThan(0);
    expect((await call('GET', '/whoami')).json).toEqual({ actor: 'alice', role: 'member' });

    const started = await call('POST', '/runs', {
      body: { pipeline: 'simple', params: { count: 2 }, tags: ['via:api'] },
    });
    expect(started.status).toBe(200);
    expect(started.json.trigger).toBe('trigger:user alice');
    let startedRun = (await call('GET', `/runs/${started.json.runId}`)).json.run;
    for (let i = 0; i < 100 && startedRun.status === 'running'; i++) {
      await new Promise((r) => setTimeout(r, 50));
      startedRun = (await call('GET', `/runs/${started.json.runId}`)).json.run;
    }
    expect(startedRun).toMatchObject({ status: 'completed', createdBy: 'alice', pipeline: 'simple' });
    expect(startedRun.tags).toEqual(expect.arrayContaining(['via:api', 'trigger:user alice']));

    expect((await call('GET', '/stacks')).json.items.map((x: { name: string }) => x.name)).toContain('default');
    expect((await call('GET', '/stacks/default')).json.name).toBe('default');
    const pipelines = (await call('GET', '/pipelines')).json.items;
    expect(pipelines.map((p: { name: string }) => p.name)).toEqual(expect.arrayContaining(['iris_training']));

    const artifacts = (await call('GET', '/artifacts?limit=100')).json.items;
    expect(artifacts.map((a: { name: string }) => a.name)).toContain('iris.model');
    const versions = (await call('GET', '/artifacts/iris.model/versions')).json.items;
    expect(versions.length).toBeGreaterThan(0);
    expect((await call('GET', '/artifacts/iris.model/versions/1')).json.version).toBe(1);
    expect((await call('GET', '/artifacts/iris.model/versions/1/lineage')).json.producer).not.toBeNull();
    expect((await call('GET', '/artifacts/iris.model/versions/1/preview')).json.kind).toBe('text');
    const link = (await call('GET', '/artifacts/iris.model/versions/1/download')).json;
    const downloadPath = link.url.slice(url.length);
    const bytes = await call('GET', downloadPath, { token: null });
    expect(bytes.status).toBe(200);
    expect(bytes.text.length).toBe(link.size);
    expect(
      (await call('PATCH', '/artifacts/iris.model/versions/1/metadata', { body: { values: { note: 'ok' } } })).status,
    ).toBe(200);
    expect(
      (await call('POST', '/artifacts/iris.model/versions/1/tags', { body: { tags: ['reviewed'] } })).json.tags,
    ).toContain('reviewed');

    expect((await call('GET', '/models')).json.items.map((m: { name: string }) => m.name)).toContain(MODEL);
    const model = (await call('GET', `/models/${MODEL}`)).json;
    expect(model.stages.production).toEqual(expect.any(Number));
    expect((await call('GET', `/models/${MODEL}/versions?limit=10`)).json.items.length).toBeGreaterThanOrEqual(2);
    expect((await call('GET', `/models/${MODEL}/versions/production`)).json.number).toBe(model.stages.production);
    expect(
      (await call('POST', `/models/${MODEL}/versions/1/stage`, { body: { stage: 'archived' } })).status,
    ).toBeLessThan(500);
    expect(
      (await call('PATCH', `/models/${MODEL}/versions/1/metadata`, { body: { values: { reviewedBy: 'alice' } } }))
        .status,
    ).toBe(200);
    expect((await call('PUT', `/models/${MODEL}/aliases/challenger`, { body: { version: 1 } })).json.actor).toBe(
      'alice',
    );
    expect((await call('DELETE', `/models/${MODEL}/aliases/challenger?reason=done`)).json.kind).toBe('alias-removed');
    expect((await call('GET', `/models/${MODEL}/history`)).json.items.length).toBeGreaterThan(0);
    expect((await call('GET', `/models/${MODEL}/compare?versions=1,2`)).json.rows.length).toBeGreaterThan(0);

    const documented = Object.entries(openapiPaths).flatMap(([path, methods]) =>
      Object.keys(methods).map((m) => `${m.toUpperCase()} ${path}`),
    );
    expect(documented.length).toBeGreaterThanOrEqual(28);
    expect([...routesHit].sort()).toEqual(documented.sort());
  });
});

describe('a workstation logged in to the API (stackline login)', () => {
  let workstation: string;
  beforeAll(async () => {
    workstation = await mkdtemp(join(tmpdir(), 'stackline-workstation-'));
  });
  afterAll(() => rm(workstation, { recursive: true, force: true }));

  it('refuses a wrong token with exit 2 and saves nothing', async () => {
    const result = await runCli(workstation, 'login', url, '--token', 'slt_wrong');
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('token');
    expect(existsSync(join(workstation, 'api.json'))).toBe(false);
  });

  it("lists the server's stacks, runs a pipeline through POST /runs and lists runs, with no local stack involved", async () => {
    const login = await runCli(workstation, 'login', url, '--token', member, '--json');
    expect(login.code).toBe(0);
    expect(login.json()).toMatchObject({ url, auth: 'bearer', stacks: ['default'] });
    expect(statSync(join(workstation, 'api.json')).mode & 0o777).toBe(0o600);

    const stacks = await runCli(workstation, 'stack', 'list', '--json');
    expect(stacks.json()).toMatchObject({ api: url, stacks: [expect.objectContaining({ name: 'default' })] });

    const run = await runCli(workstation, 'run', PIPELINE_FILE, '--stack', 'default', '--param', 'count=5', '--json');
    expect(run.code).toBe(0);
    const { runId, run: record } = run.json();
    expect(record).toMatchObject({ status: 'completed', createdBy: 'alice', parameters: { count: 5 } });
    expect((await metadata.runs.get(runId)).tags).toContain('trigger:user alice');
    // Recorded on the server's store only: the workstation's own registry has no runs.
    const local = SqliteMetadataStore.open(join(workstation, 'metadata.db'));
    try {
      expect((await local.runs.list({ limit: 10 })).items).toEqual([]);
    } finally {
      await local.close();
    }

    const listed = await runCli(workstation, 'runs', 'list', '--pipeline', 'simple', '--json');
    expect(listed.json().items.map((r: { id: string }) => r.id)).toContain(runId);

    // The run's output, loaded through the download link the API hands out: 1 + 2 + 3 + 4 + 5.
    const sum = await runCli(workstation, 'artifacts', 'load', 'stats.sum', '--json');
    expect(sum.code).toBe(0);
    expect(sum.json()).toBe(15);
    expect((await runCli(workstation, 'artifacts', 'load', 'stats.label')).stdout).toBe('n=5\n');
  });

  it('sends the compiled definition hash: a changed pipeline is refused with 409 and exit 2', async () => {
    const result = await runCli(workstation, 'run', 'test/fixtures/pipelines/simple-copy.ts', '--json');
    expect(result.code).toBe(2);
    expect(result.stdout).toContain('Pipeline \\"simple\\" differs from the one stack \\"default\\" runs');
  });

  it("promotes with the token's role: a member gets exit 2 for production and nothing changes", async () => {
    const before = await historyOf(MODEL);
    const result = await runCli(workstation, 'model', 'promote', MODEL, '1', 'production', '--force');
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('may not');
    expect(await historyOf(MODEL)).toEqual(before);
  });

  it('--api with STACKLINE_TOKEN works without a login, and logout returns to the local stacks', async () => {
    expect((await runCli(workstation, 'logout', '--json')).json()).toEqual({ loggedOut: true, url });
    const local = await runCli(workstation, 'stack', 'list', '--json');
    expect(local.json()).toMatchObject({ active: 'default' });
    const saved = process.env.STACKLINE_TOKEN;
    process.env.STACKLINE_TOKEN = member;
    try {
      const remote = await runCli(workstation, '--api', url, 'runs', 'list', '--limit', '1', '--json');
      expect(remote.code).toBe(0);
      expect(remote.json().items).toHaveLength(1);
    } finally {
      if (saved === undefined) delete process.env.STACKLINE_TOKEN;
      else process.env.STACKLINE_TOKEN = saved;
    }
  });
});
