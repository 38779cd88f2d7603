/**
 * The step runner's configuration on AWS (Lambda or ECS): read from the environment the CDK stack
 * sets, once, at the first invocation — never at import time — and turned into the stack's stores.
 *
 * Only SDK clients and the S3 / DynamoDB adapters are imported here: nothing that loads
 * better-sqlite3 (such as `lib/stacks/project.ts`), so the Lambda bundle holds no native module.
 */

import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { z } from 'zod';
import { createMaterializerRegistry } from '../artifacts/registry.ts';
import { S3ArtifactStore } from '../artifacts/s3-artifact-store.ts';
import type { PipelineDefinition } from '../dsl/pipeline.ts';
import { StackConfigError } from '../errors.ts';
import { withPlatformEvents } from '../events/platform-events.ts';
import { DynamoDbMetadataStore } from '../metadata/dynamodb/dynamodb-metadata-store.ts';
import { tableNamesFor } from '../metadata/dynamodb/table-definitions.ts';
import { withStoreRules } from '../metadata/store-rules.ts';
import { createDynamoDbClient, createS3Client } from '../stacks/aws-clients.ts';
import { DEFAULT_DISTRIBUTED_MAP_THRESHOLD, type StepRunnerDeps } from './step-runner.ts';

const required = (what: string) => z.string({ error: `missing (${what})` }).min(1, `empty (${what})`);

/** The environment variables the step runner reads. */
export const StepRunnerEnvironment = z.object({
  STACKLINE_STACK: required('the stack name, recorded on runs'),
  STACKLINE_ARTIFACT_BUCKET: required('the S3 bucket of the artifact store'),
  STACKLINE_ARTIFACT_PREFIX: z.string({ error: 'missing (the key prefix in the bucket; may be empty)' }),
  STACKLINE_TABLE_PREFIX: required('DynamoDB tables are <prefix>-stacks, -runs, -artifacts, -models, -stages'),
  STACKLINE_SSE: z.enum(['AES256', 'aws:kms']).optional(),
  STACKLINE_KMS_KEY_ID: z.string().min(1).optional(),
  STACKLINE_DISTRIBUTED_MAP_THRESHOLD: z.coerce.number().int().min(1).optional(),
  STACKLINE_USER: z.string().min(1).optional(),
  /** Comma-separated pipelines whose steps may promote to production (the environment's `promoters`). */
  STACKLINE_PROMOTERS: z
    .string()
    .optional()
    .transform((list) =>
      (list ?? '')
        .split(',')
        .map((name) => name.trim())
        .filter(Boolean),
    ),
  /** When set, run status and stage changes are published to this EventBridge bus (`source: "stackline"`). */
  STACKLINE_EVENT_BUS: z.string().min(1).optional(),
  /** The environment's API: step code's promotions go there, SigV4-signed (read by `lib/models/model-context.ts`). */
  STACKLINE_API_URL: z.url().optional(),
  /** Else the SSM parameter holding the API's URL (what the CDK runner stack sets). */
  STACKLINE_API_URL_PARAMETER: z.string().min(1).optional(),
  AWS_REGION: required('set by Lambda and ECS; set it yourself elsewhere'),
  /** Read by the SDK itself; here only to switch S3 to path-style addressing (emulators). */
  AWS_ENDPOINT_URL: z.url().optional(),
});
export type StepRunnerEnvironment = z.infer<typeof StepRunnerEnvironment>;

/**
 * Validates the runner's environment.
 *
 * @throws StackConfigError listing every missing or invalid variable.
 * @example
 * readStepRunnerEnvironment({ STACKLINE_STACK: 'prod', STACKLINE_ARTIFACT_BUCKET: 'ml', STACKLINE_ARTIFACT_PREFIX: '',
 *   STACKLINE_TABLE_PREFIX: 'stackline-prod', AWS_REGION: 'eu-west-1' });
 */
