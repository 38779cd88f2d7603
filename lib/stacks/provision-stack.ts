/**
 * `stackline stack provision`: creates what a stack's AWS components need on an emulator (moto,
 * LocalStack) or in a dev account. Production resources come from the CDK stack, which also owns
 * their encryption, backups, retention and lifecycle rules; nothing here sets those.
 */
import {
  type BucketLocationConstraint,
  CreateBucketCommand,
  HeadBucketCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { StackConfigError } from '../errors.ts';
import { createTables, tableNamesFor } from '../metadata/dynamodb/table-definitions.ts';
import { createDynamoDbClient, createS3Client, resolveAwsRegion } from './aws-clients.ts';
import type { StackComponents } from './stack-config.ts';

/** One resource `provisionStack` looked at, and whether it created it or found it. */
export interface ProvisionedResource {
  kind: 'dynamodb-table' | 's3-bucket';
  name: string;
  status: 'created' | 'existing';
}

/**
 * Creates the DynamoDB tables (`<tablePrefix>-stacks|runs|artifacts|models`) and the S3 bucket of
 * a stack's AWS components, leaving those that already exist as they are, so it can run any number
 * of times. Components that are not on AWS are skipped; a local-only stack provisions nothing.
 *
 * @example
 * const resources = await provisionStack('emulated', await project.stackComponents('emulated'));
 * // [{ kind: 'dynamodb-table', name: 'sl-dev-artifacts', status: 'created' }, ...]
 */
export async function provisionStack(
  stack: string,
  components: StackComponents,
  env: NodeJS.ProcessEnv = process.env,
): Promise<ProvisionedResource[]> {
  const resources: ProvisionedResource[] = [];
  const metadataStore = components.metadataStore;
  if (metadataStore.type === 'dynamodb') {
    const client = createDynamoDbClient(stack, metadataStore, env);
    try {
      const { created, existing } = await createTables(client, tableNamesFor(metadataStore.tablePrefix), {
        ifNotExists: true,
      });
      for (const name of created) resources.push({ kind: 'dynamodb-table', name, status: 'created' });
      for (const name of existing) resources.push({ kind: 'dynamodb-table', name, status: 'existing' });
    } finally {
      client.destroy();
    }
  }
  const artifactStore = components.artifactStore;
  if (artifactStore.type === 's3') {
    const client = createS3Client(stack, artifactStore, env);
    try {
      const region = resolveAwsRegion(stack, 'artifact store', artifactStore, env);
      const status = await ensureBucket(client, stack, artifactStore.bucket, region);
      resources.push({ kind: 's3-bucket', name: artifactStore.bucket, status });
    } finally {
      client.destroy();
    }
  }
  return resources;
}

async function ensureBucket(
  client: S3Client,
  stack: string,
  bucket: string,
  region: string,
): Promise<ProvisionedResource['status']> {
  try {
    await client.send(new HeadBucketCommand({ Bucket: bucket }));
    return 'existing';
  } catch (error) {
    if (httpStatus(error) !== 404) throw bucketError(error, stack, bucket);
  }
  try {
    await client.send(
      new CreateBucketCommand({
        Bucket: bucket,
        // us-east-1 is the one region that rejects an explicit location constraint.
        ...(region !== 'us-east-1' && {
          CreateBucketConfiguration: { LocationConstraint: region as BucketLocationConstraint },
        }),
      }),
    );
    return 'created';
  } catch (error) {
    // Created by someone else between our check and our create: it is ours all the same.
    if ((error as { name?: string }).name === 'BucketAlreadyOwnedByYou') return 'existing';
    throw bucketError(error, stack, bucket);
  }
}

function bucketError(error: unknown, stack: string, bucket: string): unknown {
  const status = httpStatus(error);
  const name = (error as { name?: string }).name;
  if (status === 403 || status === 301 || name === 'BucketAlreadyExists') {
    return new StackConfigError(
      `Stack "${stack}": S3 bucket "${bucket}" belongs to another account or another region (${name ?? `HTTP ${status}`}). ` +
        'Bucket names are global: register the stack with another --bucket, or fix its --region.',
      { cause: error, context: { stack, bucket } },
    );
  }
  return error;
}

function httpStatus(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
}
