import type { StartExecutionCommand } from '@aws-sdk/client-sfn';
import type { LambdaContext, LambdaEvent } from 'hono/aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiLambdaHandler } from '../../../functions/api/index.ts';
import { readApiLambdaEnvironment } from '../../../lib/api/aws-api-config.ts';
import { StepFunctionsRunStarter } from '../../../lib/api/runs/step-functions-run-starter.ts';
import { deploymentStackRecord, withDeploymentStack } from '../../../lib/stacks/deployment-stack.ts';
import { newId } from '../../../lib/util/ids.ts';
import { FIXTURE_MODEL } from '../../support/api-fixture.ts';
import { type ApiHarness, createApiHarness } from '../../support/api-harness.ts';

const MEMBER_ARN = 'arn:aws:sts::123456789012:assumed-role/ml-members/alice';
const RELEASE_ARN = 'arn:aws:sts::123456789012:assumed-role/ml-release-managers/rita';
const RUNNER_ROLE = 'arn:aws:sts::123456789012:assumed-role/stackline-prod-step-runner/';
const RUNNER_ARN = `${RUNNER_ROLE}stackline-prod-step-runner`;

/** An API Gateway REST proxy event as AWS_IAM authorization delivers it. */
function restEvent(
  method: string,
  path: string,
  options: {
    userArn?: string | null;
    body?: unknown;
    query?: Record<string, string>;
    headers?: Record<string, string>;
  } = {},
): LambdaEvent {
  const userArn = options.userArn === undefined ? MEMBER_ARN : options.userArn;
  return {
    resource: '/{proxy+}',
    path,
    httpMethod: method,
    headers: {
      'content-type': 'application/json',
      host: 'abc.execute-api.eu-west-1.amazonaws.com',
      ...options.headers,
    },
    multiValueHeaders: {
      'content-type': ['application/json'],
      ...Object.fromEntries(Object.entries(options.headers ?? {}).map(([k, v]) => [k, [v]])),
    },
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

const DEPLOYED_SHA = 'd'.repeat(64);
/** What the API asked Step Functions to start (the client is a recorder: the call itself is AWS's). */
const started: StartExecutionCommand['input'][] = [];
let api: ApiHarness;
let handler: ReturnType<typeof createApiLambdaHandler>;
beforeAll(async () => {
  api = await createApiHarness();
  handler = createApiLambdaHandler(() => ({
    metadata: api.metadata,
    artifacts: api.artifacts,
    stacks: withDeploymentStack(
      api.metadata.stacks,
      deploymentStackRecord(
        readApiLambdaEnvironment({
          STACKLINE_STACK: 'prod',
          STACKLINE_ARTIFACT_BUCKET: 'ml-artifacts',
          STACKLINE_ARTIFACT_PREFIX: 'stackline',
          STACKLINE_TABLE_PREFIX: 'stackline-prod',
          STACKLINE_PROMOTERS: 'iris_training',
          STACKLINE_STATE_MACHINE_ARN_PREFIX: 'arn:aws:states:eu-west-1:123456789012:stateMachine:stackline-prod-',
          AWS_REGION: 'eu-west-1',
        }),
      ),
    ),
    downloads: {
      issue: async (v) => ({
        url: `https://bucket.s3.amazonaws.com/${v.contentHash}?X-Amz-Signature=x`,
        expiresAt: '2026-12-01T10:15:00.000Z',
      }),
    },
    releaseManagerArns: ['arn:aws:sts::123456789012:assumed-role/ml-release-managers/'],
    runnerRoleArns: [RUNNER_ROLE],
    promoters: ['iris_training'],
    runs: new StepFunctionsRunStarter({
      sfn: {
        send: async (command: StartExecutionCommand) => {
          started.push(command.input);
          return { executionArn: `exec:${command.input.name}` };
        },
      } as never,
      stack: 'prod',
      stateMachineArnPrefix: 'arn:aws:states:eu-west-1:123456789012:stateMachine:stackline-prod-',
      deployed: { iris_training: DEPLOYED_SHA },
    }),
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

/** A running run of `pipeline` that made a new model version with the fixture's model artifact linked. */
async function runningGateRun(pipeline: string, accuracy: number) {
  const run = await api.metadata.runs.create({
    id: newId('run'),
    pipeline,
    status: 'running',
    stack: 'prod',
    parameters: {},
    config: {},
    tags: [],
    metadata: {},
    createdBy: 'stackline-step-runner',
    startedAt: new Date().toISOString(),
  });
  const version = await api.metadata.models.createVersion(FIXTURE_MODEL, { runId: run.id, metadata: { accuracy } });
  const model = await api.metadata.artifacts.getVersion('iris.model', 1);
  await api.metadata.models.linkArtifact(version.id, 'model', model);
  return { run, version };
}

describe('the step runner through the API (runner role, x-stackline-run)', () => {
  it("records a promoter pipeline's production promotion as pipeline:<name> run <id>", async () => {
    const { run, version } = await runningGateRun('iris_training', 0.999);
    const holder = (await api.metadata.models.getVersion(FIXTURE_MODEL, 'production')).number;
    const res = await invoke(
      restEvent('POST', `/models/${FIXTURE_MODEL}/versions/${version.number}/production`, {
        userArn: RUNNER_ARN,
        headers: { 'x-stackline-run': run.id },
        body: { expectedHolder: holder },
      }),
    );
    expect(res.statusCode).toBe(200);
    const actor = `pipeline:iris_training run ${run.id}`;
    expect(res.json.changes).toContainEqual(
      expect.objectContaining({ versionNumber: version.number, toStage: 'production', actor }),
    );
    const history = await api.metadata.models.history(FIXTURE_MODEL, { limit: 1000 });
    expect(history.items.at(-1)).toMatchObject({ versionNumber: version.number, toStage: 'production', actor });
  });

  it('refuses production to a pipeline outside the promoters, writing nothing', async () => {
    const { run, version } = await runningGateRun('adhoc_training', 0.9999);
    const before = await api.metadata.models.history(FIXTURE_MODEL, { limit: 1000 });
    const res = await invoke(
      restEvent('POST', `/models/${FIXTURE_MODEL}/versions/${version.number}/production`, {
        userArn: RUNNER_ARN,
        headers: { 'x-stackline-run': run.id },
        body: { force: true },
      }),
    );
    expect(res.statusCode).toBe(409);
    expect(res.json.error.message).toContain('Pipeline "adhoc_training" may not promote a version to production');
    expect(await api.metadata.models.history(FIXTURE_MODEL, { limit: 1000 })).toEqual(before);
  });

  it('lets a non-promoter pipeline move its version to staging, recorded with its run', async () => {
    const { run, version } = await runningGateRun('adhoc_training', 0.5);
    const res = await invoke(
      restEvent('POST', `/models/${FIXTURE_MODEL}/versions/${version.number}/stage`, {
        userArn: RUNNER_ARN,
        headers: { 'x-stackline-run': run.id },
        body: { stage: 'archived' },
      }),
    );
    expect(res.statusCode).toBe(200);
    expect(res.json.changes[0].actor).toBe(`pipeline:adhoc_training run ${run.id}`);
  });

  it('answers 401 when the runner names no run or an unknown one, 403 for a run that has ended', async () => {
    const path = `/models/${FIXTURE_MODEL}/versions/2/stage`;
    const none = await invoke(restEvent('POST', path, { userArn: RUNNER_ARN, body: { stage: 'archived' } }));
    expect(none.statusCode).toBe(401);
    expect(none.json.error.message).toContain('x-stackline-run');
    const unknown = await invoke(
      restEvent('POST', path, {
        userArn: RUNNER_ARN,
        headers: { 'x-stackline-run': 'run_nope' },
        body: { stage: 'archived' },
      }),
    );
    expect(unknown.statusCode).toBe(401);
    const ended = (await api.metadata.runs.list({ pipeline: 'iris_training', status: 'completed', limit: 1 }))
      .items[0]!;
    const late = await invoke(
      restEvent('POST', path, {
        userArn: RUNNER_ARN,
        headers: { 'x-stackline-run': ended.id },
        body: { stage: 'archived' },
      }),
    );
    expect(late.statusCode).toBe(403);
  });

  it('ignores x-stackline-run from any other principal: the actor stays the signer', async () => {
    const { run, version } = await runningGateRun('iris_training', 0.1);
    const res = await invoke(
      restEvent('POST', `/models/${FIXTURE_MODEL}/versions/${version.number}/stage`, {
        headers: { 'x-stackline-run': run.id },
        body: { stage: 'archived' },
      }),
    );
    expect(res.statusCode).toBe(200);
    expect(res.json.changes[0].actor).toBe(MEMBER_ARN);
  });
});

describe('POST /runs on AWS (StartExecution on the live alias)', () => {
  it("starts the deployed state machine's live alias with the run id and the caller as trigger", async () => {
    const res = await invoke(
      restEvent('POST', '/runs', {
        body: { pipeline: 'iris_training', params: { epochs: 3 }, definitionSha256: DEPLOYED_SHA },
      }),
    );
    expect(res.statusCode).toBe(200);
    expect(res.json).toMatchObject({ pipeline: 'iris_training', trigger: `trigger:user ${MEMBER_ARN}` });
    const input = started.at(-1)!;
    expect(input.stateMachineArn).toBe(
      'arn:aws:states:eu-west-1:123456789012:stateMachine:stackline-prod-iris_training:live',
    );
    expect(input.name).toBe(res.json.runId);
    expect(JSON.parse(input.input!)).toEqual({
      pipeline: 'iris_training',
      parameters: { epochs: 3 },
      runId: res.json.runId,
      tags: [`trigger:user ${MEMBER_ARN}`],
    });
    expect(res.json.executionArn).toBe(`exec:${res.json.runId}`);
  });

  it('answers 409 DEFINITION_DRIFT when the local definition differs, and 404 for an undeployed pipeline, starting nothing', async () => {
    const count = started.length;
    const drift = await invoke(
      restEvent('POST', '/runs', { body: { pipeline: 'iris_training', definitionSha256: 'e'.repeat(64) } }),
    );
    expect(drift.statusCode).toBe(409);
    expect(drift.json.error.code).toBe('DEFINITION_DRIFT');
    const missing = await invoke(restEvent('POST', '/runs', { body: { pipeline: 'scoring' } }));
    expect(missing.statusCode).toBe(404);
    expect(missing.json.error.message).toContain('known: iris_training');
    expect(started.length).toBe(count);
  });
});

describe("the team-wide stack registry (the deployment's stacks table)", () => {
  it('lists the stack the API serves, written into the registry at its first read', async () => {
    const res = await invoke(restEvent('GET', '/stacks'));
    expect(res.statusCode).toBe(200);
    const prod = res.json.items.find((s: { name: string }) => s.name === 'prod');
    expect(prod).toMatchObject({
      tags: ['environment:prod'],
      components: {
        orchestrator: { type: 'step-functions', region: 'eu-west-1', stateMachinePrefix: 'stackline-prod-' },
        stepRunner: { type: 'lambda', functionName: 'stackline-prod-step-runner' },
        artifactStore: { type: 's3', bucket: 'ml-artifacts', prefix: 'stackline', region: 'eu-west-1' },
        metadataStore: { type: 'dynamodb', tablePrefix: 'stackline-prod', region: 'eu-west-1' },
        promoters: ['iris_training'],
      },
    });
    expect((await api.metadata.stacks.get('prod')).components).toEqual(prod.components);
    const again = await invoke(restEvent('GET', '/stacks/prod'));
    expect(again.json.updatedAt).toBe(prod.updatedAt);
  });

  it('refuses a malformed deployed-pipelines variable with a message naming it', () => {
    expect(() =>
      readApiLambdaEnvironment({
        STACKLINE_STACK: 'prod',
        STACKLINE_ARTIFACT_BUCKET: 'b',
        STACKLINE_ARTIFACT_PREFIX: '',
        STACKLINE_TABLE_PREFIX: 'p',
        STACKLINE_DEPLOYED_PIPELINES: '{not json',
        AWS_REGION: 'eu-west-1',
      }),
    ).toThrow(/STACKLINE_DEPLOYED_PIPELINES: not JSON/);
  });
});
