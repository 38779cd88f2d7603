import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiRequestError, StacklineApiClient } from '../../../lib/api/client.ts';
import { API_ROUTES } from '../../../lib/api/routes.ts';
import { FIXTURE_MODEL } from '../../support/api-fixture.ts';
import { type ApiHarness, createApiHarness } from '../../support/api-harness.ts';

let api: ApiHarness;
let client: (token: string) => StacklineApiClient;
beforeAll(async () => {
  api = await createApiHarness();
  client = (token) =>
    new StacklineApiClient({
      url: 'http://localhost',
      token,
      fetch: ((input: string, init?: RequestInit) => api.app.request(input, init)) as typeof fetch,
    });
});
afterAll(() => api.close());

describe('StacklineApiClient', () => {
  it('has one method per route of the table', () => {
    const methods = Object.getOwnPropertyNames(StacklineApiClient.prototype).filter(
      (m) => m !== 'constructor' && m !== 'call',
    );
    expect(methods.sort()).toEqual(API_ROUTES.map((r) => r.operationId).sort());
  });

  it('lists runs with filters and reads a version, parsed with the response schemas', async () => {
    const member = client(api.tokens.member);
    const page = await member.listRuns({ pipeline: 'iris_training', limit: 2 });
    expect(page.items).toHaveLength(2);
    const production = await member.getModelVersion({ model: FIXTURE_MODEL, version: 'production' });
    expect(production.number).toBe(1);
    const comparison = await member.compareModelVersions({ model: FIXTURE_MODEL }, [1, 2]);
    expect(comparison.rows.map((r) => r.key)).toEqual(['accuracy']);
  });

  it('throws ApiRequestError with the status, and the holder on 409', async () => {
    const member = client(api.tokens.member);
    const denied = await member.promoteToProduction({ model: FIXTURE_MODEL, version: 2 }).catch((e) => e);
    expect(denied).toBeInstanceOf(ApiRequestError);
    expect(denied.status).toBe(403);
    await member.setModelStage({ model: FIXTURE_MODEL, version: 2 }, { stage: 'staging' });
    const held = await member.setModelStage({ model: FIXTURE_MODEL, version: 3 }, { stage: 'staging' }).catch((e) => e);
    expect(held).toMatchObject({ status: 409, holder: 2 });
  });
});
