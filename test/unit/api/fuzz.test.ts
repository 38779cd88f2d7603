/**
 * Bad input generated from the OpenAPI document with fast-check: for every documented route, 1,000
 * requests with broken path parameters, queries and bodies (and valid ones mixed in, so the bad part
 * is what differs). The API must never answer 5xx, and a request it refuses must write nothing:
 * a second SQLite connection watches `PRAGMA data_version`, which moves on any commit by another
 * connection, and the whole database is compared before and after the read-only routes.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalRunStarter } from '../../../lib/api/runs/local-run-starter.ts';
import { createMaterializerRegistry } from '../../../lib/artifacts/registry.ts';
import { defaultStackComponents } from '../../../lib/stacks/stack-config.ts';
import { simple } from '../../fixtures/pipelines/simple.ts';
import { FIXTURE_MODEL } from '../../support/api-fixture.ts';
import { type ApiHarness, createApiHarness } from '../../support/api-harness.ts';

const RUNS_PER_ROUTE = 1000;
const OPERATIONS = 28;

interface Parameter {
  name: string;
  in: 'path' | 'query';
  schema?: { pattern?: string; enum?: string[] };
}
interface Operation {
  parameters?: Parameter[];
  requestBody?: { content: Record<string, { schema: unknown }> };
}

let api: ApiHarness;
let watcher: Database.Database;
let doc: { paths: Record<string, Record<string, Operation>> };

/** Values the seeded store knows, so some generated requests reach the handlers and the store. */
const KNOWN: Record<string, string[]> = {
  model: [FIXTURE_MODEL, 'unknown_model'],
  version: ['1', '2', '3', 'production', 'latest', '0', '-1', '99999'],
  artifact: ['iris.model', 'iris.features'],
  alias: ['challenger', 'champion'],
  stack: ['default'],
  stage: ['staging', 'production', 'archived'],
  limit: ['1', '0', '1001', '-5', '2.5'],
  status: ['completed', 'done'],
  runId: ['run_unknown'],
};

const anyText = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.string({ unit: 'binary', maxLength: 20 }),
  fc.constantFrom('', ' ', '..', '%', '%00', '../etc/passwd', 'a'.repeat(300), '1e9', 'null', '{}', '[]'),
);
const valueFor = (name: string) => (KNOWN[name] ? fc.oneof(fc.constantFrom(...KNOWN[name]!), anyText) : anyText);

/** Bodies that are wrong in one way or many: wrong types, extra keys, out-of-range numbers, any JSON. */
const badBody = fc.oneof(
  fc.jsonValue(),
  fc.record(
    {
      stage: fc.oneof(fc.constantFrom('staging', 'archived', 'production', ''), fc.jsonValue()),
      force: fc.oneof(fc.boolean(), fc.jsonValue()),
      expectedHolder: fc.oneof(fc.integer({ min: -5, max: 5 }), fc.constant(null), fc.jsonValue()),
      reason: fc.oneof(fc.string({ maxLength: 10 }), fc.string({ minLength: 501, maxLength: 600 }), fc.jsonValue()),
      version: fc.oneof(fc.integer({ min: -2, max: 5 }), fc.double(), fc.jsonValue()),
      values: fc.oneof(fc.dictionary(fc.string({ maxLength: 5 }), fc.jsonValue(), { maxKeys: 3 }), fc.jsonValue()),
      tags: fc.oneof(fc.array(fc.string({ maxLength: 8 }), { maxLength: 3 }), fc.jsonValue()),
      actor: fc.string({ maxLength: 8 }),
      pipeline: fc.oneof(fc.constantFrom('simple', 'unknown_pipeline', 'bad name', ''), fc.jsonValue()),
      params: fc.oneof(fc.constant({ count: 2 }), fc.constant({ count: 0 }), fc.jsonValue()),
      definitionSha256: fc.oneof(fc.constant('a'.repeat(64)), fc.string({ maxLength: 70 })),
      stack: fc.constantFrom('default', 'prod', '../x'),
      cache: fc.oneof(fc.boolean(), fc.jsonValue()),
    },
    { requiredKeys: [] },
  ),
);

/** Start-run bodies near the valid ones, so some reach the starter and start a run. */
const runBody = fc.record(
  {
    pipeline: fc.constantFrom('simple', 'unknown_pipeline'),
    params: fc.oneof(fc.constant({ count: 2 }), fc.constant({ count: 0 }), fc.constant({ count: 'x' })),
    tags: fc.constantFrom(['via:fuzz'], ['bad tag: x y'], []),
    definitionSha256: fc.constantFrom('a'.repeat(64), 'zz'),
  },
  { requiredKeys: ['pipeline'] },
);