export function readStepRunnerEnvironment(env: NodeJS.ProcessEnv = process.env): StepRunnerEnvironment {
  // Empty optional values count as unset (CDK renders absent settings as '').
  const present = Object.fromEntries(
    Object.entries(env).filter(([name, value]) => value !== '' || name === 'STACKLINE_ARTIFACT_PREFIX'),
  );
  const parsed = StepRunnerEnvironment.safeParse(present);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
    throw new StackConfigError(
      `The step runner's environment is incomplete: ${problems.join('; ')}. The CDK stack sets these on the function and the task definition.`,
      { context: { variables: parsed.error.issues.map((issue) => issue.path.join('.')) } },
    );
  }
  return parsed.data;
}

/**
 * The stores and settings of {@link handleStepRunnerRequest} from an environment: S3 artifact
 * store (downloads cached under /tmp), DynamoDB metadata store and the materializer registry.
 * Call it after the pipeline module has been imported, so materializers it registers are included.
 */
export function createAwsStepRunnerDeps(
  pipelines: readonly PipelineDefinition[],
  env: NodeJS.ProcessEnv = process.env,
): StepRunnerDeps {
  const config = readStepRunnerEnvironment(env);
  const stack = config.STACKLINE_STACK;
  const connection = { region: config.AWS_REGION };
  const s3 = createS3Client(stack, connection, env);
  const cacheRoot = join(tmpdir(), 'stackline');
  const sse = config.STACKLINE_SSE;
  return {
    pipelines,
    stackName: stack,
    stores: {
      metadata: withPlatformEvents(
        withStoreRules(
          new DynamoDbMetadataStore({
            client: createDynamoDbClient(stack, connection, env),
            tables: tableNamesFor(config.STACKLINE_TABLE_PREFIX),
          }),
        ),
        config,
      ),
      artifacts: new S3ArtifactStore({
        client: s3,
        bucket: config.STACKLINE_ARTIFACT_BUCKET,
        prefix: config.STACKLINE_ARTIFACT_PREFIX,
        ...(sse ? { serverSideEncryption: sse } : {}),
        ...(config.STACKLINE_KMS_KEY_ID ? { kmsKeyId: config.STACKLINE_KMS_KEY_ID } : {}),
        cacheDir: join(cacheRoot, 'cache'),
      }),
      materializers: createMaterializerRegistry({ cacheDir: join(cacheRoot, 'materialized') }),
      promoters: config.STACKLINE_PROMOTERS,
    },
    distributedMapThreshold: config.STACKLINE_DISTRIBUTED_MAP_THRESHOLD ?? DEFAULT_DISTRIBUTED_MAP_THRESHOLD,
    itemsLocation: {
      bucket: config.STACKLINE_ARTIFACT_BUCKET,
      prefix: config.STACKLINE_ARTIFACT_PREFIX,
      async write(key, body) {
        await s3.send(
          new PutObjectCommand({
            Bucket: config.STACKLINE_ARTIFACT_BUCKET,
            Key: key,
            Body: body,
            ContentType: 'application/json',
            ...(sse ? { ServerSideEncryption: sse } : {}),
            ...(config.STACKLINE_KMS_KEY_ID ? { SSEKMSKeyId: config.STACKLINE_KMS_KEY_ID } : {}),
          }),
        );
      },
    },
    actor: config.STACKLINE_USER ?? `step-functions:${stack}`,
  };
}

const depsByPipelines = new WeakMap<readonly PipelineDefinition[], StepRunnerDeps>();

/**
 * {@link createAwsStepRunnerDeps} from `process.env`, made once per pipeline list and reused by
 * every later invocation of the warm Lambda container (SDK clients keep their connections).
 */
export function awsStepRunnerDeps(pipelines: readonly PipelineDefinition[]): StepRunnerDeps {
  let deps = depsByPipelines.get(pipelines);
  if (!deps) {
    deps = createAwsStepRunnerDeps(pipelines);
    depsByPipelines.set(pipelines, deps);
  }
  return deps;
}
