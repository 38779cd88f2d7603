import type { LambdaContext, LambdaEvent } from 'hono/aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiLambdaHandler } from '../../../functions/api/index.ts';
import { FIXTURE_MODEL } from '../../support/api-fixture.ts';
import { type ApiHarness, createApiHarness } from '../../support/api-harness.ts';

const MEMBER_ARN = 'arn:aws:sts::123456789012:assumed-role/ml-members/alice';
const RELEASE_ARN = 'arn:aws:sts::123456789012:assumed-role/ml-release-managers/rita';

/** An API Gateway REST proxy event as AWS_IAM authorization delivers it. */
function restEvent(
  method: string,
  path: string,
  options: { userArn?: string | null; body?: unknown; query?: Record<string, string> } = {},
): LambdaEvent {
  const userArn = options.userArn === undefined ? MEMBER_ARN : options.userArn;
  return {
    resource: '/{proxy+}',
    path,
    httpMethod: method,
    headers: { 'content-type': 'application/json', host: 'abc.execute-api.eu-west-1.amazonaws.com' },
    multiValueHeaders: { 'content-type': ['application/json'] },
    queryStringParameters: options.query ?? null,
    multiValueQueryStringParameters: options.query
      ? Object.fromEntries(Object.entries(options.query).map(([k, v]) => [k, [v]]))
      : null,
    pathParameters: { proxy: path.slice(1) },
    stageVariables: null,
    body: options.body === undefined ? null : JSON.stringify(options.body),
    isBase64Encoded: false,
    requestContext: {
      accountId: '123456789012',
      apiId: 'abc',
      authorizer: {},
      domainName: 'abc.execute-api.eu-west-1.amazonaws.com',
      domainPrefix: 'abc',
      extendedRequestId: 'x',
      httpMethod: method,
      identity: userArn === null ? {} : { userArn, caller: 'AROAEXAMPLE:alice', accountId: '123456789012' },
      path: `/prod${path}`,
      protocol: 'HTTP/1.1',
      requestId: 'req-1',
      requestTime: '01/Dec/2026:10:00:00 +0000',
      requestTimeEpoch: 1,
      resourcePath: '/{proxy+}',
      stage: 'prod',
    },
  } as unknown as LambdaEvent;
}

const context = {
  functionName: 'stackline-api',
  functionVersion: '1',
  invokedFunctionArn: 'arn:aws:lambda:eu-west-1:123456789012:function:stackline-api',
  memoryLimitInMB: '512',
  awsRequestId: 'req-1',
  logGroupName: '/aws/lambda/stackline-api',
  logStreamName: 's',
  getRemainingTimeInMillis: () => 10_000,
  callbackWaitsForEmptyEventLoop: false,
} as unknown as LambdaContext;

let api: ApiHarness;
let handler: ReturnType<typeof createApiLambdaHandler>;
beforeAll(async () => {
  api = await createApiHarness();
  handler = createApiLambdaHandler(() => ({
    metadata: api.metadata,
    artifacts: api.artifacts,
    stacks: api.metadata.stacks,
    downloads: {
      issue: async (v) => ({
        url: `https://bucket.s3.amazonaws.com/${v.contentHash}?X-Amz-Signature=x`,
        expiresAt: '2026-12-01T10:15:00.000Z',
      }),
    },
    releaseManagerArns: ['arn:aws:sts::123456789012:assumed-role/ml-release-managers/'],
  }));
});
afterAll(() => api.close());

type Result = { statusCode: number; body: string; headers: Record<string, string> };
const invoke = async (event: LambdaEvent) => {
  const result = (await handler(event, context)) as Result;
  return { ...result, json: JSON.parse(result.body) };
};

describe('API Lambda entry (middy + Hono Lambda adapter)', () => {
  it('answers a REST proxy GET with the run page', async () => {
    const res = await invoke(restEvent('GET', '/runs', { query: { pipeline: 'iris_training', limit: '2' } }));
    expect(res.statusCode).toBe(200);
    expect(res.json.items).toHaveLength(2);
    expect(typeof res.json.nextCursor).toBe('string');
  });

  it('refuses an event without an IAM identity with 401 before touching the stores', async () => {
    const res = await invoke(restEvent('GET', '/runs', { userArn: null }));
    expect(res.statusCode).toBe(401);
    expect(res.json.error.code).toBe('UNAUTHENTICATED');
  });

  it('records the IAM principal as the actor of a stage change', async () => {
    const res = await invoke(
      restEvent('POST', `/models/${FIXTURE_MODEL}/versions/2/stage`, { body: { stage: 'staging' } }),
    );
    expect(res.statusCode).toBe(200);
    expect(res.json.changes[0].actor).toBe(MEMBER_ARN);
    const history = await api.metadata.models.history(FIXTURE_MODEL, { limit: 100 });
    expect(history.items.at(-1)).toMatchObject({ versionNumber: 2, toStage: 'staging', actor: MEMBER_ARN });
  });

  it('lets a principal under a release-manager ARN force production; others get 403', async () => {
    const denied = await invoke(
      restEvent('POST', `/models/${FIXTURE_MODEL}/versions/3/production`, { body: { force: true } }),
    );
    expect(denied.statusCode).toBe(403);
    const allowed = await invoke(
      restEvent('POST', `/models/${FIXTURE_MODEL}/versions/3/production`, {
        userArn: RELEASE_ARN,
        body: { force: true },
      }),
    );
    expect(allowed.statusCode).toBe(200);
    expect(allowed.json.changes).toContainEqual(
      expect.objectContaining({ versionNumber: 3, toStage: 'production', actor: RELEASE_ARN }),
    );
  });

  it('answers 400 with issue paths for a bad body, and 404 for an unknown model', async () => {
    const bad = await invoke(
      restEvent('POST', `/models/${FIXTURE_MODEL}/versions/2/stage`, { body: { stage: 'prod' } }),
    );
    expect(bad.statusCode).toBe(400);
    expect(bad.json.error.issues[0].path).toBe('stage');
    const missing = await invoke(restEvent('GET', '/models/unknown_model'));
    expect(missing.statusCode).toBe(404);
  });

  it('hands out the presigned URL of the artifact store for downloads', async () => {
    const res = await invoke(restEvent('GET', '/artifacts/iris.model/versions/1/download'));
    expect(res.statusCode).toBe(200);
    expect(res.json.url).toMatch(/^https:\/\/bucket\.s3\.amazonaws\.com\/sha256:[0-9a-f]{64}\?X-Amz-Signature=/);
  });

  it('serves the OpenAPI document', async () => {
    const res = await invoke(restEvent('GET', '/openapi.json'));
    expect(res.statusCode).toBe(200);
    expect(res.json.openapi).toBe('3.1.0');
  });
});
