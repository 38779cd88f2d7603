import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  BatchWriteItemCommand,
  CreateTableCommand,
  DynamoDBClient,
  GetItemCommand,
  TransactWriteItemsCommand,
} from '@aws-sdk/client-dynamodb';
import { CreateFunctionCommand, InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { CreateBucketCommand, GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import {
  CreateStateMachineCommand,
  DescribeExecutionCommand,
  type DescribeExecutionCommandOutput,
  GetExecutionHistoryCommand,
  type HistoryEvent,
  SFNClient,
  StartExecutionCommand,
} from '@aws-sdk/client-sfn';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StepEvent } from '../emulator/fixtures/step-handler.ts';
import { awsTestClientConfig, createRole, type MotoServer, startMoto } from '../support/moto.ts';

// The moto extension (test/emulator/moto_ext) against real SDK v3 clients: a bundled Node handler
// runs for real on Invoke and inside Step Functions executions, with Retry/Catch on its errors.

const run = promisify(execFile);
const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const handlerSource = fileURLToPath(new URL('../emulator/fixtures/step-handler.ts', import.meta.url));
const ROLE_ARN = 'arn:aws:iam::123456789012:role/stackline-step-runner';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

let moto: MotoServer;
let workDir: string;
let lambda: LambdaClient;
let sfn: SFNClient;
let s3: S3Client;
let functionArn: string;
const bucket = 'stackline-moto-extension';

/** Bundles the fixture handler like a real deployment (SDK included) and zips it. */
async function buildFunctionZip(dir: string): Promise<Uint8Array> {
  await run(
    join(repoRoot, 'node_modules/.bin/esbuild'),
    [
      handlerSource,
      '--bundle',
      '--platform=node',
      '--format=esm',
      '--target=node20',
      `--outfile=${join(dir, 'index.mjs')}`,
      '--log-level=error',
      // The SDK's CommonJS dependencies require() Node built-ins; an ESM bundle has no `require`
      // (in real Lambda neither): "Dynamic require of "node:https" is not supported" without this.
      "--banner:js=import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
    ],
    { cwd: repoRoot },
  );
  // A fixed mtime makes the zip, and so its sha256 (moto_ext's unzip cache key), reproducible.
  const fixed = new Date('2020-01-01T00:00:00Z');
  await utimes(join(dir, 'index.mjs'), fixed, fixed);
  await run('python3', ['-m', 'zipfile', '-c', 'function.zip', 'index.mjs'], { cwd: dir });
  return readFile(join(dir, 'function.zip'));
}

async function createFunction(name: string, zip: Uint8Array, timeout: number): Promise<string> {
  const created = await lambda.send(
    new CreateFunctionCommand({
      FunctionName: name,
      Runtime: 'nodejs22.x',
      Handler: 'index.handler',
      Role: ROLE_ARN,
      Code: { ZipFile: zip },
      Timeout: timeout,
      Environment: { Variables: { STACKLINE_MARKER: 'from-function-config' } },
    }),
  );
  return created.FunctionArn!;
}

async function invoke(event: StepEvent, functionName = 'stackline-step') {
  const response = await lambda.send(
    new InvokeCommand({ FunctionName: functionName, Payload: new TextEncoder().encode(JSON.stringify(event)) }),
  );
  return { ...response, payload: JSON.parse(new TextDecoder().decode(response.Payload)) };
}

async function createStateMachine(name: string, definition: object): Promise<string> {
  const created = await sfn.send(
    new CreateStateMachineCommand({ name, definition: JSON.stringify(definition), roleArn: ROLE_ARN }),
  );
  return created.stateMachineArn!;
}

async function waitForExecution(executionArn: string): Promise<DescribeExecutionCommandOutput> {
  const deadline = Date.now() + 45_000;
  for (;;) {
    const execution = await sfn.send(new DescribeExecutionCommand({ executionArn }));
    if (execution.status !== 'RUNNING') return execution;
    if (Date.now() > deadline) throw new Error(`${executionArn} still RUNNING`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

async function history(executionArn: string): Promise<HistoryEvent[]> {
  return (await sfn.send(new GetExecutionHistoryCommand({ executionArn, maxResults: 1000 }))).events ?? [];
}

const ofType = (events: HistoryEvent[], type: string) => events.filter((event) => event.type === type);

describe.skipIf(Boolean(process.env.AWS_ENDPOINT_URL))('moto extension (python3 -m moto_ext)', () => {
  beforeAll(async () => {
    workDir = await mkdtemp(join(tmpdir(), 'stackline-moto-ext-'));
    let zip: Uint8Array;
    [moto, zip] = await Promise.all([startMoto({ stepFunctionsExecution: true }), buildFunctionZip(workDir)]);
    const config = awsTestClientConfig(moto.endpoint);
    lambda = new LambdaClient({ ...config, maxAttempts: 1 });
    sfn = new SFNClient({ ...config, maxAttempts: 1 });
    s3 = new S3Client(config);
    await createRole(moto.endpoint, 'stackline-step-runner');
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    // Generous timeout: other test files share the two cores; the timeout test uses its own function.
    functionArn = await createFunction('stackline-step', zip, 30);
    await createFunction('stackline-step-short', zip, 2);
  }, 120_000);

  afterAll(async () => {
    lambda?.destroy();
    sfn?.destroy();
    s3?.destroy();
    await moto?.stop();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  describe('Lambda Invoke runs the bundled Node handler', () => {
    it('returns the value the handler computes from its event', async () => {
      const response = await invoke({ action: 'compute', numbers: [1, 2, 3] });
      expect(response.StatusCode).toBe(200);
      expect(response.FunctionError).toBeUndefined();
      expect(response.ExecutedVersion).toBe('$LATEST');
      expect(response.payload).toEqual({
        sum: 6,
        doubled: [2, 4, 6],
        functionName: 'stackline-step',
        marker: 'from-function-config',
        hasTimeLeft: true,
      });
    });

    it('reports a thrown error like Lambda: FunctionError Unhandled with errorType = error.name', async () => {
      const response = await invoke({ action: 'reject', reason: 'bad input' });
      expect(response.StatusCode).toBe(200);
      expect(response.FunctionError).toBe('Unhandled');
      expect(response.payload).toMatchObject({
        errorType: 'NonRetriableError',
        errorMessage: 'rejected: bad input',
      });
      expect(response.payload.trace[0]).toBe('NonRetriableError: rejected: bad input');
    });

    it('lets the handler use the bundled S3 client against this moto', async () => {
      const key = `written/${randomUUID()}.txt`;
      const response = await invoke({ action: 'put-object', bucket, key, body: 'hello from lambda' });
      expect(response.FunctionError).toBeUndefined();
      expect(response.payload).toEqual({ written: `s3://${bucket}/${key}` });
      const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      expect(await object.Body?.transformToString()).toBe('hello from lambda');
    });

    it('runs asynchronous (Event) invocations in the background', async () => {
      const key = `async/${randomUUID()}.txt`;
      const event: StepEvent = { action: 'put-object', bucket, key, body: 'async' };
      const response = await lambda.send(
        new InvokeCommand({
          FunctionName: 'stackline-step',
          InvocationType: 'Event',
          Payload: new TextEncoder().encode(JSON.stringify(event)),
        }),
      );
      expect(response.StatusCode).toBe(202);
      const deadline = Date.now() + 30_000;
      for (;;) {
        try {
          const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
          expect(await object.Body?.transformToString()).toBe('async');
          return;
        } catch (error) {
          if ((error as Error).name !== 'NoSuchKey' || Date.now() > deadline) throw error;
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
      }
    });

    it("kills the handler after the function's Timeout and reports Sandbox.Timedout", async () => {
      const started = Date.now();
      const response = await invoke({ action: 'sleep', ms: 60_000 }, 'stackline-step-short');
      expect(Date.now() - started).toBeLessThan(20_000);
      expect(response.FunctionError).toBe('Unhandled');
      expect(response.payload).toMatchObject({ errorType: 'Sandbox.Timedout' });
      expect(response.payload.errorMessage).toMatch(/Task timed out after 2\.00 seconds/);
    });
  });

  describe('Step Functions executions invoke the handler', () => {
    it('runs lambda:invoke (AWS-shaped result) and plain function-ARN tasks', async () => {
      const stateMachineArn = await createStateMachine('stackline-happy', {
        StartAt: 'Invoke',
        States: {
          Invoke: {
            Type: 'Task',
            Resource: 'arn:aws:states:::lambda:invoke',
            Parameters: { FunctionName: functionArn, 'Payload.$': '$' },
            ResultPath: '$.invocation',
            Next: 'PlainArn',
          },
          PlainArn: {
            Type: 'Task',
            Resource: functionArn,
            Parameters: { action: 'compute', 'numbers.$': '$.invocation.Payload.doubled' },
            ResultPath: '$.plain',
            End: true,
          },
        },
      });
      const { executionArn } = await sfn.send(
        new StartExecutionCommand({
          stateMachineArn,
          name: `happy-${randomUUID()}`,
          input: JSON.stringify({ action: 'compute', numbers: [1, 2, 3] }),
        }),
      );
      const execution = await waitForExecution(executionArn!);
      expect(execution.status).toBe('SUCCEEDED');
      const output = JSON.parse(execution.output!);
      expect(output.invocation).toMatchObject({
        StatusCode: 200,
        ExecutedVersion: '$LATEST',
        Payload: { sum: 6, doubled: [2, 4, 6] },
      });
      expect(output.plain).toMatchObject({ sum: 12, doubled: [4, 8, 12], marker: 'from-function-config' });
    }, 60_000);

    it('retries task failures, catches NonRetriableError without retry, names unnamed executions', async () => {
      const stateMachineArn = await createStateMachine('stackline-retry', {
        StartAt: 'Step',
        States: {
          Step: {
            Type: 'Task',
            Resource: 'arn:aws:states:::lambda:invoke',
            Parameters: { FunctionName: functionArn, 'Payload.$': '$' },
            OutputPath: '$.Payload',
            Retry: [
              // First matching retrier wins: NonRetriableError is never retried ...
              { ErrorEquals: ['NonRetriableError'], MaxAttempts: 0 },
              // ... every other task failure is retried twice.
              { ErrorEquals: ['States.TaskFailed'], IntervalSeconds: 1, MaxAttempts: 2, BackoffRate: 1 },
            ],
            Catch: [
              { ErrorEquals: ['NonRetriableError'], ResultPath: '$.error', Next: 'Rejected' },
              { ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'StepFailed' },
            ],
            End: true,
          },
          Rejected: { Type: 'Fail', Error: 'Rejected', Cause: 'the step rejected its input' },
          StepFailed: { Type: 'Fail', Error: 'StepFailed', Cause: 'the step failed after retries' },
        },
      });
      const start = async (event: StepEvent, name?: string) =>
        (await sfn.send(new StartExecutionCommand({ stateMachineArn, name, input: JSON.stringify(event) })))
          .executionArn!;

      // Three StartExecution calls in a row on one state machine (moto 5.2.1 answered the second
      // one with HTTP 500 "cannot pickle '_thread.RLock' object"), two of them without a name
      // (moto 5.2.1 named both "None": an ARN ending in ":None", then ExecutionAlreadyExists).
      const flakyArn = await start({ action: 'flaky', bucket, key: `attempts/${randomUUID()}` }, 'flaky-run');
      const failingArn = await start({ action: 'fail' });
      const rejectedArn = await start({ action: 'reject', reason: 'not retriable' });

      const [flaky, failing, rejected] = await Promise.all([
        waitForExecution(flakyArn),
        waitForExecution(failingArn),
        waitForExecution(rejectedArn),
      ]);

      expect(flakyArn).toMatch(/:execution:stackline-retry:flaky-run$/);
      for (const execution of [failing, rejected]) {
        expect(execution.name).toMatch(UUID);
        expect(execution.executionArn).toBe(
          `${stateMachineArn.replace(':stateMachine:', ':execution:')}:${execution.name}`,
        );
      }

      // Retry on States.TaskFailed: the first attempt fails, the second succeeds.
      expect(flaky.status).toBe('SUCCEEDED');
      expect(JSON.parse(flaky.output!)).toEqual({ recovered: true });
      const flakyEvents = await history(flakyArn);
      expect(ofType(flakyEvents, 'TaskScheduled')).toHaveLength(2);
      expect(ofType(flakyEvents, 'TaskFailed').map((e) => e.taskFailedEventDetails?.error)).toEqual(['Error']);
      expect(ofType(flakyEvents, 'TaskSucceeded')).toHaveLength(1);

      // Always failing: 1 attempt + 2 retries, then the States.ALL catcher.
      expect(failing.status).toBe('FAILED');
      expect(failing.error).toBe('StepFailed');
      const failingEvents = await history(failingArn);
      expect(ofType(failingEvents, 'TaskScheduled')).toHaveLength(3);
      const failures = ofType(failingEvents, 'TaskFailed').map((e) => e.taskFailedEventDetails);
      expect(failures.map((failure) => failure?.error)).toEqual(['Error', 'Error', 'Error']);
      expect(JSON.parse(failures[0]?.cause ?? '{}')).toMatchObject({
        errorType: 'Error',
        errorMessage: 'this step always fails',
      });

      // NonRetriableError: no retry, routed by its own catcher; Error = errorType, Cause = payload.
      expect(rejected.status).toBe('FAILED');
      expect(rejected.error).toBe('Rejected');
      const rejectedEvents = await history(rejectedArn);
      expect(ofType(rejectedEvents, 'TaskScheduled')).toHaveLength(1);
      const [failure] = ofType(rejectedEvents, 'TaskFailed').map((e) => e.taskFailedEventDetails);
      expect(failure?.error).toBe('NonRetriableError');
      expect(JSON.parse(failure?.cause ?? '{}')).toMatchObject({
        errorType: 'NonRetriableError',
        errorMessage: 'rejected: not retriable',
      });
      expect(ofType(rejectedEvents, 'FailStateEntered').map((e) => e.stateEnteredEventDetails?.name)).toEqual([
        'Rejected',
      ]);
    }, 60_000);
  });

  it('serializes DynamoDB requests: one winner per conditional race, every allocated number once', async () => {
    const dynamodb = new DynamoDBClient({ ...awsTestClientConfig(moto.endpoint), maxAttempts: 1 });
    const TableName = 'stackline-race';
    try {
      await dynamodb.send(
        new CreateTableCommand({
          TableName,
          BillingMode: 'PAY_PER_REQUEST',
          AttributeDefinitions: [
            { AttributeName: 'pk', AttributeType: 'S' },
            { AttributeName: 'owner', AttributeType: 'S' },
          ],
          KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
          GlobalSecondaryIndexes: [
            {
              IndexName: 'byOwner',
              KeySchema: [{ AttributeName: 'owner', KeyType: 'HASH' }],
              Projection: { ProjectionType: 'ALL' },
            },
          ],
        }),
      );
      // moto backs up the whole table (deepcopy) before each transaction and restores that backup
      // when a condition fails: unserialized, a loser's restore can erase a winner's write, and
      // concurrent requests can break moto itself (HTTP 500). Some data widens those windows.
      const fillers = Array.from({ length: 4 }, (_, batch) =>
        Array.from({ length: 25 }, (_, index) => ({
          PutRequest: { Item: { pk: { S: `filler-${batch}-${index}` }, owner: { S: 'filler' } } },
        })),
      );
      for (const items of fillers) {
        await dynamodb.send(new BatchWriteItemCommand({ RequestItems: { [TableName]: items } }));
      }

      // 1. Many writers race for one key: exactly one wins, and its write stays.
      const racers = Array.from({ length: 40 }, (_, index) => `racer-${index}`);
      const results = await Promise.allSettled(
        racers.map((owner) =>
          dynamodb.send(
            new TransactWriteItemsCommand({
              TransactItems: [
                {
                  Put: {
                    TableName,
                    Item: { pk: { S: 'lock' }, owner: { S: owner } },
                    ConditionExpression: 'attribute_not_exists(pk)',
                  },
                },
              ],
            }),
          ),
        ),
      );
      const winners = racers.filter((_, index) => results[index]?.status === 'fulfilled');
      expect(winners).toHaveLength(1);
      for (const result of results) {
        if (result.status === 'rejected') expect((result.reason as Error).name).toBe('TransactionCanceledException');
      }
      const item = await dynamodb.send(new GetItemCommand({ TableName, Key: { pk: { S: 'lock' } } }));
      expect(item.Item?.owner?.S).toBe(winners[0]);

      // 2. Version allocation (read the counter, then bump it and claim the number in one
      // conditional transaction; retry when cancelled): every number is claimed exactly once.
      await dynamodb.send(
        new TransactWriteItemsCommand({
          TransactItems: [{ Put: { TableName, Item: { pk: { S: 'counter' }, owner: { S: 'none' }, n: { N: '0' } } } }],
        }),
      );
      const allocate = async (owner: string): Promise<number> => {
        for (;;) {
          const counter = await dynamodb.send(
            new GetItemCommand({ TableName, Key: { pk: { S: 'counter' } }, ConsistentRead: true }),
          );
          const current = Number(counter.Item?.n?.N);
          try {
            await dynamodb.send(
              new TransactWriteItemsCommand({
                TransactItems: [
                  {
                    Update: {
                      TableName,
                      Key: { pk: { S: 'counter' } },
                      UpdateExpression: 'SET n = :next',
                      ConditionExpression: 'n = :current',
                      ExpressionAttributeValues: {
                        ':next': { N: String(current + 1) },
                        ':current': { N: String(current) },
                      },
                    },
                  },
                  {
                    Put: {
                      TableName,
                      Item: { pk: { S: `version-${current + 1}` }, owner: { S: owner } },
                      ConditionExpression: 'attribute_not_exists(pk)',
                    },
                  },
                ],
              }),
            );
            return current + 1;
          } catch (error) {
            if ((error as Error).name !== 'TransactionCanceledException') throw error;
          }
        }
      };
      const allocated = await Promise.all(Array.from({ length: 25 }, (_, index) => allocate(`allocator-${index}`)));
      expect([...allocated].sort((a, b) => a - b)).toEqual(Array.from({ length: 25 }, (_, index) => index + 1));
      const counter = await dynamodb.send(new GetItemCommand({ TableName, Key: { pk: { S: 'counter' } } }));
      expect(counter.Item?.n?.N).toBe('25');
    } finally {
      dynamodb.destroy();
    }
  }, 90_000);
});
