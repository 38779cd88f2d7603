/**
 * The API Lambda's configuration on AWS: read from the environment the CDK stack sets, once, at the
 * first invocation, and turned into the stores and the caller resolution. Only SDK clients and the
 * S3 / DynamoDB adapters are imported: nothing that loads better-sqlite3.
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SFNClient } from '@aws-sdk/client-sfn';
import { z } from 'zod';
import { S3ArtifactStore } from '../artifacts/s3-artifact-store.ts';
import { AuthenticationError, StackConfigError } from '../errors.ts';
import { withPlatformEvents } from '../events/platform-events.ts';
import { DynamoDbMetadataStore } from '../metadata/dynamodb/dynamodb-metadata-store.ts';
import { tableNamesFor } from '../metadata/dynamodb/table-definitions.ts';
import type { MetadataStore } from '../metadata/metadata-store.ts';
import { createDynamoDbClient, createS3Client } from '../stacks/aws-clients.ts';
import { deploymentStackRecord, withDeploymentStack } from '../stacks/deployment-stack.ts';
import type { ApiAppOptions } from './app.ts';
import type { Caller } from './caller.ts';
import { S3DownloadLinks } from './download-links.ts';
import { runnerCaller } from './runner-caller.ts';
import { StepFunctionsRunStarter } from './runs/step-functions-run-starter.ts';

const commaList = z
  .string()
  .default('')
  .transform((list) =>
    list
      .split(',')
      .map((item) => item.trim())
      .filter(Boolean),
  );

/** `{"<pipeline>": "<definition sha256>"}`, as the CDK app renders it. */
const DeployedPipelines = z
  .string()
  .default('{}')
  .transform((text, ctx) => {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      ctx.addIssue({ code: 'custom', message: 'not JSON' });
      return z.NEVER;
    }
  })
  .pipe(z.record(z.string(), z.string().regex(/^[0-9a-f]{64}$/)));

const required = (what: string) => z.string({ error: `missing (${what})` }).min(1, `empty (${what})`);

/** The environment variables the API Lambda reads. */
export const ApiLambdaEnvironment = z.object({
  STACKLINE_STACK: required('the stack name the API serves'),
  STACKLINE_ARTIFACT_BUCKET: required('the S3 bucket of the artifact store'),
  STACKLINE_ARTIFACT_PREFIX: z.string({ error: 'missing (the key prefix in the bucket; may be empty)' }),
  STACKLINE_TABLE_PREFIX: required('DynamoDB tables are <prefix>-stacks, -runs, -artifacts, -models'),
  /**
   * Comma-separated ARN prefixes of release managers' principals (their IAM roles'
   * `arn:aws:sts::<account>:assumed-role/<role>/`). Decides who may use `force` and move protected
   * aliases, which IAM cannot see (they are in the body); production promotion is gated by IAM on
   * its own resource path, and here as well.
   */
  STACKLINE_RELEASE_MANAGER_ARNS: z.string().default(''),
  /** When set, stage and run status changes are published to this EventBridge bus (`source: "stackline"`). */
  STACKLINE_EVENT_BUS: z.string().min(1).optional(),
  /** Comma-separated pipelines whose steps may promote to production (the environment's `promoters`). */
  STACKLINE_PROMOTERS: commaList,
  /**
   * Comma-separated ARN prefixes of the step runner's principals (`arn:aws:sts::<account>:assumed-role/<runner role>/`):
   * requests they sign act for the run named in the `x-stackline-run` header.
   */
  STACKLINE_RUNNER_ROLE_ARNS: commaList,
  /** `arn:aws:states:<region>:<account>:stateMachine:<prefix>`; unset: `POST /runs` knows no pipelines. */
  STACKLINE_STATE_MACHINE_ARN_PREFIX: z
    .string()
    .regex(/^arn:[^:]+:states:[^:]*:[^:]*:stateMachine:/)
    .optional(),
  /** The deployed pipelines and their definition hashes (JSON), for `POST /runs` and its drift check. */
  STACKLINE_DEPLOYED_PIPELINES: DeployedPipelines,
  AWS_REGION: required('set by Lambda'),
  AWS_ENDPOINT_URL: z.url().optional(),
});
export type ApiLambdaEnvironment = z.infer<typeof ApiLambdaEnvironment>;

