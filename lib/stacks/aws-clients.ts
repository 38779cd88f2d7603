/**
 * SDK clients for the AWS components of a stack. `project.ts` loads this module (and with it the
 * AWS SDK) with a dynamic `import()` only when a stack uses S3 or DynamoDB, so commands on the
 * local default stack do not pay for loading the SDK.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { StackConfigError } from '../errors.ts';

/** Where one AWS component's client connects; both optional in a stack's configuration. */
export interface AwsConnectionSettings {
  region?: string | undefined;
  endpoint?: string | undefined;
}

/**
 * The region of a stack's AWS component: its own `region`, else `AWS_REGION`, else `AWS_DEFAULT_REGION`.
 *
 * @throws StackConfigError when none of them is set.
 * @example
 * resolveAwsRegion('prod', 'metadata store', { region: undefined }, { AWS_REGION: 'eu-west-1' }); // 'eu-west-1'
 */
export function resolveAwsRegion(
  stack: string,
  component: string,
  settings: AwsConnectionSettings,
  env: NodeJS.ProcessEnv = process.env,
): string {
  const region = settings.region || env.AWS_REGION || env.AWS_DEFAULT_REGION;
  if (region) return region;
  throw new StackConfigError(
    `Stack "${stack}": no AWS region for its ${component}. Register the stack with --region, or set AWS_REGION.`,
    { context: { stack, component } },
  );
}

/**
 * The S3 client of a stack's artifact store. The endpoint is the component's `endpoint`, else
 * whatever the SDK itself reads (`AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, else AWS). The caller
 * owns the client and destroys it.
 */
export function createS3Client(stack: string, settings: AwsConnectionSettings, env = process.env): S3Client {
  const customEndpoint = settings.endpoint || env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL;
  return new S3Client({
    region: resolveAwsRegion(stack, 'artifact store', settings, env),
    ...(settings.endpoint && { endpoint: settings.endpoint }),
    // Emulators (moto, LocalStack, MinIO) serve buckets under the path, not as virtual-host subdomains.
    forcePathStyle: Boolean(customEndpoint),
  });
}

/**
 * The DynamoDB client of a stack's metadata store; the endpoint is the component's `endpoint`, else
 * whatever the SDK itself reads (`AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL`, else AWS). The
 * caller owns the client and destroys it.
 */
export function createDynamoDbClient(
  stack: string,
  settings: AwsConnectionSettings,
  env = process.env,
): DynamoDBClient {
  return new DynamoDBClient({
    region: resolveAwsRegion(stack, 'metadata store', settings, env),
    ...(settings.endpoint && { endpoint: settings.endpoint }),
  });
}