const tokenArb = () => fc.constantFrom(api.tokens.member, api.tokens.releaseManager, null, 'slt_forged');

function dumpDatabase(): string {
  const tables = watcher.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as Array<{
    name: string;
  }>;
  return JSON.stringify(tables.map(({ name }) => [name, watcher.prepare(`SELECT * FROM "${name}"`).all()]));
}
const dataVersion = () => watcher.pragma('data_version', { simple: true }) as number;

let runs: LocalRunStarter | undefined;

beforeAll(async () => {
  // POST /runs starts real runs of a small pipeline (late-bound: the starter needs the harness's stores).
  api = await createApiHarness({ app: { runs: { start: (request, trigger) => runs!.start(request, trigger) } } });
  runs = new LocalRunStarter(new Map([[simple.name, simple]]), {
    name: 'default',
    components: defaultStackComponents(),
    metadata: api.metadata,
    artifacts: api.artifacts,
    materializers: createMaterializerRegistry({ cacheDir: join(api.dir, 'materialized') }),
    close: async () => {},
  });
  watcher = new Database(join(api.dir, 'metadata.db'), { readonly: true });
  doc = await (await api.request('get', '/openapi.json')).json();
});
afterAll(async () => {
  await runs?.close();
  watcher.close();
  await api.close();
});

describe('bad input from the OpenAPI document', () => {
  it('covers every documented operation', () => {
    expect(Object.values(doc.paths).flatMap((m) => Object.keys(m)).length).toBeGreaterThanOrEqual(OPERATIONS);
    expect(doc.paths['/runs']?.post).toBeDefined();
  });

  const operations = () =>
    Object.entries(doc.paths).flatMap(([path, methods]) =>
      Object.entries(methods).map(([method, op]) => ({ path, method, op })),
    );

  it('never answers 5xx and never writes on a refused request', async () => {
    let requests = 0;
    let started = 0;
    for (const { path, method, op } of operations()) {
      const params = (op.parameters ?? []).filter((p) => p.in === 'path');
      const queries = (op.parameters ?? []).filter((p) => p.in === 'query');
      const hasBody = Boolean(op.requestBody);
      const arbitrary = fc.record({
        path: fc.tuple(...params.map((p) => valueFor(p.name))),
        query: fc.dictionary(
          fc.oneof(fc.constantFrom(...queries.map((q) => q.name), 'x'), fc.string({ maxLength: 5 })),
          fc.oneof(...queries.map((q) => valueFor(q.name)), anyText),
          { maxKeys: 4 },
        ),
        body: hasBody
          ? fc.oneof(
              badBody.map((b) => JSON.stringify(b)),
              anyText,
              ...(path === '/runs' ? [runBody.map((b) => JSON.stringify(b))] : []),
            )
          : fc.constant(undefined),
        token: tokenArb(),
      });
      const readOnly = method === 'get';
      const before = readOnly ? dumpDatabase() : '';
      await fc.assert(
        fc.asyncProperty(arbitrary, async (input) => {
          let concrete = path;
          params.forEach((p, i) => {
            concrete = concrete.replace(`{${p.name}}`, encodeURIComponent(input.path[i]!));
          });
          const query = new URLSearchParams(input.query).toString();
          const versionBefore = dataVersion();
          const res = await api.request(method, `${concrete}${query ? `?${query}` : ''}`, {
            token: input.token,
            ...(input.body === undefined ? {} : { rawBody: input.body }),
          });
          requests++;
          expect(res.status, `${method.toUpperCase()} ${concrete}?${query} ${input.body ?? ''}`).toBeLessThan(500);
          if (res.status >= 400)
            expect(dataVersion(), `${method} ${concrete} wrote on ${res.status}`).toBe(versionBefore);
          // Drain the body so nothing is left open.
          const text = await res.text();
          // A run that started writes in the background: let it end before the next request is judged.
          if (method === 'post' && path === '/runs' && res.status === 200) {
            const { runId } = JSON.parse(text);
            while ((await api.metadata.runs.get(runId)).status === 'running')
              await new Promise((r) => setTimeout(r, 5));
            started++;
          }
        }),
        { numRuns: RUNS_PER_ROUTE },
      );
      if (readOnly) expect(dumpDatabase(), `GET ${path} changed the store`).toBe(before);
    }
    expect(api.internalErrors).toEqual([]);
    expect(requests).toBeGreaterThanOrEqual(RUNS_PER_ROUTE * OPERATIONS);
    // Some generated requests were valid and started a run: the route was reached, not only refused.
    expect(started).toBeGreaterThan(0);
  }, 300_000);
});
