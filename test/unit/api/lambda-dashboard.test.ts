/**
 * The API Lambda as deployed: the real bundle (`bundleApiLambda`) with the dashboard copied beside
 * it, invoked with API Gateway REST proxy events. `GET /` and the assets come from the bundle's
 * `dashboard/` folder; the API answers next to them as before.
 */
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { LambdaContext, LambdaEvent } from 'hono/aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { createApiLambdaHandler } from '../../../functions/api/index.ts';
import { bundleApiLambda } from '../../../lib/bundle/bundle-api-lambda.ts';
import { type ApiHarness, createApiHarness } from '../../support/api-harness.ts';

let api: ApiHarness;
let dir: string;
let invoke: (
  path: string,
) => Promise<{ statusCode: number; multiValueHeaders: Record<string, string[]>; body: string }>;

/** A GET as API Gateway delivers it after AWS_IAM authorization let it through. */
function getEvent(path: string): LambdaEvent {
  return {
    resource: path === '/' ? '/' : '/assets/{file}',
    path,
    httpMethod: 'GET',
    headers: { host: 'abc.execute-api.eu-west-1.amazonaws.com' },
    multiValueHeaders: {},
    queryStringParameters: null,
    multiValueQueryStringParameters: null,
    pathParameters: null,
    stageVariables: null,
    body: null,
    isBase64Encoded: false,
    requestContext: {
      accountId: '123456789012',
      apiId: 'abc',
      httpMethod: 'GET',
      identity: { userArn: 'arn:aws:sts::123456789012:assumed-role/ml-members/alice' },
      path: `/api${path}`,
      requestId: 'req-dashboard',
      resourcePath: path,
      stage: 'api',
    },
  } as unknown as LambdaEvent;
}

beforeAll(async () => {
  api = await createApiHarness();
  // Inside the repository, so the bundle's external @aws-sdk/* imports resolve as on Lambda.
  await mkdir(join(process.cwd(), 'node_modules', '.cache'), { recursive: true });
  dir = await mkdtemp(join(process.cwd(), 'node_modules', '.cache', 'stackline-lambda-dashboard-'));
  const { outfile, dashboard } = await bundleApiLambda(join(dir, 'index.mjs'));
  expect(dashboard).toBe(join(dir, 'dashboard'));
  const bundled = (await import(pathToFileURL(outfile).href)) as {
    createApiLambdaHandler: typeof createApiLambdaHandler;
  };
  const handler = bundled.createApiLambdaHandler(() => ({
    metadata: api.metadata,
    artifacts: api.artifacts,
    stacks: api.metadata.stacks,
    downloads: { issue: async () => ({ url: 'https://example.invalid/x', expiresAt: '2026-12-01T10:15:00.000Z' }) },
    runnerRoleArns: [],
    releaseManagerArns: [],
  }));
  const context = { awsRequestId: 'req-dashboard', getRemainingTimeInMillis: () => 10_000 } as unknown as LambdaContext;
  invoke = async (path) => (await handler(getEvent(path), context)) as never;
}, 120_000);
afterAll(async () => {
  await api.close();
  await rm(dir, { recursive: true, force: true });
});

describe('the API Lambda bundle', () => {
  it('serves the dashboard page at GET /', async () => {
    const res = await invoke('/');
    expect(res.statusCode).toBe(200);
    expect(res.multiValueHeaders['content-type']).toEqual([expect.stringMatching(/^text\/html/)]);
    expect(res.body).toBe(await readFile(join(dir, 'dashboard', 'index.html'), 'utf8'));
  });

  it('serves every asset the page names, as text', async () => {
    const assets = await readdir(join(dir, 'dashboard', 'assets'));
    expect(assets.some((a) => a.endsWith('.js'))).toBe(true);
    for (const asset of assets) {
      const res = await invoke(`/assets/${asset}`);
      expect(res.statusCode, asset).toBe(200);
      expect(res.body).toBe(await readFile(join(dir, 'dashboard', 'assets', asset), 'utf8'));
    }
  });

  it('still answers the API next to it, with the IAM caller', async () => {
    const res = await invoke('/whoami');
    expect(res.statusCode).toBe(200);
    expect(JSON.parse(res.body)).toEqual({
      actor: 'arn:aws:sts::123456789012:assumed-role/ml-members/alice',
      role: 'member',
    });
  });
});
