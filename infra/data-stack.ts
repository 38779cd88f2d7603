/**
 * The stateful half of an environment: the artifact bucket and the metadata tables. Kept in its
 * own stack so the runner stack can be replaced or destroyed without touching data.
 */
import type { CreateTableCommandInput } from '@aws-sdk/client-dynamodb';
import { Duration, type RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import type { Construct } from 'constructs';
import {
  type DynamoDbTableNames,
  tableDefinitions,
  tableNamesFor,
} from '../lib/metadata/dynamodb/table-definitions.ts';
import { acknowledgeRule } from './nag.ts';

/** Props of {@link DataStack}. */
export interface DataStackProps extends StackProps {
  /** Tables are `<tablePrefix>-stacks`, `-runs`, `-artifacts`, `-models`, `-stages` (see `tableNamesFor`). */
  tablePrefix: string;
  /** Bucket name; by default `<tablePrefix>-artifacts-<account>-<region>`. */
  bucketName?: string;
  /** The artifact store's key prefix in the bucket: the lifecycle rule expires `<prefix>/tmp/`. */
  artifactPrefix: string;
  /** What happens to the bucket and tables when the stack is deleted. */
  removalPolicy: RemovalPolicy;
  /** `s3-managed` (default) or a customer-managed KMS key for the bucket. */
  encryption?: 's3-managed' | 'kms';
}

/**
 * The artifact bucket (private, SSL only, encrypted, unversioned: blobs are content-addressed and
 * never overwritten; temporary upload objects expire after a day) and the five DynamoDB tables of
 * the metadata store, whose keys and indexes are rendered from `tableDefinitions` — the same data
 * `stackline stack provision` and the emulator tests create tables from.
 *
 * @example
 * const data = new DataStack(app, 'Stackline-prod-Data', {
 *   tablePrefix: 'stackline-prod', artifactPrefix: 'stackline', removalPolicy: RemovalPolicy.RETAIN,
 * });
 * data.tables.runs.tableName; // 'stackline-prod-runs'
 */
export class DataStack extends Stack {
  readonly bucket: s3.Bucket;
  /** The bucket's name as a plain string (tokens only for account/region): see `RunnerStack`. */
  readonly bucketName: string;
  /** Set when `encryption` is `kms`. */
  readonly encryptionKey?: kms.Key;
  readonly tables: Record<keyof DynamoDbTableNames, dynamodb.Table>;
  readonly tablePrefix: string;
  readonly artifactPrefix: string;

  constructor(scope: Construct, id: string, props: DataStackProps) {
    super(scope, id, props);
    this.tablePrefix = props.tablePrefix;
    this.artifactPrefix = props.artifactPrefix.replace(/^\/+|\/+$/g, '');

    if (props.encryption === 'kms') {
      this.encryptionKey = new kms.Key(this, 'ArtifactKey', {
        description: `Stackline artifacts (${props.tablePrefix})`,
        enableKeyRotation: true,
        removalPolicy: props.removalPolicy,
      });
    }
    this.bucketName = props.bucketName ?? `${props.tablePrefix}-artifacts-${this.account}-${this.region}`;
    const tmpPrefix = this.artifactPrefix ? `${this.artifactPrefix}/tmp/` : 'tmp/';
    this.bucket = new s3.Bucket(this, 'Artifacts', {
      bucketName: this.bucketName,
      ...(this.encryptionKey
        ? { encryption: s3.BucketEncryption.KMS, encryptionKey: this.encryptionKey, bucketKeyEnabled: true }
        : { encryption: s3.BucketEncryption.S3_MANAGED }),
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      // Blobs are content-addressed and immutable: versions would only keep deleted garbage.
      versioned: false,
      removalPolicy: props.removalPolicy,
      lifecycleRules: [
        {
          id: 'expire-temporary-uploads',
          prefix: tmpPrefix,
          expiration: Duration.days(1),
          abortIncompleteMultipartUploadAfter: Duration.days(1),
        },
        { id: 'abort-incomplete-multipart-uploads', abortIncompleteMultipartUploadAfter: Duration.days(1) },
      ],
    });

    acknowledgeRule(
      this.bucket,
      'S1',
      'Server access logs are not kept: objects are content-addressed blobs written by the step runner; audit access with CloudTrail data events where required.',
    );

    const definitions = tableDefinitions(tableNamesFor(props.tablePrefix));
    this.tables = {
      stacks: this.#table('StacksTable', definitions.stacks, props.removalPolicy),
      runs: this.#table('RunsTable', definitions.runs, props.removalPolicy),
      artifacts: this.#table('ArtifactsTable', definitions.artifacts, props.removalPolicy),
      models: this.#table('ModelsTable', definitions.models, props.removalPolicy),
      stages: this.#table('StagesTable', definitions.stages, props.removalPolicy),
    };
  }

  /** Renders one CreateTable input as a CDK table: on-demand, point-in-time recovery on. */
  #table(id: string, definition: CreateTableCommandInput, removalPolicy: RemovalPolicy): dynamodb.Table {
    const attribute = (name: string): dynamodb.Attribute => {
      const type = definition.AttributeDefinitions?.find((a) => a.AttributeName === name)?.AttributeType;
      if (!type) throw new Error(`Table ${definition.TableName}: attribute ${name} has no definition.`);
      return { name, type: ATTRIBUTE_TYPES[type] };
    };
    const keys = (schema: CreateTableCommandInput['KeySchema']) => {
      const hash = schema?.find((k) => k.KeyType === 'HASH')?.AttributeName;
      const range = schema?.find((k) => k.KeyType === 'RANGE')?.AttributeName;
      if (!hash) throw new Error(`Table ${definition.TableName}: a key schema has no HASH key.`);
      return { partitionKey: attribute(hash), ...(range ? { sortKey: attribute(range) } : {}) };
    };
    if (definition.BillingMode !== 'PAY_PER_REQUEST') {
      throw new Error(`Table ${definition.TableName}: only PAY_PER_REQUEST tables are rendered.`);
    }
    const table = new dynamodb.Table(this, id, {
      tableName: definition.TableName!,
      ...keys(definition.KeySchema),
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      removalPolicy,
    });
    for (const index of definition.GlobalSecondaryIndexes ?? []) {
      const projection = index.Projection?.ProjectionType ?? 'ALL';
      table.addGlobalSecondaryIndex({
        indexName: index.IndexName!,
        ...keys(index.KeySchema),
        projectionType: PROJECTION_TYPES[projection],
        ...(projection === 'INCLUDE' ? { nonKeyAttributes: index.Projection?.NonKeyAttributes ?? [] } : {}),
      });
    }
    return table;
  }
}

const ATTRIBUTE_TYPES = {
  S: dynamodb.AttributeType.STRING,
  N: dynamodb.AttributeType.NUMBER,
  B: dynamodb.AttributeType.BINARY,
} as const;

const PROJECTION_TYPES = {
  ALL: dynamodb.ProjectionType.ALL,
  KEYS_ONLY: dynamodb.ProjectionType.KEYS_ONLY,
  INCLUDE: dynamodb.ProjectionType.INCLUDE,
} as const;