/** @throws StackConfigError listing every missing or invalid variable. */
export function readApiLambdaEnvironment(env: NodeJS.ProcessEnv = process.env): ApiLambdaEnvironment {
  const present = Object.fromEntries(
    Object.entries(env).filter(([name, value]) => value !== '' || name === 'STACKLINE_ARTIFACT_PREFIX'),
  );
  const parsed = ApiLambdaEnvironment.safeParse(present);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
    throw new StackConfigError(
      `The API's environment is incomplete: ${problems.join('; ')}. The CDK stack sets these.`,
    );
  }
  return parsed.data;
}

/** The part of an API Gateway REST proxy event's identity that AWS_IAM authorization fills in. */
export const IamIdentitySchema = z.object({
  requestContext: z.object({
    identity: z.object({
      userArn: z.string().min(1).nullish(),
      caller: z.string().min(1).nullish(),
    }),
  }),
});

/**
 * The caller of an API Gateway request authorized with AWS_IAM: the actor is the SigV4 signer's ARN
 * (API Gateway verified the signature and the IAM policy before invoking us). The role is
 * `release-manager` when the ARN starts with one of `releaseManagerArns`, else `member`.
 *
 * @throws AuthenticationError when the event carries no IAM identity (the method is not AWS_IAM).
 */
export function callerFromIamEvent(event: unknown, releaseManagerArns: readonly string[]): Caller {
  const parsed = IamIdentitySchema.safeParse(event);
  const identity = parsed.success ? parsed.data.requestContext.identity : undefined;
  const actor = identity?.userArn ?? identity?.caller;
  if (!actor) throw new AuthenticationError('No IAM identity on the request: the API must use AWS_IAM authorization.');
  const isReleaseManager = releaseManagerArns.some((prefix) => prefix && actor.startsWith(prefix));
  return { actor, role: isReleaseManager ? 'release-manager' : 'member' };
}

/** Who may sign requests to the API, by ARN prefix: release managers and the step runner. */
export interface IamPrincipals {
  releaseManagerArns: readonly string[];
  runnerRoleArns: readonly string[];
}

/**
 * The caller of a request API Gateway authorized with AWS_IAM: {@link callerFromIamEvent}, except that
 * a request signed by the step-runner role acts for the running run it names in `x-stackline-run`
 * (see `runnerCaller`): its actor is then `pipeline:<name> run <id>`.
 *
 * @throws AuthenticationError when the event has no IAM identity, or the runner names no running run
 */
export async function resolveIamCaller(
  event: unknown,
  runHeader: string | undefined,
  principals: IamPrincipals,
  metadata: MetadataStore,
): Promise<Caller> {
  const caller = callerFromIamEvent(event, principals.releaseManagerArns);
  if (!principals.runnerRoleArns.some((prefix) => caller.actor.startsWith(prefix))) return caller;
  return runnerCaller(metadata, runHeader);
}

/** The app's stores and caller resolution from the Lambda environment. */
export function createAwsApiOptions(
  env: NodeJS.ProcessEnv = process.env,
): Omit<ApiAppOptions, 'authenticate'> & IamPrincipals {
  const config = readApiLambdaEnvironment(env);
  const stack = config.STACKLINE_STACK;
  const connection = { region: config.AWS_REGION };
  const metadata = withPlatformEvents(
    new DynamoDbMetadataStore({
      client: createDynamoDbClient(stack, connection, env),
      tables: tableNamesFor(config.STACKLINE_TABLE_PREFIX),
    }),
    config,
  );
  const artifacts = new S3ArtifactStore({
    client: createS3Client(stack, connection, env),
    bucket: config.STACKLINE_ARTIFACT_BUCKET,
    prefix: config.STACKLINE_ARTIFACT_PREFIX,
    cacheDir: join(tmpdir(), 'stackline', 'cache'),
  });
  const stateMachineArnPrefix = config.STACKLINE_STATE_MACHINE_ARN_PREFIX;
  return {
    metadata,
    artifacts,
    stacks: withDeploymentStack(metadata.stacks, deploymentStackRecord(config)),
    downloads: new S3DownloadLinks(artifacts),
    promoters: config.STACKLINE_PROMOTERS,
    ...(stateMachineArnPrefix
      ? {
          runs: new StepFunctionsRunStarter({
            sfn: new SFNClient({ region: config.AWS_REGION }),
            stack,
            stateMachineArnPrefix,
            deployed: config.STACKLINE_DEPLOYED_PIPELINES,
          }),
        }
      : {}),
    releaseManagerArns: config.STACKLINE_RELEASE_MANAGER_ARNS.split(',')
      .map((s) => s.trim())
      .filter(Boolean),
    runnerRoleArns: config.STACKLINE_RUNNER_ROLE_ARNS,
  };
}
