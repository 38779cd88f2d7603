/**
 * The compute half of an environment: the step-runner Lambda (a bundle of the environment's
 * pipeline modules); `infra/pipeline-state-machines.ts` adds the pipelines' state machines to it.
 */

import type { CreateTableCommandInput } from '@aws-sdk/client-dynamodb';
import { Arn, CfnOutput, Duration, Lazy, RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { tableDefinitions, tableNamesFor } from '../lib/metadata/dynamodb/table-definitions.ts';
import { acknowledgeRule, acknowledgeWildcardResource } from './nag.ts';

/** Props of {@link RunnerStack}. */
export interface RunnerStackProps extends StackProps {
  /** The Stackline stack name the runner records on runs (`STACKLINE_STACK`). */
  stacklineStack: string;
  /** The artifact bucket's name and the store's key prefix in it (`STACKLINE_ARTIFACT_BUCKET`, `STACKLINE_ARTIFACT_PREFIX`). */
  bucketName: string;
  artifactPrefix: string;
  /** The bucket's customer-managed key, if any (`STACKLINE_SSE=aws:kms`, `STACKLINE_KMS_KEY_ID`). */
  encryptionKey?: kms.IKey;
  /** The metadata tables are `tableNamesFor(tablePrefix)` (`STACKLINE_TABLE_PREFIX`). */
  tablePrefix: string;
  /** A directory holding the bundle's `index.mjs` (`<outDir>/lambda` of `bundlePipeline`). */
  codeDirectory: string;
  /** Default `<tablePrefix>-step-runner`. */
  functionName?: string;
  /** Default 1024. */
  memoryMb?: number;
  /** Default 300. */
  timeoutSeconds?: number;
  /** `STACKLINE_DISTRIBUTED_MAP_THRESHOLD`; unset keeps the runner's default. */
  distributedMapThreshold?: number;
  /** Pipelines whose steps may promote to production (`STACKLINE_PROMOTERS`). Default: none. */
  promoters?: readonly string[];
  /** The environment's state machines are `<prefix><pipeline>` (see `PipelineStateMachines`). Default `<tablePrefix>-`. */
  stateMachinePrefix?: string;
}

/** What the metadata store does with its tables (CDK's read/write data set, without streams). */
export const TABLE_DATA_ACTIONS = [
  'dynamodb:BatchGetItem',
  'dynamodb:BatchWriteItem',
  'dynamodb:ConditionCheckItem',
  'dynamodb:DeleteItem',
  'dynamodb:GetItem',
  'dynamodb:PutItem',
  'dynamodb:Query',
  'dynamodb:Scan',
  'dynamodb:UpdateItem',
];

/** What the step runner may do with the stages table (holders and history): read, never write. */
const STAGE_TABLE_ACTIONS = [
  'dynamodb:BatchGetItem',
  'dynamodb:ConditionCheckItem',
  'dynamodb:GetItem',
  'dynamodb:Query',
];

/** The API routes step code promotes through (`arnPath` form): stage moves and production. */
export const PROMOTION_ROUTES = ['/models/*/versions/*/stage', '/models/*/versions/*/production'];

/** The SSM parameter the API stack writes its URL to, for the step runner (`STACKLINE_API_URL_PARAMETER`). */
export function apiUrlParameterName(tablePrefix: string): string {
  return `/stackline/${tablePrefix}/api-url`;
}

/** The step runner's role name: the API recognizes the runner by it (`assumed-role/<name>/`). */
export function runnerRoleName(tablePrefix: string): string {
  return `${tablePrefix}-step-runner`;
}

/** What `S3ArtifactStore` does with objects: get/head, put (also multipart and copy), delete, abort uploads. */
const OBJECT_ACTIONS = ['s3:GetObject', 's3:PutObject', 's3:DeleteObject', 's3:AbortMultipartUpload'];

/**
 * The step-runner Lambda (Node.js 22, arm64, handler `index.handler`) with the environment
 * `lib/runtime/aws-step-runner-config.ts` reads and read/write access to the artifact store's
 * keys and the metadata tables (read-only on the stages table: holders and history); and outputs
 * naming all of it, including the `stackline stack register` command for the environment. Each
 * state machine gets its own role (`PipelineStateMachines`): the CLI creates none.
 *
 * The bucket and tables are referred to by name, not through CloudFormation exports: the data
 * stack can then be updated without first removing this one, and each IAM resource is an exact,
 * predictable ARN (the cdk-nag acknowledgments below name them).
 *
 * @example
 * const runner = new RunnerStack(app, 'Stackline-prod-Runner', {
 *   stacklineStack: 'prod', bucketName: data.bucketName, artifactPrefix: 'stackline',
 *   tablePrefix: 'stackline-prod', codeDirectory: 'cdk.out/stackline-bundles/prod/lambda',
 * });
 * runner.addDependency(data);
 */
export class RunnerStack extends Stack {
  readonly function: lambda.Function;
  readonly functionRole: iam.Role;
  readonly stateMachinePrefix: string;
  /** The metadata tables (and their indexes) but the stages table: what the runner writes. */
  readonly dataTableArns: string[];
  /** What the step runner may do with the stores: the Lambda's data grants, also given to an ECS task role. */
  readonly dataStatements: iam.PolicyStatement[];
  /** The environment the step runner reads (`lib/runtime/aws-step-runner-config.ts`), also set on an ECS container. */
  readonly stepRunnerEnvironment: Record<string, string>;
  /** `storeObjects` as acknowledged for cdk-nag (wildcard under the artifact prefix). */
  readonly storeObjectsArn: string;
  /** More `stack register` options for the `RegisterCommand` output (constructs added later append theirs, e.g. ECS). */
  readonly registerOptions: string[] = [];
  /** The function's timeout: the compiler fits Lambda steps' `timeoutMs` in it (see `PipelineStateMachines`). */
  readonly timeoutSeconds: number;

  constructor(scope: Construct, id: string, props: RunnerStackProps) {
    super(scope, id, props);
    const artifactPrefix = props.artifactPrefix.replace(/^\/+|\/+$/g, '');
    const functionName = props.functionName ?? `${props.tablePrefix}-step-runner`;
    this.stateMachinePrefix = props.stateMachinePrefix ?? `${props.tablePrefix}-`;
    this.timeoutSeconds = props.timeoutSeconds ?? 300;

    const bucketArn = Arn.format({ service: 's3', region: '', account: '', resource: props.bucketName }, this);
    const keysUnder = (path: string) => `${bucketArn}/${artifactPrefix ? `${artifactPrefix}/` : ''}${path}`;
    const storeObjects = keysUnder('*');
    const { stages, ...dataTables } = tableDefinitions(tableNamesFor(props.tablePrefix));
    const arnsOf = (definition: CreateTableCommandInput) => {
      const tableArn = Arn.format(
        { service: 'dynamodb', resource: 'table', resourceName: definition.TableName! },
        this,
      );
      return [
        tableArn,
        ...(definition.GlobalSecondaryIndexes ?? []).map((index) => `${tableArn}/index/${index.IndexName}`),
      ];
    };
    const tableArns = Object.values(dataTables).flatMap(arnsOf);
    this.dataTableArns = tableArns;

    const logGroup = new logs.LogGroup(this, 'StepRunnerLogs', {
      logGroupName: `/aws/lambda/${functionName}`,
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    // Our own role instead of AWSLambdaBasicExecutionRole: it logs only to its own group.
    const functionRole = new iam.Role(this, 'StepRunnerRole', {
      // A known name: the API recognizes the runner by it (`assumed-role/<name>/`) without a cross-stack reference.
      roleName: runnerRoleName(props.tablePrefix),
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `Stackline step runner (${props.stacklineStack})`,
    });
    this.functionRole = functionRole;
    logGroup.grantWrite(functionRole);
    this.storeObjectsArn = storeObjects;
    this.dataStatements = [
      new iam.PolicyStatement({ actions: OBJECT_ACTIONS, resources: [storeObjects] }),
      // HeadObject answers 404 rather than 403 for a missing blob only with ListBucket.
      new iam.PolicyStatement({ actions: ['s3:ListBucket'], resources: [bucketArn] }),
      new iam.PolicyStatement({ actions: TABLE_DATA_ACTIONS, resources: tableArns }),
      // Stage holders and history: read only. Step code cannot move a stage or write the audit trail;
      // a promotion gate goes through the control plane (the API), which records who promoted.
      new iam.PolicyStatement({ actions: STAGE_TABLE_ACTIONS, resources: arnsOf(stages) }),
      // Where the environment's API is: promotions from step code go there (the API stack grants the invoke).
      new iam.PolicyStatement({
        actions: ['ssm:GetParameter'],
        resources: [
          Arn.format(
            { service: 'ssm', resource: 'parameter', resourceName: apiUrlParameterName(props.tablePrefix).slice(1) },
            this,
          ),
        ],
      }),
      ...(props.encryptionKey
        ? [
            new iam.PolicyStatement({
              actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
              resources: [props.encryptionKey.keyArn],
            }),
          ]
        : []),
    ];
    for (const statement of this.dataStatements) functionRole.addToPolicy(statement);
    acknowledgeWildcardResource(
      functionRole,
      storeObjects,
      'The artifact store writes content-addressed keys (<prefix>/blobs/<hash>, <prefix>/tmp/<uuid>, <prefix>/runs/<run>/...) that cannot be listed in advance; access is limited to its prefix.',
    );

    this.stepRunnerEnvironment = {
      STACKLINE_STACK: props.stacklineStack,
      STACKLINE_ARTIFACT_BUCKET: props.bucketName,
      STACKLINE_ARTIFACT_PREFIX: artifactPrefix,
      STACKLINE_TABLE_PREFIX: props.tablePrefix,
      STACKLINE_PROMOTERS: (props.promoters ?? []).join(','),
      STACKLINE_API_URL_PARAMETER: apiUrlParameterName(props.tablePrefix),
      ...(props.encryptionKey ? { STACKLINE_SSE: 'aws:kms', STACKLINE_KMS_KEY_ID: props.encryptionKey.keyArn } : {}),
      ...(props.distributedMapThreshold !== undefined
        ? { STACKLINE_DISTRIBUTED_MAP_THRESHOLD: String(props.distributedMapThreshold) }
        : {}),
    };
    this.function = new lambda.Function(this, 'StepRunner', {
      functionName,
      description: `Stackline step runner for stack ${props.stacklineStack}`,
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: lambda.Architecture.ARM_64,
      handler: 'index.handler',
      code: lambda.Code.fromAsset(props.codeDirectory),
      memorySize: props.memoryMb ?? 1024,
      timeout: Duration.seconds(this.timeoutSeconds),
      role: functionRole,
      logGroup,
      environment: this.stepRunnerEnvironment,
    });
    acknowledgeRule(
      this.function,
      'L1',
      'Node.js 22 on purpose: the bundle targets Node 20+ and is tested on Node 20/22; move to 24 after testing there.',
    );

    new CfnOutput(this, 'FunctionName', { value: this.function.functionName, description: 'Step-runner Lambda' });
    new CfnOutput(this, 'ArtifactBucket', { value: props.bucketName, description: 'Artifact bucket' });
    new CfnOutput(this, 'TablePrefix', { value: props.tablePrefix, description: 'DynamoDB table prefix' });
    const registerCommand = [
      `npx stackline stack register ${props.stacklineStack}`,
      '--orchestrator step-functions',
      `--state-machine-prefix ${this.stateMachinePrefix}`,
      `--step-runner lambda --function-name ${this.function.functionName}`,
      `--artifact-store s3 --bucket ${props.bucketName}`,
      ...(artifactPrefix ? [`--prefix ${artifactPrefix}`] : []),
      ...(props.encryptionKey ? [`--sse aws:kms --kms-key-id ${props.encryptionKey.keyArn}`] : []),
      `--metadata-store dynamodb --table-prefix ${props.tablePrefix}`,
      `--region ${this.region}`,
    ];
    new CfnOutput(this, 'RegisterCommand', {
      description: 'Registers this environment as a Stackline stack',
      value: Lazy.string({ produce: () => [...registerCommand, ...this.registerOptions].join(' ') }),
    });
  }
}
